// Counter-based RNG: value i of draw (seed, stream) = hash(i, seed, stream), so any tensor is
// reproducible from its seed alone and generation is embarrassingly parallel (Philox-style idea,
// with the PCG output hash as the mixer). uniform in [0,1) with 24 bits; normal by Box-Muller.
import { type DType, type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

export type RandomDist = 'uniform' | 'normal';

const HASH = `
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn rnd(i: u32, k: u32) -> f32 {
  let h = pcg(pcg(i ^ pcg(u.seed)) ^ pcg(u.stream * 2u + k + 0x9e3779b9u));
  return f32(h >> 8u) * (1.0 / 16777216.0);
}`;

/** uniform: lo + (hi-lo)·U[0,1); normal: mean + std·N(0,1). */
export function randomLaunch(dist: RandomDist, dtype: DType, n: number, seed: number, stream: number, a: number, b: number): Launch {
  const WG = 256;
  const expr = dist === 'uniform'
    ? 'u.a + (u.b - u.a) * rnd(i, 0u)'
    // Box-Muller; 1 - U in (0, 1] keeps log finite.
    : 'u.a + u.b * sqrt(-2.0 * log(1.0 - rnd(i, 0u))) * cos(6.283185307179586 * rnd(i, 1u))';
  return {
    key: `random:${dist}:${dtype}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['seed', 'u32'], ['stream', 'u32'], ['a', 'f32'], ['b', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read_write> out: array<${dtype}>;
${HASH}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  out[i] = ${dtype}(${expr});
}`,
    }),
    uniforms: [n, seed >>> 0, stream >>> 0, a, b],
    grid: grid1d(cdiv(n, WG)),
  };
}

/** The same hash on the CPU (for tests). */
export function refRandomUniform(n: number, seed: number, stream: number): Float64Array {
  const pcg = (v: number) => {
    const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
    const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
    return ((w >>> 22) ^ w) >>> 0;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const h = pcg((pcg((i ^ pcg(seed)) >>> 0) ^ pcg((stream * 2 + 0 + 0x9e3779b9) >>> 0)) >>> 0);
    out[i] = (h >>> 8) / 16777216;
  }
  return out;
}
