// RoI feature extraction besides RoI Align (kernels/roi-align.ts): RoI Pool (torchvision roi_pool,
// argmax kept for backward) and RoI crop (the seed's affine-grid + bilinear sampler). Forward: one
// thread per output element. Backward: the same loop, scattering into features with the CAS float
// add (kernels/common.ts), so grads sum in nondeterministic order.
// Layouts: features [N, C, H, W] contiguous; rois [R, 5] = (batch index, x1, y1, x2, y2) in image px.
import { type Launch, CAS_ADD_F32, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;


// ---- RoI Pool -----------------------------------------------------------------------------------

export interface RoiPoolParams { N: number; C: number; H: number; W: number; R: number; PH: number; PW: number; spatialScale: number }

/** out[R, C, PH, PW] and argmax (i32 flat h*W+w, -1 for empty bins). Bindings: x, rois, out, argmax. */
export function roiPoolLaunch(p: RoiPoolParams): Launch {
  const n = p.R * p.C * p.PH * p.PW;
  return {
    key: 'roiPool:fwd',
    build: () => ({
      uniforms: [['n', 'u32'], ['C', 'u32'], ['H', 'i32'], ['W', 'i32'], ['PH', 'u32'], ['PW', 'u32'], ['N', 'u32'], ['scale', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<i32>;
${WG_LINEAR}
// std::round (half away from zero); WGSL round() is half-to-even
fn roundAway(v: f32) -> i32 { return i32(sign(v) * floor(abs(v) + 0.5)); }
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let pw = i32(i % u.PW); let ph = i32((i / u.PW) % u.PH); let c = (i / (u.PW * u.PH)) % u.C; let r = i / (u.PW * u.PH * u.C);
  let b = i32(rois[r * 5u]);
  let x1 = roundAway(rois[r * 5u + 1u] * u.scale); let y1 = roundAway(rois[r * 5u + 2u] * u.scale);
  let x2 = roundAway(rois[r * 5u + 3u] * u.scale); let y2 = roundAway(rois[r * 5u + 4u] * u.scale);
  // torchvision roi_pool: inclusive integer box, at least one cell
  let rw = max(x2 - x1 + 1, 1); let rh = max(y2 - y1 + 1, 1);
  let bh = f32(rh) / f32(u.PH); let bw = f32(rw) / f32(u.PW);
  let hs = min(max(i32(floor(f32(ph) * bh)) + y1, 0), u.H); let he = min(max(i32(ceil(f32(ph + 1) * bh)) + y1, 0), u.H);
  let ws = min(max(i32(floor(f32(pw) * bw)) + x1, 0), u.W); let we = min(max(i32(ceil(f32(pw + 1) * bw)) + x1, 0), u.W);
  let empty = he <= hs || we <= ws || b < 0 || b >= i32(u.N);
  var best = select(-3.402823466e38, 0.0, empty);
  var arg = -1;
  if (!empty) {
    let base = (u32(b) * u.C + c) * u32(u.H * u.W);
    for (var h = hs; h < he; h++) {
      for (var w = ws; w < we; w++) {
        let v = x[base + u32(h * u.W + w)];
        if (v > best) { best = v; arg = h * u.W + w; }
      }
    }
  }
  out[i] = best;
  argmax[i] = arg;
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale],
    grid: grid1d(cdiv(n, WG)),
  };
}

/** gx[N, C, H, W] += g at argmax (gx zeroed by the caller). Bindings: g, rois, argmax, gx. */
export function roiPoolBackwardLaunch(p: RoiPoolParams): Launch {
  const n = p.R * p.C * p.PH * p.PW;
  return {
    key: 'roiPool:bwd',
    build: () => ({
      uniforms: [['n', 'u32'], ['C', 'u32'], ['HW', 'u32'], ['PHW', 'u32'], ['N', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<i32>;
@group(0) @binding(3) var<storage, read_write> gx: array<atomic<u32>>;
${WG_LINEAR}${CAS_ADD_F32('gx')}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let a = argmax[i];
  if (a < 0) { return; }
  let c = (i / u.PHW) % u.C; let r = i / (u.PHW * u.C);
  let b = i32(rois[r * 5u]);
  if (b < 0 || b >= i32(u.N)) { return; }
  atomicAdd_gx((u32(b) * u.C + c) * u.HW + u32(a), g[i]);
}`,
    }),
    uniforms: [n, p.C, p.H * p.W, p.PH * p.PW, p.N],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- RoI crop (the seed's POOLING_MODE='crop') ---------------------------------------------------------

export interface RoiCropParams { N: number; C: number; H: number; W: number; R: number; P: number; strideInPx: number; maxPool: boolean }

// Seed: theta = [[(x2-x1)/(W-1), 0, (x1+x2-W+1)/(W-1)], [0, (y2-y1)/(H-1), (y1+y2-H+1)/(H-1)]] with
// box coords / stride; affine_grid (corner-aligned linspace(-1,1,G)); the STN sampler maps
// (g+1)(W-1)/2 and each of the 4 taps outside the map contributes zero.
const CROP_COMMON = `
struct CropTap { o: vec4i, w: vec4f }
fn cropTaps(r: u32, gy: u32, gx: u32, G: u32) -> CropTap {
  let Hf = f32(u.H); let Wf = f32(u.W);
  let x1 = rois[r * 5u + 1u] / u.stride; let y1 = rois[r * 5u + 2u] / u.stride;
  let x2 = rois[r * 5u + 3u] / u.stride; let y2 = rois[r * 5u + 4u] / u.stride;
  let t00 = (x2 - x1) / (Wf - 1.0); let t02 = (x1 + x2 - Wf + 1.0) / (Wf - 1.0);
  let t11 = (y2 - y1) / (Hf - 1.0); let t12 = (y1 + y2 - Hf + 1.0) / (Hf - 1.0);
  let den = max(f32(G) - 1.0, 1.0);
  let bx = select(-1.0 + 2.0 * f32(gx) / den, -1.0, G == 1u);
  let by = select(-1.0 + 2.0 * f32(gy) / den, -1.0, G == 1u);
  let xf = (t00 * bx + t02 + 1.0) * (Wf - 1.0) / 2.0;
  let yf = (t11 * by + t12 + 1.0) * (Hf - 1.0) / 2.0;
  let xl = i32(floor(xf)); let yl = i32(floor(yf));
  let wx = xf - f32(xl); let wy = yf - f32(yl);
  var t: CropTap;
  let H = i32(u.H); let W = i32(u.W);
  let inX0 = xl >= 0 && xl < W; let inX1 = xl + 1 >= 0 && xl + 1 < W;
  let inY0 = yl >= 0 && yl < H; let inY1 = yl + 1 >= 0 && yl + 1 < H;
  t.o = vec4i(select(-1, yl * W + xl, inY0 && inX0), select(-1, yl * W + xl + 1, inY0 && inX1), select(-1, (yl + 1) * W + xl, inY1 && inX0), select(-1, (yl + 1) * W + xl + 1, inY1 && inX1));
  t.w = vec4f((1.0 - wy) * (1.0 - wx), (1.0 - wy) * wx, wy * (1.0 - wx), wy * wx);
  return t;
}
fn cropSample(base: u32, t: CropTap) -> f32 {
  var v = 0.0;
  if (t.o.x >= 0) { v += t.w.x * x[base + u32(t.o.x)]; }
  if (t.o.y >= 0) { v += t.w.y * x[base + u32(t.o.y)]; }
  if (t.o.z >= 0) { v += t.w.z * x[base + u32(t.o.z)]; }
  if (t.o.w >= 0) { v += t.w.w * x[base + u32(t.o.w)]; }
  return v;
}`;

const CROP_U: [string, 'u32' | 'f32'][] = [['n', 'u32'], ['C', 'u32'], ['H', 'u32'], ['W', 'u32'], ['P', 'u32'], ['N', 'u32'], ['stride', 'f32'], ['maxPool', 'u32']];

/**
 * out[R, C, P, P]: bilinear samples on the RoI's corner-aligned grid (P, or 2P followed by a 2x2
 * max pool, first max wins as torch max_pool2d). Bindings fwd: x, rois, out; bwd: x, g, rois, gx.
 */
export function roiCropLaunch(p: RoiCropParams, dir: 'fwd' | 'bwd'): Launch {
  const n = p.R * p.C * p.P * p.P;
  const binds = dir === 'fwd'
    ? `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`
    : `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> rois: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx: array<atomic<u32>>;`;
  return {
    key: `roiCrop:${dir}`,
    build: () => ({
      uniforms: CROP_U,
      code: `
${binds}
${WG_LINEAR}${CROP_COMMON}${dir === 'bwd' ? CAS_ADD_F32('gx') : ''}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let pw = i % u.P; let ph = (i / u.P) % u.P; let c = (i / (u.P * u.P)) % u.C; let r = i / (u.P * u.P * u.C);
  let b = i32(rois[r * 5u]);
  if (b < 0 || b >= i32(u.N)) { ${dir === 'fwd' ? 'out[i] = 0.0; ' : ''}return; }
  let base = (u32(b) * u.C + c) * u.H * u.W;
  var best: CropTap;
  var bestV = 0.0;
  if (u.maxPool != 0u) {
    bestV = -3.402823466e38;
    for (var k = 0u; k < 4u; k++) {
      let t = cropTaps(r, 2u * ph + k / 2u, 2u * pw + k % 2u, 2u * u.P);
      let v = cropSample(base, t);
      if (v > bestV) { bestV = v; best = t; }
    }
  } else {
    best = cropTaps(r, ph, pw, u.P);
    bestV = cropSample(base, best);
  }
  ${dir === 'fwd' ? 'out[i] = bestV;' : `let gv = g[i];
  if (best.o.x >= 0) { atomicAdd_gx(base + u32(best.o.x), gv * best.w.x); }
  if (best.o.y >= 0) { atomicAdd_gx(base + u32(best.o.y), gv * best.w.y); }
  if (best.o.z >= 0) { atomicAdd_gx(base + u32(best.o.z), gv * best.w.z); }
  if (best.o.w >= 0) { atomicAdd_gx(base + u32(best.o.w), gv * best.w.w); }`}
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.P, p.N, p.strideInPx, p.maxPool ? 1 : 0],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- float64 references -----------------------------------------------------------------------------

/** torchvision roi_pool in float64; returns values (argmax is implied by the gradient tests). */
export function refRoiPool(x: ArrayLike<number>, xShape: number[], rois: ArrayLike<number>, R: number, o: { PH: number; PW: number; spatialScale: number }): Float64Array {
  const [N, C, H, W] = xShape;
  const out = new Float64Array(R * C * o.PH * o.PW);
  const rnd = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
  for (let r = 0; r < R; r++) {
    const b = Math.trunc(rois[r * 5]);
    const [x1, y1, x2, y2] = [1, 2, 3, 4].map((k) => rnd(Math.fround(rois[r * 5 + k] * o.spatialScale)));
    const rw = Math.max(x2 - x1 + 1, 1), rh = Math.max(y2 - y1 + 1, 1);
    const bh = rh / o.PH, bw = rw / o.PW;
    for (let c = 0; c < C; c++)
      for (let ph = 0; ph < o.PH; ph++)
        for (let pw = 0; pw < o.PW; pw++) {
          const hs = Math.min(Math.max(Math.floor(ph * bh) + y1, 0), H), he = Math.min(Math.max(Math.ceil((ph + 1) * bh) + y1, 0), H);
          const ws = Math.min(Math.max(Math.floor(pw * bw) + x1, 0), W), we = Math.min(Math.max(Math.ceil((pw + 1) * bw) + x1, 0), W);
          let best = he <= hs || we <= ws || b < 0 || b >= N ? 0 : -Infinity;
          if (best !== 0) for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) best = Math.max(best, x[((b * C + c) * H + h) * W + w]);
          out[((r * C + c) * o.PH + ph) * o.PW + pw] = best;
        }
  }
  return out;
}

/** The seed's RoI crop (affine grid + STN bilinear sampler [+ 2x2 max pool]) in float64. */
export function refRoiCrop(x: ArrayLike<number>, xShape: number[], rois: ArrayLike<number>, R: number, o: { P: number; strideInPx: number; maxPool: boolean }): Float64Array {
  const [N, C, H, W] = xShape;
  const G = o.maxPool ? 2 * o.P : o.P;
  const out = new Float64Array(R * C * o.P * o.P);
  const sample = (base: number, r: number, gy: number, gx: number) => {
    const [x1, y1, x2, y2] = [1, 2, 3, 4].map((k) => rois[r * 5 + k] / o.strideInPx);
    const lin = (k: number) => (G === 1 ? -1 : -1 + (2 * k) / (G - 1));
    const xf = (((x2 - x1) / (W - 1)) * lin(gx) + (x1 + x2 - W + 1) / (W - 1) + 1) * (W - 1) / 2;
    const yf = (((y2 - y1) / (H - 1)) * lin(gy) + (y1 + y2 - H + 1) / (H - 1) + 1) * (H - 1) / 2;
    const xl = Math.floor(xf), yl = Math.floor(yf), wx = xf - xl, wy = yf - yl;
    const at = (yy: number, xx: number) => (yy >= 0 && yy < H && xx >= 0 && xx < W ? x[base + yy * W + xx] : 0);
    return (1 - wy) * (1 - wx) * at(yl, xl) + (1 - wy) * wx * at(yl, xl + 1) + wy * (1 - wx) * at(yl + 1, xl) + wy * wx * at(yl + 1, xl + 1);
  };
  for (let r = 0; r < R; r++) {
    const b = Math.trunc(rois[r * 5]);
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * H * W;
      for (let ph = 0; ph < o.P; ph++)
        for (let pw = 0; pw < o.P; pw++) {
          let v = 0;
          if (b >= 0 && b < N) {
            if (o.maxPool) {
              v = -Infinity;
              for (let k = 0; k < 4; k++) v = Math.max(v, sample(base, r, 2 * ph + (k >> 1), 2 * pw + (k & 1)));
            } else v = sample(base, r, ph, pw);
          }
          out[((r * C + c) * o.P + ph) * o.P + pw] = v;
        }
    }
  }
  return out;
}
