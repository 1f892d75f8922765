// Optimizer kernels: fused SGD step (weight decay, momentum, clip coefficient read from a GPU
// buffer so clipping needs no readback) and the clip coefficient from per-parameter sums of squares.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

/**
 * torch.optim.SGD (dampening 0): d = g·clip + wd·p; buf = m·buf + d (buf starts at 0, so the first
 * step gives buf = d as torch's clone); p -= lr·(nesterov ? d + m·buf : buf).
 * clipState: [totalNorm, clipCoef] written by clipCoefLaunch (coef 1 when clipping is off).
 */
export function sgdLaunch(n: number, lr: number, momentum: number, weightDecay: number, nesterov: boolean): Launch {
  const WG = 256;
  const useMom = momentum !== 0;
  return {
    key: `sgd:${useMom ? 'mom' : 'plain'}${nesterov ? ':nesterov' : ''}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['lr', 'f32'], ['momentum', 'f32'], ['wd', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf: array<f32>;
@group(0) @binding(3) var<storage, read> clip: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let d = g[i] * clip[1] + u.wd * p[i];
  ${useMom ? `let b = u.momentum * buf[i] + d; buf[i] = b; p[i] = p[i] - u.lr * ${nesterov ? '(d + u.momentum * b)' : 'b'};` : 'p[i] = p[i] - u.lr * d;'}
}`,
    }),
    uniforms: [n, lr, momentum, weightDecay],
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Sum of squares of one gradient into slot `slot` of sums (one workgroup per chunk, then atomically free: slot per chunk). */
export function sumSquaresLaunch(n: number, slotBase: number, chunks: number): Launch {
  const WG = 256;
  return {
    key: 'sumsq',
    build: () => ({
      uniforms: [['n', 'u32'], ['slot', 'u32'], ['chunkLen', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let r0 = c * u.chunkLen;
  let r1 = min(u.n, r0 + u.chunkLen);
  var s = 0.0;
  for (var i = r0 + lid; i < r1; i += ${WG}u) { let v = g[i]; s = fma(v, v, s); }
  sh[lid] = s;
  for (var k = ${WG / 2}u; k > 0u; k >>= 1u) {
    workgroupBarrier();
    if (lid < k) { sh[lid] = sh[lid] + sh[lid + k]; }
  }
  if (lid == 0u) { sums[u.slot + c] = sh[0]; }
}`,
    }),
    uniforms: [n, slotBase, cdiv(n, chunks)],
    grid: [chunks],
  };
}

/** clipState = [sqrt(Σ sums), min(1, maxNorm / (norm + 1e-6))] (torch clip_grad_norm_). maxNorm <= 0: coef 1. */
export function clipCoefLaunch(count: number, maxNorm: number): Launch {
  return {
    key: 'clip-coef',
    build: () => ({
      uniforms: [['count', 'u32'], ['maxNorm', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@compute @workgroup_size(1) fn main() {
  var s = 0.0;
  for (var i = 0u; i < u.count; i++) { s += sums[i]; }
  let norm = sqrt(s);
  state[0] = norm;
  state[1] = select(1.0, min(1.0, u.maxNorm / (norm + 1e-6)), u.maxNorm > 0.0);
}`,
    }),
    uniforms: [count, maxNorm],
    grid: [1],
  };
}

/** Float64 reference of one SGD step (returns new p and buf). */
export function refSgd(p: ArrayLike<number>, g: ArrayLike<number>, buf: ArrayLike<number>, lr: number, momentum: number, wd: number, nesterov: boolean, clipCoef = 1): { p: Float64Array; buf: Float64Array } {
  const np = Float64Array.from(p);
  const nb = Float64Array.from(buf);
  for (let i = 0; i < np.length; i++) {
    const d = g[i] * clipCoef + wd * p[i];
    if (momentum !== 0) {
      nb[i] = momentum * buf[i] + d;
      np[i] = p[i] - lr * (nesterov ? d + momentum * nb[i] : nb[i]);
    } else np[i] = p[i] - lr * d;
  }
  return { p: np, buf: nb };
}
