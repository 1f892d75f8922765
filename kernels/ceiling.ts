// Ceiling kernels the bench measures in the same run: a pure-FMA kernel (compute roof) and a
// vec4 copy (bandwidth roof). Every bench row reports its % of these.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

export const FMA_ITERS = 256;

/**
 * FMA roof candidates: (vector width, independent chains, workgroup size). The bench takes the
 * best of them, so the roof is what this substrate can do, not what one kernel shape gets: on
 * lavapipe (8-lane AVX2 SIMD across invocations) scalar chains of 16-24 win (~45 GFLOP/s), vec4
 * chains reach only about half; discrete GPUs prefer the vec4 forms.
 */
export const FMA_VARIANTS: [vec: 1 | 4, chains: number, wg: number][] = [[1, 16, 64], [1, 24, 64], [1, 16, 256], [4, 4, 64], [4, 8, 256]];

/** Each thread: FMA_ITERS × chains FMAs of width vec: 2·vec·chains·FMA_ITERS flops. */
export function fmaLaunch(threads: number, [vec, chains, wg]: [number, number, number] = FMA_VARIANTS[0]): { launch: Launch; flops: number } {
  const T = vec === 4 ? 'vec4<f32>' : 'f32';
  const ch = Array.from({ length: chains }, (_, i) => i);
  return {
    flops: threads * FMA_ITERS * chains * vec * 2,
    launch: {
      key: `ceiling:fma:${vec}x${chains}:${wg}`,
      build: () => ({
        uniforms: [['seed', 'f32']],
        code: `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${wg}u + lid;
  let x = ${T}(f32(i) * 1e-7 + u.seed);
  let m = ${T}(0.9999);
  ${ch.map((c) => `var a${c} = x + ${T}(${c}.0);`).join(' ')}
  for (var k = 0u; k < ${FMA_ITERS}u; k++) {
    ${ch.map((c) => `a${c} = fma(a${c}, m, x);`).join(' ')}
  }
  let s = ${ch.map((c) => `a${c}`).join(' + ')};
  // Written so the chains are live; the index wraps to stay inside a 4 MiB buffer.
  out[i & 0xfffffu] = ${vec === 4 ? 's.x + s.y + s.z + s.w' : 's'};
}`,
      }),
      uniforms: [0.5],
      grid: grid1d(cdiv(threads, wg)),
    },
  };
}

/** Copy roof candidates: elements per thread as vec4s (1 or 4, interleaved by the workgroup). */
export const COPY_VARIANTS = [1, 4];

/** vec4 copy of n4 vec4 elements (ept per thread): 32·n4 bytes moved (read + write). */
export function copyLaunch(n4: number, ept = 1): { launch: Launch; bytes: number } {
  const WG = 256;
  return {
    bytes: n4 * 32,
    launch: {
      key: `ceiling:copy:${ept}`,
      build: () => ({
        uniforms: [['n', 'u32']],
        code: `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = wgLinear(wid, nwg) * ${WG * ept}u + lid;
  for (var k = 0u; k < ${ept}u; k++) {
    let i = base + k * ${WG}u;
    if (i < u.n) { dst[i] = src[i]; }
  }
}`,
      }),
      uniforms: [n4],
      grid: grid1d(cdiv(n4, WG * ept)),
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
