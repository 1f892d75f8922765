// Reductions over any set of dims: sum (with a final scale, so mean is free), max, min, argmax,
// argmin. The input is read through its strides (no transpose copy); kept and reduced dims are
// coalesced separately. Three shapes of work:
//   thread : one thread per output, sequential over R (many outputs, e.g. per-channel over N·H·W)
//   group  : one workgroup per (output, chunk), tree reduce in workgroup memory
//   split  : group with P chunks per output, then a second pass over the P partials (few outputs,
//            huge R: fills the device instead of one workgroup per output)
import { type DType, type Launch, type View, cdiv, coalesce, contiguousStrides, dimRef, grid1d, numel, pack8, WG_LINEAR } from './common.ts';

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';
export const isArgReduce = (op: ReduceOp) => op === 'argmax' || op === 'argmin';

const WG = 256;

export interface ReducePlan {
  nOut: number;
  R: number;
  /** Number of chunks per output on the first pass (1: single pass). */
  chunks: number;
  mode: 'thread' | 'group';
}

export function planReduce(nOut: number, R: number): ReducePlan {
  if (nOut >= 2048 || R <= 32) return { nOut, R, chunks: 1, mode: 'thread' };
  // Aim for >= 256 workgroups in flight and >= 2048 elements per workgroup.
  const chunks = nOut >= 256 ? 1 : Math.max(1, Math.min(cdiv(R, 2048), cdiv(256, nOut)));
  return { nOut, R, chunks, mode: 'group' };
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
 * kept dims in order. For split plans, call twice: pass 1 writes partials [nOut, chunks] (values
 * and, for arg ops, indices); pass 2 (`partialsLaunch`) reduces them.
 */
export function reduceLaunch(op: ReduceOp, dtype: DType, x: View, red: number[], scale = 1, plan?: ReducePlan): { launch: Launch; plan: ReducePlan } {
  const keptDims = x.shape.map((_, i) => i).filter((i) => !red.includes(i));
  const keptShape = keptDims.map((i) => x.shape[i]);
  const redShape = red.map((i) => x.shape[i]);
  const nOut = numel(keptShape);
  const R = numel(redShape);
  const p = plan ?? planReduce(nOut, R);
  const kc = coalesce(keptShape, [keptDims.map((i) => x.strides[i])]);
  const rc = coalesce(redShape, [red.map((i) => x.strides[i]), contiguousStrides(redShape)]);
  const kr = kc.shape.length;
  const rr = rc.shape.length;
  const arg = isArgReduce(op);
  const final = p.chunks === 1;
  const key = `reduce:${op}:${dtype}:${p.mode}:k${kr}:r${rr}:${final ? 'final' : 'partial'}`;
  const outType = final && arg ? 'i32' : dtype;
  const idxDecl = arg && !final ? `@group(0) @binding(2) var<storage, read_write> outIdx: array<i32>;` : '';
  // Element offset of reduced index r: each reduced coordinate times its stride; `ridx` is the
  // flat row-major index in the *uncoalesced* reduced space (what argmax reports).
  const redOffset = Array.from({ length: rr }, (_, t) => {
    const d = rr - 1 - t;
    const sh = dimRef('rsh', d);
    return `{ let c = ${d > 0 ? `rem % ${sh}` : 'rem'}; off += i32(c) * ${dimRef('rst', d)}; ridx += c * u32(${dimRef('rfl', d)}); ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join(' ');
  const keptOffset = Array.from({ length: kr }, (_, t) => {
    const d = kr - 1 - t;
    const sh = dimRef('ksh', d);
    return `{ let c = ${d > 0 ? `rem % ${sh}` : 'rem'}; base += i32(c) * ${dimRef('kst', d)}; ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join(' ');
  const load = `
    var off = base; var ridx = 0u; var rem = r;
    ${redOffset}
    let vb = x[off]; let ib = i32(ridx);`;
  const uniforms: [string, 'vec4u' | 'vec4i' | 'u32' | 'f32'][] = [
    ['ksh0', 'vec4u'], ['ksh1', 'vec4u'], ['kst0', 'vec4i'], ['kst1', 'vec4i'],
    ['rsh0', 'vec4u'], ['rsh1', 'vec4u'], ['rst0', 'vec4i'], ['rst1', 'vec4i'], ['rfl0', 'vec4i'], ['rfl1', 'vec4i'],
    ['nOut', 'u32'], ['R', 'u32'], ['chunks', 'u32'], ['chunkLen', 'u32'], ['offset', 'u32'], ['scale', 'f32'],
  ];
  const chunkLen = cdiv(R, p.chunks);
  const values = [
    ...pack8(kc.shape, 1), ...pack8(kc.strides[0], 0),
    ...pack8(rc.shape, 1), ...pack8(rc.strides[0], 0), ...pack8(rc.strides[1], 0),
    nOut, R, p.chunks, chunkLen, x.offset, scale,
  ];
  const store = (o: string) => {
    if (final && arg) return `out[${o}] = ia;`;
    if (final && op === 'sum' && dtype === 'f32') return `out[${o}] = va * u.scale;`;
    if (arg) return `out[${o}] = va; outIdx[${o}] = ia;`;
    return `out[${o}] = va;`;
  };
  const header = `
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> out: array<${outType}>;
${idxDecl}
${WG_LINEAR}`;
  if (p.mode === 'thread') {
    return {
      plan: p,
      launch: {
        key,
        build: () => ({
          uniforms,
          code: `${header}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = wgLinear(wid, nwg) * ${WG}u + lid;
  if (o >= u.nOut) { return; }
  var base = i32(u.offset); var rem = o;
  ${keptOffset}
  var va = ${identity(op, dtype)}; var ia = 0x7fffffff;
  for (var r = 0u; r < u.R; r++) {
    ${load}
    ${combine(op)}
  }
  ${store('o')}
}`,
        }),
        uniforms: values,
        grid: grid1d(cdiv(nOut, WG)),
      },
    };
  }
  return {
    plan: p,
    launch: {
      key,
      build: () => ({
        uniforms,
        code: `${header}
var<workgroup> sv: array<${dtype}, ${WG}>;
var<workgroup> si: array<i32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wgLinear(wid, nwg);
  let o = w / u.chunks;
  let chunk = w % u.chunks;
  var base = i32(u.offset); var rem = o;
  ${keptOffset}
  var va = ${identity(op, dtype)}; var ia = 0x7fffffff;
  let r0 = chunk * u.chunkLen;
  let r1 = min(u.R, r0 + u.chunkLen);
  for (var r = r0 + lid; r < r1; r += ${WG}u) {
    ${load}
    ${combine(op)}
  }
  sv[lid] = va; si[lid] = ia;
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      let vb = sv[lid + s]; let ib = si[lid + s];
      ${combine(op)}
      sv[lid] = va; si[lid] = ia;
    }
  }
  if (lid == 0u) { ${store('w')} }
}`,
      }),
      uniforms: values,
      grid: grid1d(nOut * p.chunks),
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
