// Ceiling kernels the bench measures in the same run: a pure-FMA kernel (compute roof) and a
// vec4 copy (bandwidth roof). Every bench row reports its % of these.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

export const FMA_CHAINS = Number(process.env.FMA_CHAINS ?? 3); // independent vec4 chains per thread; lavapipe: 4 ymm registers per vec4, 16 in all
export const FMA_ITERS = 256;

/** Each thread: FMA_ITERS × FMA_CHAINS vec4 FMAs = 8·FMA_CHAINS·FMA_ITERS flops. */
export function fmaLaunch(threads: number): { launch: Launch; flops: number } {
  const WG = 64;
  const chains = Array.from({ length: FMA_CHAINS }, (_, i) => i);
  return {
    flops: threads * FMA_ITERS * FMA_CHAINS * 8,
    launch: {
      key: 'ceiling:fma',
      build: () => ({
        uniforms: [['seed', 'f32']],
        code: `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  let x = vec4<f32>(f32(i) * 1e-7, 0.5, 0.25, 0.125) + u.seed;
  let m = vec4<f32>(0.9999);
  ${chains.map((c) => `var a${c} = x + ${c}.0;`).join(' ')}
  for (var k = 0u; k < ${FMA_ITERS}u; k++) {
    ${chains.map((c) => `a${c} = fma(a${c}, m, x);`).join(' ')}
  }
  let s = ${chains.map((c) => `a${c}`).join(' + ')};
  out[i] = s.x + s.y + s.z + s.w;
}`,
      }),
      uniforms: [0.5],
      grid: grid1d(cdiv(threads, WG)),
    },
  };
}

/** vec4 copy of n4 vec4 elements: 32·n4 bytes moved (read + write). */
export function copyLaunch(n4: number): { launch: Launch; bytes: number } {
  const WG = 256;
  return {
    bytes: n4 * 32,
    launch: {
      key: 'ceiling:copy',
      build: () => ({
        uniforms: [['n', 'u32']],
        code: `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i < u.n) { dst[i] = src[i]; }
}`,
      }),
      uniforms: [n4],
      grid: grid1d(cdiv(n4, WG)),
    },
  };
}

/** An empty kernel: per-dispatch overhead. */
export function emptyLaunch(): Launch {
  return {
    key: 'ceiling:empty',
    build: () => ({ uniforms: [], code: `@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n@compute @workgroup_size(1) fn main() { }` }),
    uniforms: [],
    grid: [1],
  };
}
