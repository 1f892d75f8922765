// Optimizer kernels: fused SGD and AdamW steps (clip coefficient read from a GPU buffer so
// clipping needs no readback) and the clip coefficient from per-parameter sums of squares.
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

/** Host-side scalars of one AdamW step (f64 here; the kernel receives them rounded to f32, as torch's CPU kernels round Python scalars). */
export interface AdamWScalars {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count t. */
  step: number;
}

/**
 * torch.optim.AdamW (amsgrad=False, maximize=False), in the operation order of torch 1.13's
 * _single_tensor_adamw: g = grad·clip; p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g·g;
 * p −= (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps). The step-dependent factors and lr are
 * uniforms (never in the key: lr and t change every iteration). m and v start at 0.
 * n divisible by 4 takes a vec4 path with VPT vec4s per thread (lavapipe's per-thread cost is
 * large); otherwise one element per thread. Only elements < n are written (a parameter may be an
 * offset-0 view of a larger buffer).
 * clipState: [totalNorm, clipCoef] written by clipCoefLaunch (coef 1 when clipping is off).
 */
export function adamwLaunch(n: number, s: AdamWScalars): Launch {
  if (!(s.step >= 1 && Number.isInteger(s.step))) throw new Error(`adamw: step t must be an integer >= 1 (got ${s.step})`);
  if (!(s.beta1 >= 0 && s.beta1 < 1 && s.beta2 >= 0 && s.beta2 < 1)) throw new Error(`adamw: betas must lie in [0, 1) (got ${s.beta1}, ${s.beta2})`);
  if (n >= 2 ** 32) throw new Error(`adamw: ${n} elements > u32 index limit`);
  const WG = 256;
  const vec = n % 4 === 0;
  const VPT = 2;
  const T = vec ? 'vec4f' : 'f32';
  const bc2 = 1 - Math.pow(s.beta2, s.step);
  const uniforms = [
    vec ? n / 4 : n,
    1 - s.lr * s.weightDecay,
    s.beta1,
    1 - s.beta1,
    s.beta2,
    1 - s.beta2,
    s.lr / (1 - Math.pow(s.beta1, s.step)),
    Math.sqrt(bc2),
    s.eps,
  ];
  const body = (idx: string) => `if (${idx} < u.n) {
    let gi = g[${idx}] * clip[1];
    let mi = u.beta1 * m[${idx}] + u.omb1 * gi;
    let vi = u.beta2 * v[${idx}] + u.omb2 * gi * gi;
    m[${idx}] = mi;
    v[${idx}] = vi;
    p[${idx}] = p[${idx}] * u.decay - u.stepSize * (mi / (sqrt(vi) / u.bc2sqrt + u.eps));
  }`;
  const per = vec ? VPT : 1;
  return {
    key: `adamw:${vec ? `v4x${VPT}` : 's'}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['decay', 'f32'], ['beta1', 'f32'], ['omb1', 'f32'], ['beta2', 'f32'], ['omb2', 'f32'], ['stepSize', 'f32'], ['bc2sqrt', 'f32'], ['eps', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read_write> p: array<${T}>;
@group(0) @binding(1) var<storage, read> g: array<${T}>;
@group(0) @binding(2) var<storage, read_write> m: array<${T}>;
@group(0) @binding(3) var<storage, read_write> v: array<${T}>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = wgLinear(wid, nwg) * ${WG * per}u + lid;
  ${Array.from({ length: per }, (_, k) => `let i${k} = base + ${k * WG}u;\n  ${body(`i${k}`)}`).join('\n  ')}
}`,
    }),
    uniforms,
    grid: grid1d(cdiv(vec ? n / 4 : n, WG * per)),
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

/** Float64 reference of one AdamW step (textbook form: m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)); returns new p, m, v. */
export function refAdamW(p: ArrayLike<number>, g: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, s: AdamWScalars, clipCoef = 1): { p: Float64Array; m: Float64Array; v: Float64Array } {
  const np = new Float64Array(p.length);
  const nm = new Float64Array(p.length);
  const nv = new Float64Array(p.length);
  const bc1 = 1 - Math.pow(s.beta1, s.step);
  const bc2 = 1 - Math.pow(s.beta2, s.step);
  for (let i = 0; i < np.length; i++) {
    const gi = g[i] * clipCoef;
    nm[i] = s.beta1 * m[i] + (1 - s.beta1) * gi;
    nv[i] = s.beta2 * v[i] + (1 - s.beta2) * gi * gi;
    const mh = nm[i] / bc1;
    const vh = nv[i] / bc2;
    np[i] = p[i] * (1 - s.lr * s.weightDecay) - s.lr * mh / (Math.sqrt(vh) + s.eps);
  }
  return { p: np, m: nm, v: nv };
}
