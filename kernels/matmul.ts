// Batched matmul C[b] = A[b] · B[b] (+ optional C accumulate), register-tiled: each thread owns a
// TM×TN block of C and streams K with no workgroup memory and no barriers (lavapipe implements
// barriers expensively; on discrete GPUs the L1 serves the reuse). Transposes are strides: A and B
// are read through (batch, row, col) strides, and unit-stride variants are separate pipelines so
// the compiler sees contiguous access. Out-of-range rows/cols are clamped on load (branch-free
// inner loop) and masked on store. ../shared/reference/webgpu-dawn-notes.md §4.1.
import { type Launch, cdiv } from './common.ts';

export interface MatmulDims {
  batch: number;
  M: number;
  N: number;
  K: number;
  /** [batch, row(m), col(k)] element strides of A and offset. */
  aStrides: [number, number, number];
  aOffset: number;
  /** [batch, row(k), col(n)] element strides of B and offset. */
  bStrides: [number, number, number];
  bOffset: number;
}

/**
 * TM×TN outputs per thread on a WX×WY workgroup. `inter`: a thread's TN columns are interleaved
 * with stride WX (adjacent lanes read adjacent B addresses; with WY = 1 all lanes share A's rows,
 * so A loads are workgroup-uniform), otherwise each thread owns TN adjacent columns.
 */
export interface MatmulTile { TM: number; TN: number; WX: number; WY: number; inter?: boolean; sg?: boolean }

/**
 * Tile of the vec4 kernel. `subgroups8`: the device has subgroups of >= 8 lanes; then each lane
 * loads one of 8 A rows and rows reach all lanes by subgroupBroadcast (lavapipe: 1024^3 went
 * 14 -> ~28 GFLOP/s; with A loads cheap, taller tiles win: 32x4 on 8 lanes measured best,
 * 24x8/16, 40x8/16 and 48x8/8 within noise, 8-row tiles half as fast).
 */
export function vec4Tile(M: number, subgroups8: boolean): MatmulTile {
  if (!subgroups8) return { TM: M >= 16 ? 16 : 8, TN: 8, WX: 16, WY: 1 };
  return M >= 32 ? { TM: 32, TN: 4, WX: 8, WY: 1, sg: true } : M >= 16 ? { TM: 16, TN: 8, WX: 8, WY: 1, sg: true } : { TM: 8, TN: 8, WX: 16, WY: 1, sg: true };
}

export function pickTile(d: MatmulDims): MatmulTile {
  const env = process.env.MRCNN_MM_TILE; // e.g. "4x4x16x4" for tuning runs
  if (env) {
    const [TM, TN, WX, WY, inter] = env.split('x').map(Number);
    return { TM, TN, WX, WY, inter: inter === 1 };
  }
  if (d.M * d.N <= 4096) return { TM: 2, TN: 4, WX: 8, WY: 8 };
  return { TM: 4, TN: 4, WX: 16, WY: 4 };
}

/**
 * `accumulate`: C += A·B (C must hold prior values), used to sum weight grads over a batch
 * without a temporary. Output C is contiguous [batch, M, N] at cOffset.
 */
export function matmulLaunch(d: MatmulDims, accumulate = false, cOffset = 0, tile = pickTile(d)): Launch {
  const { TM, TN, WX, WY } = tile;
  const inter = !!tile.inter;
  const aK1 = d.aStrides[2] === 1;
  const aM1 = !aK1 && d.aStrides[1] === 1;
  const bN1 = d.bStrides[2] === 1;
  const bK1 = !bN1 && d.bStrides[1] === 1;
  const key = `matmul:${TM}x${TN}:${WX}x${WY}${inter ? 'i' : ''}:a${aK1 ? 'k1' : aM1 ? 'm1' : 'g'}:b${bN1 ? 'n1' : bK1 ? 'k1' : 'g'}${accumulate ? ':acc' : ''}`;
  const aIdx = (row: string, k: string) => `${row} * ${aM1 ? '1' : 'u.sam'} + ${k} * ${aK1 ? '1' : 'u.sak'}`;
  const bIdx = (k: string, col: string) => `${k} * ${bK1 ? '1' : 'u.bsk'} + ${col} * ${bN1 ? '1' : 'u.bsn'}`;
  const rows = Array.from({ length: TM }, (_, i) => i);
  const cols = Array.from({ length: TN }, (_, j) => j);
  const build = () => ({
    uniforms: [
      ['M', 'u32'], ['N', 'u32'], ['K', 'u32'], ['batch', 'u32'],
      ['aoff', 'u32'], ['sab', 'u32'], ['sam', 'u32'], ['sak', 'u32'],
      ['boff', 'u32'], ['bsb', 'u32'], ['bsk', 'u32'], ['bsn', 'u32'],
      ['coff', 'u32'],
    ] as [string, 'u32'][],
    code: `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${WX}, ${WY}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.z;
  let m0 = (wid.y * ${WY}u + lid.y) * ${TM}u;
  let n0 = ${inter ? `wid.x * ${WX * TN}u + lid.x` : `(wid.x * ${WX}u + lid.x) * ${TN}u`};
  if (m0 >= u.M || n0 >= u.N) { return; }
  let abase = u.aoff + b * u.sab;
  let bbase = u.boff + b * u.bsb;
  ${rows.map((i) => `let ar${i} = abase + ${aIdx(`min(m0 + ${i}u, u.M - 1u)`, '0u')};`).join('\n  ')}
  ${cols.map((j) => `let bc${j} = bbase + ${bIdx('0u', `min(n0 + ${inter ? j * WX : j}u, u.N - 1u)`)};`).join('\n  ')}
  ${rows.map((i) => `var acc${i} = array<f32, ${TN}>();`).join(' ')}
  for (var k = 0u; k < u.K; k++) {
    ${rows.map((i) => `let a${i} = A[ar${i} + ${aK1 ? 'k' : 'k * u.sak'}];`).join(' ')}
    ${cols.map((j) => `let b${j} = B[bc${j} + ${bK1 ? 'k' : 'k * u.bsk'}];`).join(' ')}
    ${rows.map((i) => cols.map((j) => `acc${i}[${j}] = fma(a${i}, b${j}, acc${i}[${j}]);`).join(' ')).join('\n    ')}
  }
  let cbase = u.coff + b * u.M * u.N;
  ${rows.map((i) => cols.map((j) => `if (m0 + ${i}u < u.M && n0 + ${inter ? j * WX : j}u < u.N) { let ci = cbase + (m0 + ${i}u) * u.N + n0 + ${inter ? j * WX : j}u; C[ci] = ${accumulate ? 'C[ci] + ' : ''}acc${i}[${j}]; }`).join('\n  ')).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [d.M, d.N, d.K, d.batch, d.aOffset, ...d.aStrides, d.bOffset, ...d.bStrides, cOffset],
    grid: [cdiv(d.N, TN * WX), cdiv(d.M, TM * WY), d.batch],
  };
}

/**
 * vec4 variant: B read as vec4 along N (needs unit n-stride and N, B's k-stride, B's offset all
 * multiples of 4). Rows come from the workgroup id only (WY = 1), so A loads are uniform across
 * lanes; each thread owns TN adjacent columns as TN/4 vec4 accumulators per row.
 */
export function canVec4(d: MatmulDims): boolean {
  return d.bStrides[2] === 1 && d.N % 4 === 0 && d.bStrides[1] % 4 === 0 && d.bOffset % 4 === 0 && (d.batch === 1 || d.bStrides[0] % 4 === 0);
}

export function matmulVec4Launch(d: MatmulDims, accumulate = false, cOffset = 0, tile: MatmulTile = { TM: 16, TN: 8, WX: 16, WY: 1 }): Launch {
  const { TM, TN, WX } = tile;
  const Q = TN / 4;
  const aK1 = d.aStrides[2] === 1;
  // Measured on lavapipe: also reading A as vec4 along K (4 k-steps per load) was 1.3-1.9x
  // slower (register pressure), so A stays scalar and workgroup-uniform.
  const key = `matmul-v4:${TM}x${TN}:${WX}:a${aK1 ? 'k1' : 'g'}${accumulate ? ':acc' : ''}`;
  const rows = Array.from({ length: TM }, (_, i) => i);
  const qs = Array.from({ length: Q }, (_, q) => q);
  // Scalar accumulators: lavapipe runs scalar FMA chains at ~2x the rate of vec4 chains
  // (measured with the ceiling kernel); for this kernel the two were within noise. Tried and
  // not kept (no gain on lavapipe): unrolling K by 2, A as vec4 along K, 24/32-row tiles.
  const scalarAcc = process.env.MRCNN_MM_VEC4ACC !== '1';
  const fmaRow = (i: number, a: string) =>
    scalarAcc
      ? qs.map((q) => [0, 1, 2, 3].map((c) => `acc${i}_${q}_${c} = fma(${a}, b${q}[${c}], acc${i}_${q}_${c});`).join(' ')).join(' ')
      : qs.map((q) => `acc${i}_${q} = fma(vec4<f32>(${a}), b${q}, acc${i}_${q});`).join(' ');
  // Subgroup path: lane l loads A row (8g + l) of group g; subgroupBroadcast hands row i to all
  // lanes. Needs subgroup-uniform control flow: no early return, loads clamped, stores masked.
  const sg = !!tile.sg && TM % 8 === 0 && WX % 8 === 0;
  const groups = Array.from({ length: TM / 8 }, (_, g) => g);
  const body = sg
    ? `for (var k = 0u; k < u.K; k++) {
    ${qs.map((q) => `let b${q} = B[bc${q} + k * u.bsk4];`).join(' ')}
    ${groups.map((g) => `let aw${g} = A[arl${g} + k${aK1 ? '' : ' * u.sak'}];`).join(' ')}
    ${rows.map((i) => `{ let a = subgroupBroadcast(aw${Math.floor(i / 8)}, ${i % 8}u); ${fmaRow(i, 'a')} }`).join('\n    ')}
  }`
    : `for (var k = 0u; k < u.K; k++) {
    ${qs.map((q) => `let b${q} = B[bc${q} + k * u.bsk4];`).join(' ')}
    ${rows.map((i) => `{ let a = A[ar${i} + k${aK1 ? '' : ' * u.sak'}]; ${fmaRow(i, 'a')} }`).join('\n    ')}
  }`;
  const build = () => ({
    uniforms: [
      ['M', 'u32'], ['N', 'u32'], ['K', 'u32'], ['batch', 'u32'],
      ['aoff', 'u32'], ['sab', 'u32'], ['sam', 'u32'], ['sak', 'u32'],
      ['boff4', 'u32'], ['bsb4', 'u32'], ['bsk4', 'u32'], ['coff', 'u32'],
    ] as [string, 'u32'][],
    code: `${sg ? 'enable subgroups;' : ''}
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${WX}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgl: u32' : ''}) {
  let b = wid.z;
  let m0 = wid.y * ${TM}u;
  let n4 = (wid.x * ${WX}u + lid.x) * ${Q}u;
  ${sg ? '' : 'if (n4 * 4u >= u.N) { return; }'}
  let abase = u.aoff + b * u.sab;
  let bbase = u.boff4 + b * u.bsb4;
  ${rows.map((i) => `let ar${i} = abase + min(m0 + ${i}u, u.M - 1u) * u.sam;`).join('\n  ')}
  ${sg ? groups.map((g) => `let arl${g} = abase + min(m0 + ${g * 8}u + (sgl & 7u), u.M - 1u) * u.sam;`).join(' ') : ''}
  ${qs.map((q) => `let bc${q} = bbase + min(n4 + ${q}u, u.N / 4u - 1u);`).join('\n  ')}
  ${rows.map((i) => qs.map((q) => (scalarAcc ? [0, 1, 2, 3].map((c) => `var acc${i}_${q}_${c} = 0.0;`).join(' ') : `var acc${i}_${q} = vec4<f32>();`)).join(' ')).join(' ')}
  ${body}
  let cbase = u.coff + b * u.M * u.N;
  ${rows.map((i) => `if (m0 + ${i}u < u.M) { ${qs.map((q) => `if (n4 + ${q}u < u.N / 4u) { let ci = cbase + (m0 + ${i}u) * u.N + (n4 + ${q}u) * 4u; ${[0, 1, 2, 3].map((c) => `C[ci + ${c}u] = ${accumulate ? `C[ci + ${c}u] + ` : ''}${scalarAcc ? `acc${i}_${q}_${c}` : `acc${i}_${q}[${c}]`};`).join(' ')} }`).join(' ')} }`).join('\n  ')}
}`,
  });
  return {
    key: key + (scalarAcc ? ':sacc' : '') + (sg ? ':sg' : ''),
    build,
    uniforms: [d.M, d.N, d.K, d.batch, d.aOffset, ...d.aStrides, d.bOffset / 4, d.bStrides[0] / 4, d.bStrides[1] / 4, cOffset],
    grid: [cdiv(d.N, TN * WX), cdiv(d.M, TM), d.batch],
  };
}

/** Float64 reference over the same strided description; C contiguous [batch, M, N]. */
export function refMatmul(d: MatmulDims, A: ArrayLike<number>, B: ArrayLike<number>): Float64Array {
  const C = new Float64Array(d.batch * d.M * d.N);
  for (let b = 0; b < d.batch; b++)
    for (let m = 0; m < d.M; m++)
      for (let n = 0; n < d.N; n++) {
        let s = 0;
        for (let k = 0; k < d.K; k++) {
          s += A[d.aOffset + b * d.aStrides[0] + m * d.aStrides[1] + k * d.aStrides[2]] * B[d.bOffset + b * d.bStrides[0] + k * d.bStrides[1] + n * d.bStrides[2]];
        }
        C[(b * d.M + m) * d.N + n] = s;
      }
  return C;
}
