// Batch norm over NCHW: per-channel statistics over (N, H, W) as a two-level reduction —
// workgroups of 64 lanes each Welford-accumulate a chunk of one channel, lanes and then chunks are
// merged with Chan's pairwise formula (numerically stable: no E[x²] − E[x]² cancellation), a
// per-channel finalize writes mean/invstd/scale/shift and updates the running stats in place
// (momentum, unbiased running_var as torch). The normalization itself is a per-channel affine
// y = x·scale[c] + shift[c] (+ReLU), shared by train, eval and frozen BN.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 64;

export interface ChannelPlan { C: number; M: number; HW: number; N: number; chunks: number; perChunk: number }

/** Chunks per channel: enough workgroups to fill the device, >= 4096 elements per chunk. */
export function planChannels(N: number, C: number, HW: number): ChannelPlan {
  const M = N * HW;
  let chunks = Math.max(1, Math.min(cdiv(M, 4096), cdiv(256, C)));
  const perChunk = cdiv(M, chunks);
  chunks = cdiv(M, perChunk);
  return { C, M, HW, N, chunks, perChunk };
}

/** Visits elements [e0, e1) of channel c (e = n·HW + hw) plane by plane: no per-element division. */
const chunkLoop = (body: string) => `
  let e0 = wid.x * u.perChunk;
  let e1 = min(e0 + u.perChunk, u.M);
  for (var n = e0 / u.HW; n * u.HW < e1; n++) {
    let pb = n * u.HW;
    let h0 = max(e0, pb) - pb;
    let h1 = min(e1, pb + u.HW) - pb;
    let base = (n * u.C + c) * u.HW;
    for (var hw = h0 + lid; hw < h1; hw += ${WG}u) {
      let i = base + hw;
      ${body}
    }
  }`;

const planUniforms: [string, 'u32'][] = [['C', 'u32'], ['M', 'u32'], ['HW', 'u32'], ['perChunk', 'u32'], ['chunks', 'u32']];
const planValues = (p: ChannelPlan) => [p.C, p.M, p.HW, p.perChunk, p.chunks];

/** Pass 1: X [N,C,H,W] → Part [C, chunks] of vec4(count, mean, M2, 0). Grid (chunks, C). */
export function bnStatsPartialLaunch(p: ChannelPlan): Launch {
  return {
    key: 'bn-stats-partial',
    build: () => ({
      uniforms: planUniforms,
      code: `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Part: array<vec4<f32>>;
var<workgroup> sh: array<vec3<f32>, ${WG}>;
fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n));
}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.y;
  var cnt = 0.0; var mean = 0.0; var m2 = 0.0;
  ${chunkLoop('let x = X[i]; cnt += 1.0; let d = x - mean; mean += d / cnt; m2 += d * (x - mean);')}
  sh[lid] = vec3<f32>(cnt, mean, m2);
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] = chan(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { let r = sh[0]; Part[c * u.chunks + wid.x] = vec4<f32>(r, 0.0); }
}`,
    }),
    uniforms: planValues(p),
    grid: [p.chunks, p.C],
  };
}

/**
 * Pass 2, one thread per channel: Part → Stats [C, 4] = (mean, invstd, scale, shift) with
 * scale = γ·invstd, shift = β − mean·scale; updates RunMean/RunVar in place when `update`.
 * Bindings: Part, Gamma [C], Beta [C], Stats, RunMean, RunVar.
 */
export function bnStatsFinalizeLaunch(p: ChannelPlan, eps: number, momentum: number, update: boolean): Launch {
  return {
    key: `bn-stats-final${update ? ':upd' : ''}`,
    build: () => ({
      uniforms: [...planUniforms, ['eps', 'f32'], ['momentum', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> Part: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read> Beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> Stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> RunMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> RunVar: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= u.C) { return; }
  var a = vec3<f32>(0.0);
  for (var k = 0u; k < u.chunks; k++) {
    let b = Part[c * u.chunks + k].xyz;
    let n = a.x + b.x;
    if (n > 0.0) { let d = b.y - a.y; a = vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n)); }
  }
  let varB = a.z / a.x;
  let invstd = 1.0 / sqrt(varB + u.eps);
  let scale = Gamma[c] * invstd;
  Stats[c] = vec4<f32>(a.y, invstd, scale, Beta[c] - a.y * scale);
  ${update ? 'RunMean[c] = (1.0 - u.momentum) * RunMean[c] + u.momentum * a.y; RunVar[c] = (1.0 - u.momentum) * RunVar[c] + u.momentum * (a.z / max(a.x - 1.0, 1.0));' : ''}
}`,
    }),
    uniforms: [...planValues(p), eps, momentum],
    grid: [cdiv(p.C, WG)],
  };
}

/**
 * y = x·Scale[c] + Shift[c] (+ReLU) over contiguous X [N,C,H,W]. Scale/Shift are read with an
 * element offset and stride (BN stats rows are vec4: stride 4). Bindings: X, Scale, Shift, Y.
 */
export function channelAffineLaunch(n: number, C: number, HW: number, relu: boolean, sc: { off: number; stride: number }, sh: { off: number; stride: number }, xoff = 0): Launch {
  const WGA = 256;
  return {
    key: `chan-affine${relu ? ':relu' : ''}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['C', 'u32'], ['HW', 'u32'], ['xoff', 'u32'], ['so', 'u32'], ['ss', 'u32'], ['to', 'u32'], ['ts', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Scale: array<f32>;
@group(0) @binding(2) var<storage, read> Shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WGA}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WGA}u + lid;
  if (i >= u.n) { return; }
  let c = (i / u.HW) % u.C;
  let v = fma(X[u.xoff + i], Scale[u.so + c * u.ss], Shift[u.to + c * u.ts]);
  Y[i] = ${relu ? 'max(v, 0.0)' : 'v'};
}`,
    }),
    uniforms: [n, C, HW, xoff, sc.off, sc.stride, sh.off, sh.stride],
    grid: grid1d(cdiv(n, WGA)),
  };
}

/**
 * Per-channel sums of the backward: Out [C, chunks] of vec2(Σ dy, Σ dy·x̂) where x̂ = (x − mean)·invstd
 * from Stats (`normalized`) or x itself (affine backward: Σ dy·x). Bindings: DY, X, Stats, Part.
 * Reduced over chunks by channelSumsFinalizeLaunch.
 */
export function channelSumsPartialLaunch(p: ChannelPlan, normalized: boolean): Launch {
  return {
    key: `chan-sums-partial${normalized ? ':norm' : ''}`,
    build: () => ({
      uniforms: planUniforms,
      code: `
@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Stats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Part: array<vec2<f32>>;
var<workgroup> sh: array<vec2<f32>, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.y;
  ${normalized ? 'let st = Stats[c];' : ''}
  var acc = vec2<f32>(0.0);
  ${chunkLoop(`let dy = DY[i]; let xh = ${normalized ? '(X[i] - st.x) * st.y' : 'X[i]'}; acc += vec2<f32>(dy, dy * xh);`)}
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] = sh[lid] + sh[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { Part[c * u.chunks + wid.x] = sh[0]; }
}`,
    }),
    uniforms: planValues(p),
    grid: [p.chunks, p.C],
  };
}

/** Part [C, chunks] vec2 → Sums [2, C]: row 0 Σ dy (dβ / dshift), row 1 Σ dy·x̂ (dγ / dscale). */
export function channelSumsFinalizeLaunch(p: ChannelPlan): Launch {
  return {
    key: 'chan-sums-final',
    build: () => ({
      uniforms: planUniforms,
      code: `
@group(0) @binding(0) var<storage, read> Part: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> Sums: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= u.C) { return; }
  var a = vec2<f32>(0.0);
  for (var k = 0u; k < u.chunks; k++) { a += Part[c * u.chunks + k]; }
  Sums[c] = a.x;
  Sums[u.C + c] = a.y;
}`,
    }),
    uniforms: planValues(p),
    grid: [cdiv(p.C, WG)],
  };
}

/**
 * Training-mode BN input grad: dx = γ·invstd/M · (M·dy − Σdy − x̂·Σdy·x̂).
 * Bindings: DY, X, Stats [C,4], Gamma [C], Sums [2,C], DX.
 */
export function bnBackwardLaunch(n: number, p: ChannelPlan): Launch {
  const WGA = 256;
  return {
    key: 'bn-backward',
    build: () => ({
      uniforms: [['n', 'u32'], ['C', 'u32'], ['HW', 'u32'], ['M', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Stats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Gamma: array<f32>;
@group(0) @binding(4) var<storage, read> Sums: array<f32>;
@group(0) @binding(5) var<storage, read_write> DX: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WGA}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WGA}u + lid;
  if (i >= u.n) { return; }
  let c = (i / u.HW) % u.C;
  let st = Stats[c];
  let xh = (X[i] - st.x) * st.y;
  DX[i] = Gamma[c] * st.y / u.M * (u.M * DY[i] - Sums[c] - xh * Sums[u.C + c]);
}`,
    }),
    uniforms: [n, p.C, p.HW, p.M],
    grid: grid1d(cdiv(n, WGA)),
  };
}

// ---- float64 references ------------------------------------------------------------------------

/** Training-mode BN forward: y, batch mean, biased var per channel. x: [N,C,H,W]. */
export function refBatchNormTrain(x: ArrayLike<number>, shape: number[], gamma: ArrayLike<number>, beta: ArrayLike<number>, eps: number): { y: Float64Array; mean: Float64Array; varB: Float64Array } {
  const [N, C, H, W] = shape;
  const HW = H * W;
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[(n * C + c) * HW + i];
    mean[c] = s / (N * HW);
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) v += (x[(n * C + c) * HW + i] - mean[c]) ** 2;
    varB[c] = v / (N * HW);
  }
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / HW) % C;
    y[i] = ((x[i] - mean[c]) / Math.sqrt(varB[c] + eps)) * gamma[c] + beta[c];
  }
  return { y, mean, varB };
}

/** Per-channel affine y = x·scale[c] + shift[c] (eval / frozen BN with precomputed scale, shift). */
export function refChannelAffine(x: ArrayLike<number>, shape: number[], scale: ArrayLike<number>, shift: ArrayLike<number>): Float64Array {
  const C = shape[1];
  const HW = shape[2] * shape[3];
  return Float64Array.from(x, (v, i) => v * scale[Math.floor(i / HW) % C] + shift[Math.floor(i / HW) % C]);
}
