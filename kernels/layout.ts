// Layout kernels: strided assignment (dst view ← src view), the building block of contiguous(),
// slice backward, concat, stack and pad; index kernels: gather, index-select, scatter-add.
import { type DType, type Launch, type View, cdiv, coalesce, dimRef, GRID3_COORDS, grid1d, numel, pack8, plan3, rowPlan, rowsMain, WG_LINEAR, refRead, CAS_ADD_F32 } from './common.ts';

const WG = 256;

/** dst[view] = src[view] elementwise over the common shape; both may be arbitrary strided views. */
export function assignLaunch(dtype: DType, src: View, dst: View): Launch {
  const n = numel(dst.shape);
  const co = coalesce(dst.shape, [src.strides, dst.strides]);
  const rank = co.shape.length;
  const rows = assignRowsLaunch(dtype, co.shape, co.strides[0], co.strides[1], src.offset, dst.offset);
  if (rows) return rows;
  const g3 = plan3(co.shape, co.strides);
  if (g3) {
    return {
      key: `assign:${dtype}:g3:${g3.wx}`,
      build: () => ({
        uniforms: [['d', 'vec4u'], ['ss', 'vec4i'], ['ds', 'vec4i'], ['so', 'u32'], ['do_', 'u32']],
        code: `
@group(0) @binding(0) var<storage, read> src: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${dtype}>;
@compute @workgroup_size(${g3.wx}, ${g3.wy}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${GRID3_COORDS}
  dst[i32(u.do_) + c0 * u.ds.x + c1 * u.ds.y + c2 * u.ds.z] = src[i32(u.so) + c0 * u.ss.x + c1 * u.ss.y + c2 * u.ss.z];
}`,
      }),
      uniforms: [...g3.dims, 0, ...g3.strides[0], 0, ...g3.strides[1], 0, src.offset, dst.offset],
      grid: g3.grid,
    };
  }
  return {
    key: `assign:${dtype}:r${rank}`,
    build: () => ({
      uniforms: [['sh0', 'vec4u'], ['sh1', 'vec4u'], ['ss0', 'vec4i'], ['ss1', 'vec4i'], ['ds0', 'vec4i'], ['ds1', 'vec4i'], ['n', 'u32'], ['so', 'u32'], ['do_', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> src: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${dtype}>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  var rem = i; var ps = i32(u.so); var pd = i32(u.do_);
  ${Array.from({ length: rank }, (_, t) => {
    const d = rank - 1 - t;
    const sh = dimRef('sh', d);
    return `{ let c = i32(${d > 0 ? `rem % ${sh}` : 'rem'}); ps += c * ${dimRef('ss', d)}; pd += c * ${dimRef('ds', d)}; ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join('\n  ')}
  dst[pd] = src[ps];
}`,
    }),
    uniforms: [...pack8(co.shape, 1), ...pack8(co.strides[0], 0), ...pack8(co.strides[1], 0), n, src.offset, dst.offset],
    grid: grid1d(cdiv(n, WG)),
  };
}

/**
 * Row path (coalesced rank <= 3 as [d0, d1, inner], unit inner stride in dst, unit or zero in
 * src): common.ts rowsMain (4 elements per lane, 32 rows per workgroup), vec4 when rows are
 * 16-byte aligned. Covers concat, stack, pad, slice backward and contiguous() of row views. The
 * one-element-per-thread 3-D grid below ran concat at 23% and pad at 22% of the copy roof on
 * lavapipe (per-invocation cost; the same lesson as kernels/elementwise.ts).
 */
function assignRowsLaunch(dtype: DType, shape: number[], ss: number[], ds: number[], so: number, dso: number): Launch | null {
  const r = shape.length;
  if (r > 3) return null;
  const pad3 = (v: number[], f: number) => [...new Array(3 - r).fill(f), ...v];
  const [d0, d1, inner] = pad3(shape, 1);
  const s3 = pad3(ss, 0), t3 = pad3(ds, 0);
  const bcast = s3[2] === 0;
  if (t3[2] !== 1 || (s3[2] !== 1 && !bcast) || d0 > 65535) return null;
  const v4 = inner % 4 === 0 && dso % 4 === 0 && t3[0] % 4 === 0 && t3[1] % 4 === 0 && (bcast || (so % 4 === 0 && s3[0] % 4 === 0 && s3[1] % 4 === 0));
  const w = v4 ? 4 : 1;
  const { rpw: RPW, ept, grid } = rowPlan(d1, inner / w);
  if (grid[0] > 65535 || grid[1] > 65535) return null;
  const T = w === 4 ? `vec4<${dtype}>` : dtype;
  const sq = bcast ? 1 : w;
  return {
    key: `assign:${dtype}:rows${w}:${bcast ? 'b' : 'u'}:${RPW}:${ept}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['d1', 'u32'], ['ss', 'vec4i'], ['ds', 'vec4i']],
      code: `
@group(0) @binding(0) var<storage, read> src: array<${bcast ? dtype : T}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${T}>;
${rowsMain(RPW, ept, 'u.d1', 'u.n', `let ps = u.ss.x + r0 * u.ss.y + r1 * u.ss.z;
      let pd = u.ds.x + r0 * u.ds.y + r1 * u.ds.z;
      ${bcast ? `let v = ${T}(src[ps]);` : ''}`, `dst[pd + i32(col)] = ${bcast ? 'v' : 'src[ps + i32(col)]'};`)}`,
    }),
    // offset, outer strides, in units of the element width
    uniforms: [inner / w, d1, so / sq, s3[0] / sq, s3[1] / sq, 0, dso / w, t3[0] / w, t3[1] / w, 0],
    grid: [...grid, d0],
  };
}

/**
 * Generic index kernel over x viewed as [pre, D, post] (dim of size D), index i32 over
 * [pre, L, post] (gather) or [L] (index-select). out is contiguous [pre, L, post].
 *   gather      : out[p,l,q] = x[p, idx[p,l,q], q]
 *   indexSelect : out[p,l,q] = x[p, idx[l], q]
 * Out-of-range indices are clamped (caller validates when it matters; no OOB reads).
 */
export function gatherLaunch(mode: 'gather' | 'indexSelect', dtype: DType, x: View, dim: number, idx: View, outShape: number[]): Launch {
  const pre = numel(outShape.slice(0, dim));
  const L = outShape[dim];
  const post = numel(outShape.slice(dim + 1));
  const D = x.shape[dim];
  const n = pre * L * post;
  // x strides for [pre, D, post] need x's pre and post dims each collapsible; callers make x contiguous.
  const xsD = x.strides[dim];
  const xsPost = 1;
  const xsPre = D * post;
  if (mode === 'indexSelect' && post >= 64 && pre <= 65535 && cdiv(L, 32) <= 65535) {
    // Rows of `post` elements: one index load per row, then 4 elements per thread along the row
    // (vec4 when post and the offset allow), 32 rows per workgroup: the one-element-per-thread
    // kernel below, with its div/mod, ran index-select of 256-wide rows at 19% of the copy roof.
    const w = post % 4 === 0 && x.offset % 4 === 0 ? 4 : 1;
    const T = w === 4 ? `vec4<${dtype}>` : dtype;
    const { rpw: RPW, ept, grid } = rowPlan(L, post / w);
    return {
      key: `indexSelect:rows${w}:${dtype}:${RPW}:${ept}`,
      build: () => ({
        uniforms: [['L', 'u32'], ['post', 'u32'], ['D', 'u32'], ['xoff', 'u32'], ['xsPre', 'u32'], ['xsD', 'u32'], ['ioff', 'u32']],
        code: `
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${T}>;
${rowsMain(RPW, ept, 'u.L', 'u.post', `let jj = u32(clamp(idx[u.ioff + r1u], 0, i32(u.D) - 1));
      let src = u.xoff + u32(r0) * u.xsPre + jj * u.xsD;
      let dst = (u32(r0) * u.L + r1u) * u.post;`, 'out[dst + col] = x[src + col];')}`,
      }),
      // in units of w (x is contiguous: xsD == post)
      uniforms: [L, post / w, D, x.offset / w, xsPre / w, xsD / w, idx.offset],
      grid: [...grid, pre],
    };
  }
  return {
    key: `${mode}:${dtype}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['L', 'u32'], ['post', 'u32'], ['D', 'u32'], ['xoff', 'u32'], ['xsPre', 'u32'], ['xsD', 'u32'], ['xsPost', 'u32'], ['ioff', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${dtype}>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let q = i % u.post;
  let l = (i / u.post) % u.L;
  let p = i / (u.post * u.L);
  let j = idx[u.ioff + ${mode === 'gather' ? 'i' : 'l'}];
  let jj = u32(clamp(j, 0, i32(u.D) - 1));
  out[i] = x[u.xoff + p * u.xsPre + jj * u.xsD + q * u.xsPost];
}`,
    }),
    uniforms: [n, L, post, D, x.offset, xsPre, xsD, xsPost, idx.offset],
    grid: grid1d(cdiv(n, WG)),
  };
}

/**
 * out[p, idx(...), q] += src[p, l, q] with a compare-and-swap float add on atomic<u32> (WGSL has
 * no float atomics, ../shared/reference/webgpu-dawn-notes.md §5.3). out is contiguous
 * [pre, D, post] and already holds the base values. Order of adds is nondeterministic.
 */
export function scatterAddLaunch(mode: 'gather' | 'indexSelect', src: View, dim: number, D: number, idx: View): Launch {
  const pre = numel(src.shape.slice(0, dim));
  const L = src.shape[dim];
  const post = numel(src.shape.slice(dim + 1));
  const n = pre * L * post;
  return {
    key: `scatterAdd-${mode}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['L', 'u32'], ['post', 'u32'], ['D', 'u32'], ['soff', 'u32'], ['ioff', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
${WG_LINEAR}
${CAS_ADD_F32('out')}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let q = i % u.post;
  let l = (i / u.post) % u.L;
  let p = i / (u.post * u.L);
  let j = idx[u.ioff + ${mode === 'gather' ? 'i' : 'l'}];
  if (j < 0 || u32(j) >= u.D) { return; }
  atomicAdd_out((p * u.D + u32(j)) * u.post + q, src[u.soff + i]);
}`,
    }),
    uniforms: [n, L, post, D, src.offset, idx.offset],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- float64 references ----------------------------------------------------------------------

export function refAssign(src: ArrayLike<number>, sv: View, dstInit: ArrayLike<number>, dv: View): Float64Array {
  const out = Float64Array.from(dstInit);
  const n = numel(dv.shape);
  for (let i = 0; i < n; i++) {
    let off = dv.offset;
    let rem = i;
    for (let d = dv.shape.length - 1; d >= 0; d--) {
      off += (rem % dv.shape[d]) * dv.strides[d];
      rem = Math.floor(rem / dv.shape[d]);
    }
    out[off] = refRead(src, sv, i);
  }
  return out;
}

/** torch.gather / index_select on contiguous x [pre, D, post]. */
export function refGather(mode: 'gather' | 'indexSelect', x: ArrayLike<number>, xShape: number[], dim: number, idx: ArrayLike<number>, outShape: number[]): Float64Array {
  const pre = numel(outShape.slice(0, dim));
  const L = outShape[dim];
  const post = numel(outShape.slice(dim + 1));
  const D = xShape[dim];
  const out = new Float64Array(pre * L * post);
  for (let p = 0; p < pre; p++)
    for (let l = 0; l < L; l++)
      for (let q = 0; q < post; q++) {
        const i = (p * L + l) * post + q;
        const j = mode === 'gather' ? idx[i] : idx[l];
        out[i] = x[(p * D + j) * post + q];
      }
  return out;
}

export function refScatterAdd(mode: 'gather' | 'indexSelect', base: ArrayLike<number>, D: number, src: ArrayLike<number>, srcShape: number[], dim: number, idx: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(base);
  const pre = numel(srcShape.slice(0, dim));
  const L = srcShape[dim];
  const post = numel(srcShape.slice(dim + 1));
  for (let p = 0; p < pre; p++)
    for (let l = 0; l < L; l++)
      for (let q = 0; q < post; q++) {
        const i = (p * L + l) * post + q;
        const j = mode === 'gather' ? idx[i] : idx[l];
        out[(p * D + j) * post + q] += src[i];
      }
  return out;
}
