// Reductions over any set of dims: sum (with a final scale, so mean is free), max, min, argmax,
// argmin. The input is read through its strides (no transpose copy); kept and reduced dims are
// coalesced separately. Threads only, no workgroup barriers (lavapipe implements barriers
// expensively; two passes cost little on GPUs): P threads per output each walk the innermost
// reduced dim interleaved (p, p+P, ...: adjacent lanes read adjacent addresses) inside a loop over
// the outer reduced dims (one div/mod per outer step, none per element). With P > 1 a second pass
// (partialsLaunch) combines the P partials of each output.
import { type DType, type Launch, type View, cdiv, coalesce, contiguousStrides, dimRef, grid1d, numel, pack8, WG_LINEAR } from './common.ts';

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';
export const isArgReduce = (op: ReduceOp) => op === 'argmax' || op === 'argmin';

const WG = 256;
/**
 * Threads to keep in flight. A GPU wants ~16k; a CPU Vulkan (lavapipe: 2 cores × 8 lanes) is
 * full with ~1k, and there one thread streaming its own row sequentially beat interleaved
 * partials (5.2 vs 2-3 GB/s on [2048, 2048] summed over rows), so it gets the single pass sooner.
 */
export const TARGET_THREADS_GPU = 16384;
export const TARGET_THREADS_CPU = 1024;

export interface ReducePlan {
  nOut: number;
  R: number;
  /** Partial threads per output (1: single pass). */
  chunks: number;
}

export function planReduce(nOut: number, R: number, innerLen: number, targetThreads = TARGET_THREADS_GPU): ReducePlan {
  if (nOut >= targetThreads / 4) return { nOut, R, chunks: 1 };
  const chunks = Math.max(1, Math.min(cdiv(targetThreads, nOut), Math.floor(R / 32), innerLen));
  return { nOut, R, chunks };
}

function identity(op: ReduceOp, dtype: DType): string {
  if (op === 'sum') return `${dtype}(0)`;
  const big = dtype === 'f32' ? '3.4028234663852886e38' : dtype === 'i32' ? '2147483647' : '4294967295u';
  const small = dtype === 'f32' ? '-3.4028234663852886e38' : dtype === 'i32' ? '(-2147483647 - 1)' : '0u';
  return op === 'max' || op === 'argmax' ? small : big;
}

/** WGSL: combine (va, ia) with (vb, ib) into (va, ia); ties keep the lower index (torch: first occurrence). */
function combine(op: ReduceOp): string {
  switch (op) {
    case 'sum': return 'va = va + vb;';
    case 'max': return 'va = max(va, vb);';
    case 'min': return 'va = min(va, vb);';
    case 'argmax': return 'if (vb > va || (vb == va && ib < ia)) { va = vb; ia = ib; }';
    case 'argmin': return 'if (vb < va || (vb == va && ib < ia)) { va = vb; ia = ib; }';
  }
}

/**
 * Reduction launch. `x` is the input view; `red` lists reduced dims. Output: contiguous over the
 * kept dims in order. For plans with chunks > 1 the launch writes partials [nOut, chunks] (values
 * and, for arg ops, indices) and `partialsLaunch` finishes.
 */
export function reduceLaunch(op: ReduceOp, dtype: DType, x: View, red: number[], scale = 1, targetThreads = TARGET_THREADS_GPU): { launch: Launch; plan: ReducePlan } {
  const keptDims = x.shape.map((_, i) => i).filter((i) => !red.includes(i));
  const keptShape = keptDims.map((i) => x.shape[i]);
  const redShape = red.map((i) => x.shape[i]);
  const nOut = numel(keptShape);
  const R = numel(redShape);
  const kc = coalesce(keptShape, [keptDims.map((i) => x.strides[i])]);
  // Strides 0: input strides; 1: flat row-major index in the uncoalesced reduced space (argmax).
  const rc = coalesce(redShape, [red.map((i) => x.strides[i]), contiguousStrides(redShape)]);
  const kr = kc.shape.length;
  const rr = rc.shape.length;
  const innerLen = rc.shape[rr - 1];
  const p = planReduce(nOut, R, innerLen, targetThreads);
  const arg = isArgReduce(op);
  const final = p.chunks === 1;
  // Lane mapping: when the reduced inner dim is unit-stride, adjacent lanes take adjacent
  // elements of one row (t = o·P + p); otherwise adjacent lanes take adjacent outputs
  // (t = p·nOut + o), which are the adjacent addresses when reducing a leading dim.
  const rowMajor = Math.abs(rc.strides[0][rr - 1]) === 1 || p.chunks === 1;
  // CPU plans give each partial thread a contiguous block of the row instead of an interleaved
  // slice: a lane then reuses each cache line it touches (measured on lavapipe: sum of 4M
  // elements 2.2 → see bench), while GPUs want the interleave for coalescing.
  const blocked = targetThreads <= TARGET_THREADS_CPU && !final;
  const key = `reduce:${op}:${dtype}:k${kr}:r${rr}:${final ? 'final' : 'partial'}${rowMajor ? '' : ':om'}${blocked ? ':blk' : ''}`;
  const outType = final && arg ? 'i32' : dtype;
  const outer = rc.shape.slice(0, -1);
  const outerOffset = Array.from({ length: rr - 1 }, (_, t) => {
    const d = rr - 2 - t;
    const sh = dimRef('rsh', d);
    return `{ let c = ${d > 0 ? `rem % ${sh}` : 'rem'}; off += i32(c) * ${dimRef('rst', d)}; fl += c * u32(${dimRef('rfl', d)}); ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join(' ');
  const keptOffset = Array.from({ length: kr }, (_, t) => {
    const d = kr - 1 - t;
    const sh = dimRef('ksh', d);
    return `{ let c = ${d > 0 ? `rem % ${sh}` : 'rem'}; base += i32(c) * ${dimRef('kst', d)}; ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join(' ');
  const store = () => {
    if (final && arg) return 'out[o] = ia;';
    if (final && op === 'sum' && dtype === 'f32') return 'out[o] = va * u.scale;';
    if (arg) return 'out[o * u.P + p] = va; outIdx[o * u.P + p] = ia;';
    return final ? 'out[o] = va;' : 'out[o * u.P + p] = va;';
  };
  return {
    plan: p,
    launch: {
      key,
      build: () => ({
        uniforms: [
          ['ksh0', 'vec4u'], ['ksh1', 'vec4u'], ['kst0', 'vec4i'], ['kst1', 'vec4i'],
          ['rsh0', 'vec4u'], ['rsh1', 'vec4u'], ['rst0', 'vec4i'], ['rst1', 'vec4i'], ['rfl0', 'vec4i'], ['rfl1', 'vec4i'],
          ['nOut', 'u32'], ['P', 'u32'], ['outerCount', 'u32'], ['inner', 'u32'], ['innerStride', 'i32'], ['innerFlat', 'u32'], ['offset', 'u32'], ['scale', 'f32'],
        ],
        code: `
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> out: array<${outType}>;
${arg && !final ? '@group(0) @binding(2) var<storage, read_write> outIdx: array<i32>;' : ''}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.nOut * u.P) { return; }
  let o = ${rowMajor ? 't / u.P' : 't % u.nOut'};
  let p = ${rowMajor ? 't % u.P' : 't / u.nOut'};
  var base = i32(u.offset);
  { var rem = o; ${keptOffset} }
  var va = ${identity(op, dtype)}; var ia = 0x7fffffff;
  for (var ro = 0u; ro < u.outerCount; ro++) {
    var off = base; var fl = 0u;
    { var rem = ro; ${outerOffset} }
    ${blocked ? 'let blk = (u.inner + u.P - 1u) / u.P; for (var ri = p * blk; ri < min(u.inner, (p + 1u) * blk); ri++) {' : 'for (var ri = p; ri < u.inner; ri += u.P) {'}
      let vb = x[off + i32(ri) * u.innerStride];
      let ib = i32(fl + ri * u.innerFlat);
      ${combine(op)}
    }
  }
  ${store()}
}`,
      }),
      uniforms: [
        ...pack8(kc.shape, 1), ...pack8(kc.strides[0], 0),
        ...pack8(outer, 1), ...pack8(rc.strides[0].slice(0, -1), 0), ...pack8(rc.strides[1].slice(0, -1), 0),
        nOut, p.chunks, numel(outer), innerLen, rc.strides[0][rr - 1], rc.strides[1][rr - 1], x.offset, scale,
      ],
      grid: grid1d(cdiv(nOut * p.chunks, WG)),
    },
  };
}

/** Second pass of a split reduction: partial values (and indices) [nOut, chunks] → [nOut]. */
export function partialsLaunch(op: ReduceOp, dtype: DType, nOut: number, chunks: number, scale = 1): Launch {
  const arg = isArgReduce(op);
  const outType = arg ? 'i32' : dtype;
  const combineOp = op === 'sum' ? 'va = va + vb;' : combine(op);
  return {
    key: `reduce-partials:${op}:${dtype}`,
    build: () => ({
      uniforms: [['nOut', 'u32'], ['chunks', 'u32'], ['scale', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> pv: array<${dtype}>;
${arg ? '@group(0) @binding(1) var<storage, read> pi: array<i32>;' : ''}
@group(0) @binding(${arg ? 2 : 1}) var<storage, read_write> out: array<${outType}>;
${WG_LINEAR}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = wgLinear(wid, nwg) * 64u + lid;
  if (o >= u.nOut) { return; }
  var va = pv[o * u.chunks]; var ia = ${arg ? 'pi[o * u.chunks]' : '0'};
  for (var c = 1u; c < u.chunks; c++) {
    let vb = pv[o * u.chunks + c]; let ib = ${arg ? 'pi[o * u.chunks + c]' : '0'};
    ${combineOp}
  }
  ${arg ? 'out[o] = ia;' : op === 'sum' && dtype === 'f32' ? 'out[o] = va * u.scale;' : 'out[o] = va;'}
}`,
    }),
    uniforms: [nOut, chunks, scale],
    grid: grid1d(cdiv(nOut, 64)),
  };
}

/** Float64 reference: reduces contiguous `x` of `shape` over `red`; output over kept dims. */
export function refReduce(op: ReduceOp, x: ArrayLike<number>, shape: number[], red: number[], scale = 1): Float64Array {
  const kept = shape.map((_, i) => i).filter((i) => !red.includes(i));
  const keptShape = kept.map((i) => shape[i]);
  const redShape = red.map((i) => shape[i]);
  const st = contiguousStrides(shape);
  const nOut = numel(keptShape);
  const R = numel(redShape);
  const out = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let base = 0;
    let rem = o;
    for (let d = kept.length - 1; d >= 0; d--) {
      base += (rem % keptShape[d]) * st[kept[d]];
      rem = Math.floor(rem / keptShape[d]);
    }
    let acc = op === 'sum' ? 0 : op === 'max' || op === 'argmax' ? -Infinity : Infinity;
    let best = 0;
    for (let r = 0; r < R; r++) {
      let off = base;
      let rr = r;
      for (let d = red.length - 1; d >= 0; d--) {
        off += (rr % redShape[d]) * st[red[d]];
        rr = Math.floor(rr / redShape[d]);
      }
      const v = x[off];
      if (op === 'sum') acc += v;
      else if (op === 'max') acc = Math.max(acc, v);
      else if (op === 'min') acc = Math.min(acc, v);
      else if (op === 'argmax' ? v > acc : v < acc) {
        acc = v;
        best = r;
      }
    }
    out[o] = op === 'argmax' || op === 'argmin' ? best : op === 'sum' ? acc * scale : acc;
  }
  return out;
}

/**
 * Leading-dim reduction of a [R, C] view with unit column stride (sum over a batch, column sums):
 * a thread owns 4 adjacent columns as a vec4 and a block of rows. The generic kernel gives each
 * lane one column, so every row step pays lavapipe's per-lane load loop for one float; here it
 * fetches four. Returns null when the view does not fit (C % 4, strides/offset not 16-byte
 * aligned, arg ops): the generic kernel handles those. Partials [C, P] feed partialsLaunch.
 */
export function reduceColsVec4Launch(op: ReduceOp, dtype: DType, x: View, red: number[], scale = 1, targetThreads = TARGET_THREADS_GPU): { launch: Launch; plan: ReducePlan } | null {
  if (dtype !== 'f32' || isArgReduce(op)) return null;
  const keptDims = x.shape.map((_, i) => i).filter((i) => !red.includes(i));
  const kc = coalesce(keptDims.map((i) => x.shape[i]), [keptDims.map((i) => x.strides[i])]);
  const rc = coalesce(red.map((i) => x.shape[i]), [red.map((i) => x.strides[i])]);
  if (kc.shape.length !== 1 || rc.shape.length !== 1 || kc.strides[0][0] !== 1) return null;
  const [C] = kc.shape;
  const [R] = rc.shape;
  const rowStride = rc.strides[0][0];
  if (C % 4 !== 0 || rowStride % 4 !== 0 || rowStride <= 0 || x.offset % 4 !== 0) return null;
  const C4 = C / 4;
  const P = C4 >= targetThreads / 4 ? 1 : Math.max(1, Math.min(cdiv(targetThreads, C4), Math.floor(R / 16)));
  const blk = cdiv(R, P);
  const final = P === 1;
  const comb = op === 'sum' ? 'va = va + vb;' : `va = ${op}(va, vb);`;
  const id = identity(op, dtype);
  return {
    plan: { nOut: C, R, chunks: P },
    launch: {
      key: `reduce-cols4:${op}:${final ? 'final' : 'partial'}`,
      build: () => ({
        uniforms: [['C4', 'u32'], ['R', 'u32'], ['P', 'u32'], ['blk', 'u32'], ['rs4', 'u32'], ['off4', 'u32'], ['scale', 'f32']],
        code: `
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * 64u + lid;
  if (t >= u.C4 * u.P) { return; }
  let c4 = t % u.C4;
  let p = t / u.C4;
  var va = vec4<f32>(${id});
  let r1 = min(u.R, (p + 1u) * u.blk);
  for (var r = p * u.blk; r < r1; r++) {
    let vb = x[u.off4 + r * u.rs4 + c4];
    ${comb}
  }
  ${final
    ? `let o = vec4<f32>(va${op === 'sum' ? ' * u.scale' : ''}); out[c4 * 4u] = o.x; out[c4 * 4u + 1u] = o.y; out[c4 * 4u + 2u] = o.z; out[c4 * 4u + 3u] = o.w;`
    : 'let b = c4 * 4u * u.P + p; out[b] = va.x; out[b + u.P] = va.y; out[b + 2u * u.P] = va.z; out[b + 3u * u.P] = va.w;'}
}`,
      }),
      uniforms: [C4, R, P, blk, rowStride / 4, x.offset / 4, scale],
      grid: grid1d(cdiv(C4 * P, 64)),
    },
  };
}
