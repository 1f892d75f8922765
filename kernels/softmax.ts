// Row softmax / log-softmax over the last dim of a [rows, cols] view, forward and backward fused
// into one pass each (max, Σexp, write), one thread per row (no barriers; see reduce.ts).
//   softmax     : y = exp(x - m) / Σ exp(x - m);        dx = y · (g - Σ g·y)
//   log-softmax : y = x - m - log Σ exp(x - m);         dx = g - exp(y) · Σ g
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 128;

/**
 * Rows of unit-stride vec4s (cols % 4 == 0, 16-byte aligned rows) on devices with subgroups:
 * one subgroup per row, lanes stride over the row's vec4s (contiguous across lanes) and the
 * row max / sum come from subgroupMax / subgroupAdd. (A one-pass online max+sum with one exp per
 * element was slower on lavapipe: 12.9 vs 10.6 ms.) The thread-per-row kernels below read a
 * different row in every lane, which lavapipe turns into per-lane load loops (2048x2048 softmax
 * 18.5 ms, 28% of the copy roof). Rows per workgroup = 128 / subgroup size (WebGPU caps it at 128).
 */
export function softmaxRowsSgLaunch(log: boolean, dir: 'fwd' | 'bwd', rows: number, cols: number, rowStride: number, offset: number, sgMax: number): Launch {
  const fwd = dir === 'fwd';
  return {
    key: `softmax-sg:${dir}:${log ? 'log' : 'exp'}`,
    build: () => ({
      uniforms: [['rows', 'u32'], ['c4', 'u32'], ['rs4', 'u32'], ['off4', 'u32']],
      code: `enable subgroups;
${fwd ? `@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;`
    : `@group(0) @binding(0) var<storage, read> g: array<vec4f>;
@group(0) @binding(1) var<storage, read> y: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec4f>;`}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sgl: u32, @builtin(subgroup_size) sgs: u32) {
  // No early return before the subgroup ops: lanes past the last row work on a clamped row and
  // do not store.
  let r = (wgLinear(wid, nwg) * ${WG}u + lid) / sgs;
  let rr = min(r, u.rows - 1u);
  ${fwd ? `let base = u.off4 + rr * u.rs4;
  var m4 = vec4f(-3.4028234663852886e38);
  for (var c = sgl; c < u.c4; c += sgs) { m4 = max(m4, x[base + c]); }
  let m = subgroupMax(max(max(m4.x, m4.y), max(m4.z, m4.w)));
  var s4 = vec4f(0.0);
  for (var c = sgl; c < u.c4; c += sgs) { s4 += exp(x[base + c] - m); }
  let s = subgroupAdd(s4.x + s4.y + s4.z + s4.w);
  ${log ? 'let ls = m + log(s);' : 'let inv = 1.0 / s;'}
  if (r < u.rows) {
    for (var c = sgl; c < u.c4; c += sgs) { y[rr * u.c4 + c] = ${log ? 'x[base + c] - ls' : 'exp(x[base + c] - m) * inv'}; }
  }`
    : `let base = rr * u.c4;
  var s4 = vec4f(0.0);
  for (var c = sgl; c < u.c4; c += sgs) { s4 += ${log ? 'g[base + c]' : 'g[base + c] * y[base + c]'}; }
  let s = subgroupAdd(s4.x + s4.y + s4.z + s4.w);
  if (r < u.rows) {
    for (var c = sgl; c < u.c4; c += sgs) {
      let i = base + c;
      dx[i] = ${log ? 'g[i] - exp(y[i]) * s' : 'y[i] * (g[i] - s)'};
    }
  }`}
}`,
    }),
    // Enough workgroups for the largest subgroup the adapter may pick (smaller ones leave the
    // surplus workgroups storing nothing).
    uniforms: [rows, cols / 4, rowStride / 4, offset / 4],
    grid: grid1d(cdiv(rows * sgMax, WG)),
  };
}

/** The subgroup row kernels apply: vec4 rows, unit column stride, 16-byte aligned. */
export const softmaxSgFits = (cols: number, rowStride: number, colStride: number, offset: number) =>
  cols % 4 === 0 && cols > 0 && colStride === 1 && rowStride % 4 === 0 && offset % 4 === 0;

export function softmaxLaunch(log: boolean, rows: number, cols: number, rowStride: number, colStride: number, offset: number): Launch {
  return {
    key: `softmax:${log ? 'log' : 'exp'}`,
    build: () => ({
      uniforms: [['rows', 'u32'], ['cols', 'u32'], ['rs', 'u32'], ['cs', 'u32'], ['off', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wgLinear(wid, nwg) * ${WG}u + lid;
  if (r >= u.rows) { return; }
  let base = u.off + r * u.rs;
  var m = -3.4028234663852886e38;
  for (var c = 0u; c < u.cols; c++) { m = max(m, x[base + c * u.cs]); }
  var s = 0.0;
  for (var c = 0u; c < u.cols; c++) { s += exp(x[base + c * u.cs] - m); }
  ${log ? 'let ls = m + log(s);' : 'let inv = 1.0 / s;'}
  for (var c = 0u; c < u.cols; c++) {
    y[r * u.cols + c] = ${log ? 'x[base + c * u.cs] - ls' : 'exp(x[base + c * u.cs] - m) * inv'};
  }
}`,
    }),
    uniforms: [rows, cols, rowStride, colStride, offset],
    grid: grid1d(cdiv(rows, WG)),
  };
}

/** g, y, dx contiguous [rows, cols]. */
export function softmaxBackwardLaunch(log: boolean, rows: number, cols: number): Launch {
  return {
    key: `softmax-bwd:${log ? 'log' : 'exp'}`,
    build: () => ({
      uniforms: [['rows', 'u32'], ['cols', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wgLinear(wid, nwg) * ${WG}u + lid;
  if (r >= u.rows) { return; }
  let base = r * u.cols;
  var s = 0.0;
  for (var c = 0u; c < u.cols; c++) { s += ${log ? 'g[base + c]' : 'g[base + c] * y[base + c]'}; }
  for (var c = 0u; c < u.cols; c++) {
    let i = base + c;
    dx[i] = ${log ? 'g[i] - exp(y[i]) * s' : 'y[i] * (g[i] - s)'};
  }
}`,
    }),
    uniforms: [rows, cols],
    grid: grid1d(cdiv(rows, WG)),
  };
}
