// Resampling of NCHW planes to an explicit output size, torch F.interpolate semantics:
//   nearest : src = min(floor(dst · in/out), in − 1), scale in f32 as torch's CPU/CUDA kernels.
//   bilinear: align_corners=true  src = dst · (in−1)/(out−1) (0 when out == 1);
//             align_corners=false src = max((dst + 0.5) · in/out − 0.5, 0); neighbours i0 = floor(src),
//             i1 = min(i0 + 1, in − 1), weights (1 − λ, λ).
// Backward is the gather form: each input pixel loops over the few outputs that can read it
// (a range from the inverse map, widened by 2, each re-checked exactly) — deterministic, no atomics.
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
