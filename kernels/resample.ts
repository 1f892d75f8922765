// Resampling of NCHW planes to an explicit output size, torch F.interpolate semantics:
//   nearest : src = min(floor(dst · in/out), in − 1), scale in f32 as torch's CPU/CUDA kernels.
//   bilinear: align_corners=true  src = dst · (in−1)/(out−1) (0 when out == 1);
//             align_corners=false src = max((dst + 0.5) · in/out − 0.5, 0); neighbours i0 = floor(src),
//             i1 = min(i0 + 1, in − 1), weights (1 − λ, λ).
// Backward is the gather form: each input pixel loops over the few outputs that can read it
// (a range from the inverse map, widened by 2, each re-checked exactly) — deterministic, no atomics.
// Fast path, bilinear align_corners=false at exactly 2× per axis (the keypoint head's 28 → 56):
// the scale is 0.5, so every source coordinate and λ (0, 0.25, 0.75) is exact in f32 and the
// taps are known in closed form; a 2-D/3-D grid gives plane and pixel without integer division.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

export type ResampleMode = 'nearest' | 'bilinear' | 'bilinearAligned';

/** Source scale per axis as torch computes it for an explicit output size. */
export function resampleScale(mode: ResampleMode, inPx: number, outPx: number): number {
  if (mode === 'bilinearAligned') return outPx > 1 ? (inPx - 1) / (outPx - 1) : 0;
  return inPx / outPx;
}

const WG = 256;

/** WGSL: source index/weights along one axis for output `d` (scale sc, input size n). */
function axis(mode: ResampleMode, d: string, sc: string, n: string, nm: string): string {
  if (mode === 'nearest') return `let ${nm}0 = min(u32(floor(f32(${d}) * ${sc})), ${n} - 1u); let ${nm}1 = ${nm}0; let ${nm}l = 0.0;`;
  const src = mode === 'bilinearAligned' ? `f32(${d}) * ${sc}` : `max((f32(${d}) + 0.5) * ${sc} - 0.5, 0.0)`;
  return `let ${nm}s = ${src}; let ${nm}0 = min(u32(floor(${nm}s)), ${n} - 1u); let ${nm}1 = min(${nm}0 + 1u, ${n} - 1u); let ${nm}l = ${nm}s - f32(${nm}0);`;
}

/** Output range [lo, hi] that may read input index `x` along an axis. */
function inverseRange(mode: ResampleMode, x: string, sc: string, out: string, nm: string): string {
  const back = (v: string) => (mode === 'bilinear' ? `(((${v}) + 0.5) / ${sc} - 0.5)` : `((${v}) / ${sc})`);
  return `var ${nm}lo = 0; var ${nm}hi = i32(${out}) - 1;
  if (${sc} > 0.0) { ${nm}lo = max(i32(floor(${back(`f32(${x}) - 1.0`)})) - 2, 0); ${nm}hi = min(i32(ceil(${back(`f32(${x}) + 1.0`)})) + 2, i32(${out}) - 1); }`;
}

/**
 * Forward (backward=false): Y [planes,Ho,Wo] from X [planes,H,W]; backward: DX from DY.
 * Bindings: source, destination.
 */
export function resampleLaunch(mode: ResampleMode, planes: number, H: number, W: number, Ho: number, Wo: number, backward: boolean): Launch {
  if (isBilinear2x(mode, planes, H, W, Ho, Wo)) return backward ? bilinear2xBackward(planes, H, W) : bilinear2xForward(planes, H, W);
  return resampleGeneralLaunch(mode, planes, H, W, Ho, Wo, backward);
}

/** Any mode and size, one thread per output (forward) or input (backward); the fast path's test oracle. */
export function resampleGeneralLaunch(mode: ResampleMode, planes: number, H: number, W: number, Ho: number, Wo: number, backward: boolean): Launch {
  const n = planes * (backward ? H * W : Ho * Wo);
  const fwd = `let plane = i / (u.Ho * u.Wo);
  let r = i % (u.Ho * u.Wo);
  let oh = r / u.Wo;
  let ow = r % u.Wo;
  ${axis(mode, 'oh', 'u.sh', 'u.H', 'h')}
  ${axis(mode, 'ow', 'u.sw', 'u.W', 'w')}
  let b = plane * u.H * u.W;
  ${mode === 'nearest'
    ? 'Dst[i] = Src[b + h0 * u.W + w0];'
    : `Dst[i] = (1.0 - hl) * ((1.0 - wl) * Src[b + h0 * u.W + w0] + wl * Src[b + h0 * u.W + w1]) + hl * ((1.0 - wl) * Src[b + h1 * u.W + w0] + wl * Src[b + h1 * u.W + w1]);`}`;
  const bwd = `let plane = i / (u.H * u.W);
  let r = i % (u.H * u.W);
  let h = r / u.W;
  let w = r % u.W;
  ${inverseRange(mode, 'h', 'u.sh', 'u.Ho', 'oh')}
  ${inverseRange(mode, 'w', 'u.sw', 'u.Wo', 'ow')}
  var acc = 0.0;
  for (var oh = u32(ohlo); i32(oh) <= ohhi; oh++) {
    ${axis(mode, 'oh', 'u.sh', 'u.H', 'h')}
    let wh = select(0.0, 1.0 - hl, h0 == h) + select(0.0, hl, h1 == h);
    if (wh != 0.0 || (h0 == h)) {
      for (var ow = u32(owlo); i32(ow) <= owhi; ow++) {
        ${axis(mode, 'ow', 'u.sw', 'u.W', 'w')}
        let ww = select(0.0, 1.0 - wl, w0 == w) + select(0.0, wl, w1 == w);
        acc += wh * ww * Src[plane * u.Ho * u.Wo + oh * u.Wo + ow];
      }
    }
  }
  Dst[i] = acc;`;
  return {
    key: `resample:${mode}${backward ? ':bwd' : ''}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['H', 'u32'], ['W', 'u32'], ['Ho', 'u32'], ['Wo', 'u32'], ['sh', 'f32'], ['sw', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  ${backward ? bwd : fwd}
}`,
    }),
    uniforms: [n, H, W, Ho, Wo, Math.fround(resampleScale(mode, H, Ho)), Math.fround(resampleScale(mode, W, Wo))],
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Whether resampleLaunch takes the exact-2× bilinear fast path (planes go on grid z, <= 65535). */
export function isBilinear2x(mode: ResampleMode, planes: number, H: number, W: number, Ho: number, Wo: number): boolean {
  return mode === 'bilinear' && Ho === 2 * H && Wo === 2 * W && planes <= 65535 && H > 0 && W > 0;
}

const WG2: [number, number] = [8, 8];
const head2x = (body: string) => `
@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<f32>;
@compute @workgroup_size(${WG2[0]}, ${WG2[1]}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${body}
}`;

/**
 * Forward at exactly 2×: thread (k, j), k in [0, H], j in [0, W], writes outputs rows {2k−1, 2k}
 * × cols {2j−1, 2j} (those inside the output), which all read the same input rows
 * rA = max(k−1, 0), rB = min(rA+1, H−1) and cols likewise. λ = 0.25 for the odd output, 0.75 for
 * the even one except output 0 (source clamped to 0: λ = 0). Same expression as the general path.
 */
function bilinear2xForward(planes: number, H: number, W: number): Launch {
  const out = (oh: string, hl: string, ow: string, wl: string) =>
    `Dst[o + (${oh}) * Wo + ${ow}] = (1.0 - ${hl}) * ((1.0 - ${wl}) * a00 + ${wl} * a01) + ${hl} * ((1.0 - ${wl}) * a10 + ${wl} * a11);`;
  const rowOut = (oh: string, hl: string) => `    if (j > 0u) { ${out(oh, hl, '2u * j - 1u', '0.25')} }
    if (j < u.W) { ${out(oh, hl, '2u * j', 'mE')} }`;
  const body = `let j = gid.x; let k = gid.y; let plane = gid.z;
  if (j > u.W || k > u.H) { return; }
  let rA = select(k - 1u, 0u, k == 0u); let rB = min(rA + 1u, u.H - 1u);
  let cA = select(j - 1u, 0u, j == 0u); let cB = min(cA + 1u, u.W - 1u);
  let b = plane * u.H * u.W;
  let a00 = Src[b + rA * u.W + cA]; let a01 = Src[b + rA * u.W + cB];
  let a10 = Src[b + rB * u.W + cA]; let a11 = Src[b + rB * u.W + cB];
  let Wo = 2u * u.W;
  let o = plane * 4u * u.H * u.W;
  let lE = select(0.75, 0.0, k == 0u); let mE = select(0.75, 0.0, j == 0u);
  // rows: odd output 2k−1 (λ 0.25) exists for k >= 1, even output 2k (λ lE) for k < H
  if (k > 0u) {
${rowOut('2u * k - 1u', '0.25')}
  }
  if (k < u.H) {
${rowOut('2u * k', 'lE')}
  }`;
  return {
    key: 'resample:bilinear:2x',
    build: () => ({ uniforms: [['H', 'u32'], ['W', 'u32']], code: head2x(body) }),
    uniforms: [H, W],
    grid: [cdiv(W + 1, WG2[0]), cdiv(H + 1, WG2[1]), planes],
  };
}

/**
 * Backward at exactly 2×: input h is read by outputs 2h−1+t, t = 0..3, with weights 0.25, 0.75,
 * 0.75, 0.25; at h = 0 output 0 (λ 0) gives it 1, at h = H−1 output 2H−1 (both taps on H−1) gives
 * it 1; outputs outside [0, 2H) get weight 0 (their index clamped). Per axis, so the 2-D sum is
 * Σ_t wr(t) · Σ_s wc(s) · dY[row t, col s].
 */
function bilinear2xBackward(planes: number, H: number, W: number): Launch {
  const ROWS = ['r0', '2u * h', '2u * h + 1u', 'r3'];
  const taps = (x: string, n: string, nm: string) => `let ${nm}w0 = select(0.25, 0.0, ${x} == 0u); let ${nm}w1 = select(0.75, 1.0, ${x} == 0u);
  let ${nm}w2 = select(0.75, 1.0, ${x} + 1u == ${n}); let ${nm}w3 = select(0.25, 0.0, ${x} + 1u == ${n});
  let ${nm}0 = select(2u * ${x} - 1u, 0u, ${x} == 0u); let ${nm}3 = min(2u * ${x} + 2u, 2u * ${n} - 1u);`;
  const body = `let w = gid.x; let h = gid.y; let plane = gid.z;
  if (w >= u.W || h >= u.H) { return; }
  ${taps('h', 'u.H', 'r')}
  ${taps('w', 'u.W', 'c')}
  let Wo = 2u * u.W;
  let b = plane * 4u * u.H * u.W;
  let c1 = 2u * w; let c2 = c1 + 1u;
  var acc = 0.0;
${[0, 1, 2, 3].map((t) => `  { let p = b + (${ROWS[t]}) * Wo;
    acc += rw${t} * (cw0 * Src[p + c0] + cw1 * Src[p + c1] + cw2 * Src[p + c2] + cw3 * Src[p + c3]); }`).join('\n')}
  Dst[(plane * u.H + h) * u.W + w] = acc;`;
  return {
    key: 'resample:bilinear:2x:bwd',
    build: () => ({ uniforms: [['H', 'u32'], ['W', 'u32']], code: head2x(body) }),
    uniforms: [H, W],
    grid: [cdiv(W, WG2[0]), cdiv(H, WG2[1]), planes],
  };
}

/** Float64 adjoint of refResample: dX from dY [planes, Ho, Wo] (each output's taps scattered back). */
export function refResampleBackward(mode: ResampleMode, dy: ArrayLike<number>, planes: number, H: number, W: number, Ho: number, Wo: number): Float64Array {
  const dx = new Float64Array(planes * H * W);
  const unit = new Float64Array(H * W);
  // The map is linear and per plane: column (h, w) of it is refResample of a unit impulse.
  for (let i = 0; i < H * W; i++) {
    unit.fill(0);
    unit[i] = 1;
    const col = refResample(mode, unit, 1, H, W, Ho, Wo);
    for (let p = 0; p < planes; p++) {
      let s = 0;
      for (let o = 0; o < Ho * Wo; o++) if (col[o] !== 0) s += col[o] * dy[p * Ho * Wo + o];
      dx[p * H * W + i] = s;
    }
  }
  return dx;
}

/** Float64 reference (the scale rounded to f32 as torch's float kernels; indices then follow exactly). */
export function refResample(mode: ResampleMode, x: ArrayLike<number>, planes: number, H: number, W: number, Ho: number, Wo: number): Float64Array {
  const sh = Math.fround(resampleScale(mode, H, Ho));
  const sw = Math.fround(resampleScale(mode, W, Wo));
  const ax = (d: number, sc: number, n: number): [number, number, number] => {
    if (mode === 'nearest') return [Math.min(Math.floor(Math.fround(d * sc)), n - 1), 0, 0];
    const s = mode === 'bilinearAligned' ? d * sc : Math.max((d + 0.5) * sc - 0.5, 0);
    const i0 = Math.min(Math.floor(s), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  const y = new Float64Array(planes * Ho * Wo);
  for (let p = 0; p < planes; p++)
    for (let oh = 0; oh < Ho; oh++)
      for (let ow = 0; ow < Wo; ow++) {
        const [h0, h1, hl] = ax(oh, sh, H);
        const [w0, w1, wl] = ax(ow, sw, W);
        const at = (h: number, w: number) => x[(p * H + h) * W + w];
        y[(p * Ho + oh) * Wo + ow] = mode === 'nearest' ? at(h0, w0) : (1 - hl) * ((1 - wl) * at(h0, w0) + wl * at(h0, w1)) + hl * ((1 - wl) * at(h1, w0) + wl * at(h1, w1));
      }
  return y;
}
