// Row softmax / log-softmax over the last dim of a [rows, cols] view, forward and backward fused
// into one pass each (max, Σexp, write), one thread per row (no barriers; see reduce.ts).
//   softmax     : y = exp(x - m) / Σ exp(x - m);        dx = y · (g - Σ g·y)
//   log-softmax : y = x - m - log Σ exp(x - m);         dx = g - exp(y) · Σ g
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 128;

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
