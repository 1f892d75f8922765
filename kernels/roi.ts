// RoI feature extraction kernels: RoI Align (torchvision roi_align, incl. the FPN multi-level
// variant), RoI Pool (torchvision roi_pool, argmax kept for backward) and RoI crop (the seed's
// affine-grid + bilinear sampler). Forward: one thread per output element. Backward: the same
// loop, scattering into features with the CAS float add (kernels/layout.ts; WGSL has no float
// atomics, ../shared/reference/webgpu-dawn-notes.md §5.3), so grads sum in nondeterministic order.
// Layouts: features [N, C, H, W] contiguous; rois [R, 5] = (batch index, x1, y1, x2, y2) in image px.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;

const ATOMIC_ADD = (buf: string) => `
fn atomicAdd_${buf}(a: u32, v: f32) {
  var old = atomicLoad(&${buf}[a]);
  loop {
    let r = atomicCompareExchangeWeak(&${buf}[a], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`;

// torchvision roi_align bilinear taps: a sample outside [-1, H] x [-1, W] is zero; otherwise the
// coordinate clamps to >= 0 and a low index at the border collapses onto size-1.
export const ALIGN_TAPS = `
struct Taps { o: vec4i, w: vec4f, ok: bool }
fn alignTaps(H: i32, W: i32, yIn: f32, xIn: f32) -> Taps {
  var t: Taps;
  if (yIn < -1.0 || yIn > f32(H) || xIn < -1.0 || xIn > f32(W)) { t.ok = false; return t; }
  var y = max(yIn, 0.0);
  var x = max(xIn, 0.0);
  var yl = i32(y); var xl = i32(x); var yh: i32; var xh: i32;
  if (yl >= H - 1) { yl = H - 1; yh = H - 1; y = f32(yl); } else { yh = yl + 1; }
  if (xl >= W - 1) { xl = W - 1; xh = W - 1; x = f32(xl); } else { xh = xl + 1; }
  let ly = y - f32(yl); let lx = x - f32(xl);
  let hy = 1.0 - ly; let hx = 1.0 - lx;
  t.ok = true;
  t.o = vec4i(yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh);
  t.w = vec4f(hy * hx, hy * lx, ly * hx, ly * lx);
  return t;
}
fn alignTapsOr0(H: i32, W: i32, y: f32, x: f32) -> Taps {
  var t = alignTaps(H, W, y, x);
  if (!t.ok) { t.o = vec4i(0); t.w = vec4f(0.0); }
  return t;
}`;

// The per-RoI bin geometry of torchvision roi_align (f32 arithmetic in its order).
export const ALIGN_GEOM = `
struct Geom { b: i32, sy: f32, sx: f32, bh: f32, bw: f32, gh: i32, gw: i32, cnt: f32 }
fn alignGeom(r: u32, scale: f32, sr: i32, aligned: u32, PH: u32, PW: u32) -> Geom {
  var g: Geom;
  let off = select(0.0, 0.5, aligned != 0u);
  g.b = i32(rois[r * 5u]);
  g.sx = rois[r * 5u + 1u] * scale - off;
  g.sy = rois[r * 5u + 2u] * scale - off;
  var rw = rois[r * 5u + 3u] * scale - off - g.sx;
  var rh = rois[r * 5u + 4u] * scale - off - g.sy;
  // torchvision: aligned=false clamps the roi to at least 1x1 map cells (legacy behaviour)
  if (aligned == 0u) { rw = max(rw, 1.0); rh = max(rh, 1.0); }
  g.bh = rh / f32(PH); g.bw = rw / f32(PW);
  g.gh = select(i32(ceil(rh / f32(PH))), sr, sr > 0);
  g.gw = select(i32(ceil(rw / f32(PW))), sr, sr > 0);
  g.cnt = f32(max(g.gh * g.gw, 1));
  return g;
}`;

export interface RoiAlignParams { N: number; C: number; H: number; W: number; R: number; PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean }

// Channels per thread: the bin geometry and bilinear taps are computed once per (RoI, bin) and
// reused across CPT channels (lavapipe: per-output geometry cost ~8x the loads it feeds).
const CPT = 16;

/**
 * Entry of the single-level RoI Align kernels (here and kernels/roi-align.ts): one thread per
 * (cpt-channel chunk, RoI, bin), chunk outermost so consecutive workgroups share one chunk's planes
 * across RoIs (cache); yields pw, ph, r, cb, the bin geometry `geo` and channels [c0, c1).
 */
export const alignThreadMain = (wg: number, cpt: number) => `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${wg}u + lid;
  if (i >= u.n) { return; }
  let pw = i % u.PW; let ph = (i / u.PW) % u.PH; let r = (i / (u.PW * u.PH)) % u.R; let cb = i / (u.PW * u.PH * u.R);
  let geo = alignGeom(r, u.scale, u.sr, u.aligned, u.PH, u.PW);
  let c0 = cb * ${cpt}u; let c1 = min(c0 + ${cpt}u, u.C);`;
// With a fixed sampling ratio <= 3 the sample loop is unrolled at compile time (sr is in the
// key); adaptive grids (unbounded sample counts) loop samples per chunk.
const maxStaticSr = 3;

export const ALIGN_U: [string, 'u32' | 'i32' | 'f32'][] = [['n', 'u32'], ['C', 'u32'], ['H', 'u32'], ['W', 'u32'], ['PH', 'u32'], ['PW', 'u32'], ['N', 'u32'], ['scale', 'f32'], ['sr', 'i32'], ['aligned', 'u32'], ['R', 'u32']];

/**
 * The sampling + channel loop of RoI Align for one thread, reading feature array `src` (fwd) or
 * adding into atomic array `dst` (bwd). Expects geo, H, W, ph, pw, r, c0, c1, plane, base0 and
 * reads g / writes out at outIdx.
 */
function alignBody(dir: 'fwd' | 'bwd', sr: number, src: string, dst: string, outIdx: string): string {
  // Unrolled: the sr² samples' taps live in registers (no dynamically indexed private arrays,
  // which lavapipe spills); a sample outside the map gets zero weights on pixel 0.
  const S = sr * sr;
  const samples = Array.from({ length: S }, (_, s) => `let t${s} = alignTapsOr0(H, W, geo.sy + f32(ph) * geo.bh + ${(Math.floor(s / sr) + 0.5).toFixed(1)} * geo.bh / ${sr}.0, geo.sx + f32(pw) * geo.bw + ${((s % sr) + 0.5).toFixed(1)} * geo.bw / ${sr}.0);`).join('\n  ');
  const gatherS = (s: number) => `dot(w${s}, vec4f(${src}[base + u32(t${s}.o.x)], ${src}[base + u32(t${s}.o.y)], ${src}[base + u32(t${s}.o.z)], ${src}[base + u32(t${s}.o.w)]))`;
  // 1/count folded into the weights; base and output index advance by one plane per channel
  const staticFwd = `
  ${samples}
  let inv = 1.0 / geo.cnt;
  ${Array.from({ length: S }, (_, s) => `let w${s} = t${s}.w * inv;`).join(' ')}
  var base = base0;
  var oi = ${outIdx.replace('+ c)', '+ c0)')};
  let ostep = ${outIdx.includes('u.PH') ? 'u.PH * u.PW' : 'u.P * u.P'};
  for (var c = c0; c < c1; c++) {
    out[oi] = ${Array.from({ length: S }, (_, s) => gatherS(s)).join(' + ')};
    base += plane;
    oi += ostep;
  }`;
  // Backward: atomics dominate, so the bin's taps are merged per pixel first (small bins put
  // several samples on the same pixels), then each distinct pixel gets one atomic per channel.
  const staticBwd = `
  ${samples}
  var to: array<i32, ${4 * S}>;
  var tw: array<f32, ${4 * S}>;
  var nt = 0u;
  ${Array.from({ length: S }, (_, s) => `if (t${s}.ok) { for (var q = 0; q < 4; q++) { let o = t${s}.o[q]; var k = 0u; for (; k < nt; k++) { if (to[k] == o) { tw[k] += t${s}.w[q]; break; } } if (k == nt) { to[nt] = o; tw[nt] = t${s}.w[q]; nt++; } } }`).join('\n  ')}
  for (var c = c0; c < c1; c++) {
    let base = base0 + (c - c0) * plane;
    let gv = g[${outIdx}] / geo.cnt;
    if (gv != 0.0) { for (var k = 0u; k < nt; k++) { atomicAdd_${dst}(base + u32(to[k]), gv * tw[k]); } }
  }`;
  const staticBody = dir === 'fwd' ? staticFwd : staticBwd;
  const dynBody = `
  ${dir === 'fwd' ? `var acc: array<f32, ${CPT}>;` : `var gv: array<f32, ${CPT}>;
  for (var c = c0; c < c1; c++) { gv[c - c0] = g[${outIdx}] / geo.cnt; }`}
  for (var iy = 0; iy < geo.gh; iy++) {
    let y = geo.sy + f32(ph) * geo.bh + (f32(iy) + 0.5) * geo.bh / f32(geo.gh);
    for (var ix = 0; ix < geo.gw; ix++) {
      let xx = geo.sx + f32(pw) * geo.bw + (f32(ix) + 0.5) * geo.bw / f32(geo.gw);
      let t = alignTaps(H, W, y, xx);
      if (t.ok) {
        for (var c = c0; c < c1; c++) {
          let base = base0 + (c - c0) * plane;
          ${dir === 'fwd' ? `acc[c - c0] += t.w.x * ${src}[base + u32(t.o.x)] + t.w.y * ${src}[base + u32(t.o.y)] + t.w.z * ${src}[base + u32(t.o.z)] + t.w.w * ${src}[base + u32(t.o.w)];`
    : `let v = gv[c - c0];
          atomicAdd_${dst}(base + u32(t.o.x), v * t.w.x); atomicAdd_${dst}(base + u32(t.o.y), v * t.w.y);
          atomicAdd_${dst}(base + u32(t.o.z), v * t.w.z); atomicAdd_${dst}(base + u32(t.o.w), v * t.w.w);`}
        }
      }
    }
  }
  ${dir === 'fwd' ? `for (var c = c0; c < c1; c++) { out[${outIdx}] = acc[c - c0] / geo.cnt; }` : ''}`;
  return sr > 0 ? staticBody : dynBody;
}

/**
 * RoI Align over x [N, C, H, W] and rois [R, 5]: 'fwd' writes out [R, C, PH, PW] (bindings x,
 * rois, out); 'bwd' adds the backward of g [R, C, PH, PW] into gx (zeroed by the caller;
 * bindings g, rois, gx). One thread per (CPT-channel chunk, RoI, bin).
 */
export function roiAlignLaunch(p: RoiAlignParams, dir: 'fwd' | 'bwd' = 'fwd'): Launch {
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.PH * p.PW;
  const sr = p.samplingRatio > 0 && p.samplingRatio <= maxStaticSr ? p.samplingRatio : 0;
  const binds = dir === 'fwd'
    ? `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`
    : `@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> gx: array<atomic<u32>>;`;
  const outIdx = '((r * u.C + c) * u.PH + ph) * u.PW + pw';
  return {
    key: `roiAlign:${dir}:sr${sr}`,
    build: () => ({
      uniforms: ALIGN_U,
      code: `
${binds}
${WG_LINEAR}${ALIGN_TAPS}${ALIGN_GEOM}${dir === 'bwd' ? ATOMIC_ADD('gx') : ''}
${alignThreadMain(WG, CPT)}
  if (geo.b < 0 || geo.b >= i32(u.N)) {
    ${dir === 'fwd' ? `for (var c = c0; c < c1; c++) { out[${outIdx}] = 0.0; }` : ''}
    return;
  }
  let H = i32(u.H); let W = i32(u.W);
  let plane = u.H * u.W;
  let base0 = (u32(geo.b) * u.C + c0) * plane;
  ${alignBody(dir, sr, 'x', 'gx', outIdx)}
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale, p.samplingRatio, p.aligned ? 1 : 0, p.R],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- multi-level (FPN) RoI Align -------------------------------------------------------------------

export interface MultiLevelParams { N: number; C: number; R: number; P: number; levels: { H: number; W: number; scale: number }[]; samplingRatio: number; kMin: number; canonicalScale: number; canonicalLevel: number }

/**
 * torchvision MultiScaleRoIAlign in one dispatch: each thread maps its RoI to a level with the
 * LevelMapper (k = floor(k0 + log2(sqrt(area)/s0) + 1e-6) clamped to [kMin, kMin+L-1]) and reads
 * that level's buffer (aligned=false as torchvision's poolers). Bindings: f0..f{L-1}, rois, out
 * (forward) or g, rois, g0..g{L-1} (backward, atomic).
 */
export function multiLevelRoiAlignLaunch(p: MultiLevelParams, dir: 'fwd' | 'bwd'): Launch {
  const L = p.levels.length;
  if (L < 1 || L > 4) throw new Error(`multiScaleRoiAlign: ${L} levels (1..4 supported)`);
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.P * p.P;
  const sr = p.samplingRatio > 0 && p.samplingRatio <= maxStaticSr ? p.samplingRatio : 0;
  const lv = [0, 1, 2, 3].map((i) => p.levels[Math.min(i, L - 1)]);
  const names = Array.from({ length: L }, (_, l) => (dir === 'fwd' ? `f${l}` : `g${l}`));
  const bind = dir === 'fwd'
    ? [...names.map((nm, l) => `@group(0) @binding(${l}) var<storage, read> ${nm}: array<f32>;`), `@group(0) @binding(${L}) var<storage, read> rois: array<f32>;`, `@group(0) @binding(${L + 1}) var<storage, read_write> out: array<f32>;`]
    : [`@group(0) @binding(0) var<storage, read> g: array<f32>;`, `@group(0) @binding(1) var<storage, read> rois: array<f32>;`, ...names.map((nm, l) => `@group(0) @binding(${l + 2}) var<storage, read_write> ${nm}: array<atomic<u32>>;`)];
  const outIdx = '((r * u.C + c) * u.P + ph) * u.P + pw';
  const cases = names.map((nm, l) => `case ${l}u: {${alignBody(dir, sr, nm, nm, outIdx)}\n  }`).join('\n  ');
  return {
    key: `roiAlignML:${dir}:L${L}:sr${sr}`,
    build: () => ({
      uniforms: [['hs', 'vec4u'], ['ws', 'vec4u'], ['scales', 'vec4f'], ['n', 'u32'], ['C', 'u32'], ['P', 'u32'], ['N', 'u32'], ['sr', 'i32'], ['kMin', 'f32'], ['s0', 'f32'], ['k0', 'f32'], ['CB', 'u32']],
      code: `
${bind.join('\n')}
${WG_LINEAR}${ALIGN_TAPS}${ALIGN_GEOM}${dir === 'bwd' ? names.map(ATOMIC_ADD).join('') : ''}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let pw = i % u.P; let ph = (i / u.P) % u.P; let cb = (i / (u.P * u.P)) % u.CB; let r = i / (u.P * u.P * u.CB);
  // torchvision LevelMapper: box area without +1, eps 1e-6 added after the log2
  let area = (rois[r * 5u + 3u] - rois[r * 5u + 1u]) * (rois[r * 5u + 4u] - rois[r * 5u + 2u]);
  let k = clamp(floor(u.k0 + log2(sqrt(area) / u.s0) + 1e-6), u.kMin, u.kMin + ${L - 1}.0);
  let lvl = u32(k - u.kMin);
  let H = i32(u.hs[lvl]); let W = i32(u.ws[lvl]);
  let geo = alignGeom(r, u.scales[lvl], u.sr, 0u, u.P, u.P);
  let c0 = cb * ${CPT}u; let c1 = min(c0 + ${CPT}u, u.C);
  if (geo.b < 0 || geo.b >= i32(u.N)) {
    ${dir === 'fwd' ? `for (var c = c0; c < c1; c++) { out[${outIdx}] = 0.0; }` : ''}
    return;
  }
  let plane = u32(H * W);
  let base0 = (u32(geo.b) * u.C + c0) * plane;
  switch lvl {
  ${cases}
  default: {}
  }
}`,
    }),
    uniforms: [...lv.map((l) => l.H), ...lv.map((l) => l.W), ...lv.map((l) => l.scale), n, p.C, p.P, p.N, p.samplingRatio, p.kMin, p.canonicalScale, p.canonicalLevel, CB],
    grid: grid1d(cdiv(n, WG)),
  };
}

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
${WG_LINEAR}${ATOMIC_ADD('gx')}
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
${WG_LINEAR}${CROP_COMMON}${dir === 'bwd' ? ATOMIC_ADD('gx') : ''}
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

/** torchvision roi_align (csrc/ops/cpu/roi_align_kernel.cpp semantics) in float64. */
export function refRoiAlign(x: ArrayLike<number>, xShape: number[], rois: ArrayLike<number>, R: number, o: { PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean }): Float64Array {
  const [N, C, H, W] = xShape;
  const out = new Float64Array(R * C * o.PH * o.PW);
  const off = o.aligned ? 0.5 : 0;
  const bil = (base: number, y: number, xx: number) => {
    if (y < -1 || y > H || xx < -1 || xx > W) return 0;
    y = Math.max(y, 0);
    xx = Math.max(xx, 0);
    let yl = Math.floor(y), xl = Math.floor(xx), yh, xh;
    if (yl >= H - 1) { yl = yh = H - 1; y = yl; } else yh = yl + 1;
    if (xl >= W - 1) { xl = xh = W - 1; xx = xl; } else xh = xl + 1;
    const ly = y - yl, lx = xx - xl, hy = 1 - ly, hx = 1 - lx;
    return hy * hx * x[base + yl * W + xl] + hy * lx * x[base + yl * W + xh] + ly * hx * x[base + yh * W + xl] + ly * lx * x[base + yh * W + xh];
  };
  for (let r = 0; r < R; r++) {
    const b = Math.trunc(rois[r * 5]);
    const sx = rois[r * 5 + 1] * o.spatialScale - off, sy = rois[r * 5 + 2] * o.spatialScale - off;
    let rw = rois[r * 5 + 3] * o.spatialScale - off - sx, rh = rois[r * 5 + 4] * o.spatialScale - off - sy;
    if (!o.aligned) { rw = Math.max(rw, 1); rh = Math.max(rh, 1); }
    const bh = rh / o.PH, bw = rw / o.PW;
    const gh = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(rh / o.PH);
    const gw = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(rw / o.PW);
    const cnt = Math.max(gh * gw, 1);
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * H * W;
      for (let ph = 0; ph < o.PH; ph++)
        for (let pw = 0; pw < o.PW; pw++) {
          let acc = 0;
          if (b >= 0 && b < N)
            for (let iy = 0; iy < gh; iy++)
              for (let ix = 0; ix < gw; ix++) acc += bil(base, sy + ph * bh + ((iy + 0.5) * bh) / gh, sx + pw * bw + ((ix + 0.5) * bw) / gw);
          out[((r * C + c) * o.PH + ph) * o.PW + pw] = acc / cnt;
        }
    }
  }
  return out;
}

/** torchvision LevelMapper in float64: level index (0-based from kMin) of each roi [R, 5]. */
export function refLevels(rois: ArrayLike<number>, R: number, L: number, kMin = 2, s0 = 224, k0 = 4): number[] {
  return Array.from({ length: R }, (_, r) => {
    const area = (rois[r * 5 + 3] - rois[r * 5 + 1]) * (rois[r * 5 + 4] - rois[r * 5 + 2]);
    return Math.min(Math.max(Math.floor(k0 + Math.log2(Math.sqrt(area) / s0) + 1e-6), kMin), kMin + L - 1) - kMin;
  });
}

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
