// Elementwise map kernels (unary, binary with broadcasting, ternary where, casts) and their
// float64 references. One generator: an expression over operands a, b, c and scalars u.s0/u.s1.
// Layout follows the data: all-contiguous inputs take the flat path (immediates only);
// otherwise dims are coalesced and a strided path indexes each input by its own strides.
import { type DType, type Launch, type View, cdiv, coalesce, contiguousStrides, dimRef, GRID3_COORDS, grid1d, numel, pack8, plan3, rowPlan, rowsMain, WG_LINEAR } from './common.ts';

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'relu' | 'sigmoid' | 'tanh'
  | 'powS' | 'addS' | 'mulS' | 'rsubS' | 'clamp' | 'copy' | 'sign' | 'square' | 'reciprocal';
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum'
  | 'reluGrad' | 'sigmoidGrad' | 'tanhGrad' | 'powSGrad';
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

interface OpInfo {
  wgsl: string;
  ref: (a: number, b: number, s0: number, s1: number) => number;
  floatOnly?: boolean;
  /** The expression is valid WGSL with vec4 operands (no scalar-only comparisons). */
  vec4?: boolean;
}

// powS: torch.pow(x, p) with a negative base is defined for integer p only.
const powWgsl = (x: string, p: string) =>
  `select(select(pow(abs(${x}), ${p}), -pow(abs(${x}), ${p}), fract(${p} * 0.5) != 0.0), pow(${x}, ${p}), ${x} >= 0.0 || fract(${p}) != 0.0)`;
const powRef = (a: number, p: number) => Math.pow(a, p);

export const UNARY: Record<UnaryOp, OpInfo> = {
  neg: { wgsl: '-a', ref: (a) => -a, vec4: true },
  exp: { wgsl: 'exp(a)', ref: (a) => Math.exp(a), floatOnly: true, vec4: true },
  log: { wgsl: 'log(a)', ref: (a) => Math.log(a), floatOnly: true, vec4: true },
  sqrt: { wgsl: 'sqrt(a)', ref: (a) => Math.sqrt(a), floatOnly: true, vec4: true },
  rsqrt: { wgsl: 'inverseSqrt(a)', ref: (a) => 1 / Math.sqrt(a), floatOnly: true, vec4: true },
  abs: { wgsl: 'abs(a)', ref: (a) => Math.abs(a), vec4: true },
  relu: { wgsl: 'max(a, T(0))', ref: (a) => Math.max(a, 0), vec4: true },
  // Stable in both tails with one exp of a non-positive number: e = exp(-|a|) gives 1/(1+e) for
  // a >= 0 and e/(1+e) below (the compiler shares the exp).
  sigmoid: { wgsl: 'select(exp(-abs(a)), T(1), a >= T(0)) / (T(1) + exp(-abs(a)))', ref: (a) => 1 / (1 + Math.exp(-a)), floatOnly: true, vec4: true },
  // WGSL tanh overflows to NaN for |a| > ~44 on some drivers: clamp first (tanh(9) == 1 in f32).
  tanh: { wgsl: 'tanh(clamp(a, -9.0, 9.0))', ref: (a) => Math.tanh(a), floatOnly: true },
  powS: { wgsl: powWgsl('a', 'u.s0'), ref: (a, _b, s0) => powRef(a, s0), floatOnly: true },
  addS: { wgsl: 'a + T(u.s0)', ref: (a, _b, s0) => a + s0, vec4: true },
  mulS: { wgsl: 'a * T(u.s0)', ref: (a, _b, s0) => a * s0, vec4: true },
  rsubS: { wgsl: 'T(u.s0) - a', ref: (a, _b, s0) => s0 - a, vec4: true },
  clamp: { wgsl: 'min(max(a, T(u.s0)), T(u.s1))', ref: (a, _b, s0, s1) => Math.min(Math.max(a, s0), s1), vec4: true },
  copy: { wgsl: 'a', ref: (a) => a, vec4: true },
  sign: { wgsl: 'sign(a)', ref: (a) => Math.sign(a), floatOnly: true },
  square: { wgsl: 'a * a', ref: (a) => a * a, vec4: true },
  reciprocal: { wgsl: '1.0 / a', ref: (a) => 1 / a, floatOnly: true, vec4: true },
};

export const BINARY: Record<BinaryOp, OpInfo> = {
  add: { wgsl: 'a + b', ref: (a, b) => a + b, vec4: true },
  sub: { wgsl: 'a - b', ref: (a, b) => a - b, vec4: true },
  mul: { wgsl: 'a * b', ref: (a, b) => a * b, vec4: true },
  div: { wgsl: 'a / b', ref: (a, b) => (Number.isInteger(a) && Number.isInteger(b) ? Math.trunc(a / b) : a / b), vec4: true },
  maximum: { wgsl: 'max(a, b)', ref: (a, b) => Math.max(a, b), vec4: true },
  minimum: { wgsl: 'min(a, b)', ref: (a, b) => Math.min(a, b), vec4: true },
  // Backward helpers fused into one pass: a = upstream grad, b = saved forward input/output.
  reluGrad: { wgsl: 'select(T(0), a, b > T(0))', ref: (a, b) => (b > 0 ? a : 0), vec4: true },
  sigmoidGrad: { wgsl: 'a * b * (1.0 - b)', ref: (a, b) => a * b * (1 - b), floatOnly: true, vec4: true },
  tanhGrad: { wgsl: 'a * (1.0 - b * b)', ref: (a, b) => a * (1 - b * b), floatOnly: true, vec4: true },
  // d/dx x^p = p x^(p-1), with x^(p-1) via the same sign rule as powS.
  powSGrad: { wgsl: `a * u.s0 * ${powWgsl('b', 'u.s1')}`, ref: (a, b, s0) => a * s0 * Math.pow(b, s0 - 1), floatOnly: true },
};

export const COMPARE: Record<CompareOp, { wgsl: string; ref: (a: number, b: number) => boolean }> = {
  eq: { wgsl: '==', ref: (a, b) => a === b },
  ne: { wgsl: '!=', ref: (a, b) => a !== b },
  lt: { wgsl: '<', ref: (a, b) => a < b },
  le: { wgsl: '<=', ref: (a, b) => a <= b },
  gt: { wgsl: '>', ref: (a, b) => a > b },
  ge: { wgsl: '>=', ref: (a, b) => a >= b },
};

const WG = 256;
// Elements (vec4s on the vec4 paths) per thread, interleaved by the workgroup: amortises the
// per-invocation cost (lavapipe: relu of 4M floats 10.8 -> 5.4 ms going from 1 to 4 vec4s).
const EPT = 4;

/**
 * One map kernel: out[i] = expr(a[i], b[i], c[i]) over the broadcast shape `outShape`.
 * `inputs` are views already expanded to outShape (broadcast dims have stride 0).
 * `expr` sees operands a, b, c typed by `inTypes`, scalars u.s0/u.s1 (f32) and T = outType.
 * Paths (vec4 ones need a `vec4Safe` expr): rows4 (unit-stride or broadcast inner dim), 4x4
 * tiles (transposed operands), flat (all contiguous; vec4 when 16-byte aligned), strided on a 3-D
 * grid (coalesced rank <= 3), strided with div/mod (higher ranks).
 */
export function mapLaunch(name: string, expr: string, inTypes: DType[], outType: DType, inputs: View[], outShape: number[], s0 = 0, s1 = 0, vec4Safe = false): Launch {
  const n = numel(outShape);
  const co = coalesce(outShape, [contiguousStrides(outShape), ...inputs.map((v) => v.strides)]);
  const flat = co.shape.length === 1 && co.strides.every((s) => s[0] === 1);
  const rank = co.shape.length;
  const letters = ['a', 'b', 'c'];
  const nIn = inputs.length;
  const offs = inputs.map((v) => v.offset);
  const decls = (vt: (t: DType) => string) => `${inputs.map((_, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${vt(inTypes[i])}>;`).join('\n')}
@group(0) @binding(${nIn}) var<storage, read_write> out: array<${vt(outType)}>;`;
  const offU = offs.map((_, i) => [`o${i}`, 'u32'] as [string, 'u32']);
  const rowsKernel = (rp: RowsPlan): Launch => {
    // Broadcast/strided rows with a unit-stride (or broadcast) inner dim, w elements per access.
    const [d0, d1, inner] = rp.dims;
    const { unit, w } = rp;
    const vt = (t: DType) => (w === 4 ? `vec4<${t}>` : t);
    const { rpw: RPW, ept, grid } = rowPlan(d1, inner / w);
    return {
      key: `map:${name}:${inTypes.join(',')}>${outType}:rows${w}:${unit.map((x) => (x ? 1 : 0)).join('')}:${RPW}:${ept}`,
      build: () => ({
        uniforms: [['n4', 'u32'], ['d1', 'u32'], ...inputs.map((_, i) => [`t${i}`, 'vec4i'] as [string, 'vec4i']), ['s0', 'f32'], ['s1', 'f32']],
        code: `
alias T = ${vt(outType)};
${nIn ? `alias TA = ${vt(inTypes[0])};` : ''}
${inputs.map((_, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${unit[i] ? vt(inTypes[i]) : inTypes[i]}>;`).join('\n')}
@group(0) @binding(${nIn}) var<storage, read_write> out: array<T>;
${rowsMain(RPW, ept, 'u.d1', 'u.n4',
  `${inputs.map((_, j) => `let p${j} = u.t${j}.x + r0 * u.t${j}.y + r1 * u.t${j}.z;`).join(' ')}
      ${inputs.map((_, j) => (unit[j] ? '' : `let ${letters[j]} = ${vt(inTypes[j])}(in${j}[p${j}]);`)).join(' ')}
      let ob = (u32(r0) * u.d1 + r1u) * u.n4;`,
  `${inputs.map((_, j) => (unit[j] ? `let ${letters[j]} = in${j}[p${j} + i32(col)];` : '')).join(' ')} out[ob + col] = T(${expr});`)}`,
      }),
      // Per input: offset, outer strides (in units of w when the inner stride is 1).
      uniforms: [inner / w, d1, ...rp.t.flatMap((t) => [...t, 0]), s0, s1],
      grid: [...grid, d0],
    };
  };
  const rows4 = vec4Safe && !flat ? rowsPlan(co.shape, co.strides.slice(1), offs, 4) : null;
  if (rows4) return rowsKernel(rows4);
  const t4 = vec4Safe && !flat ? tiles4x4(co.shape, co.strides.slice(1), offs) : null;
  if (t4) {
    // Some input is transposed (unit stride along rows): each thread maps a 4x4 block, reading
    // every input as 4 vec4 along its own unit-stride dim and transposing in registers.
    const { R4, C4, trans, t } = t4;
    // 4 tiles per thread down the rows: lavapipe [2048,2048]ᵀ·[2048,2048] 14.7-17.5 -> 11.6-14.0 ms (1 thread / 2 threads)
    const TPT = 4;
    return {
      key: `map:${name}:${inTypes.join(',')}>${outType}:t4x4:${trans.map((x) => (x ? 1 : 0)).join('')}:${TPT}`,
      build: () => ({
        uniforms: [['R4', 'u32'], ['C4', 'u32'], ...inputs.map((_, i) => [`t${i}`, 'vec4i'] as [string, 'vec4i']), ['s0', 'f32'], ['s1', 'f32']],
        code: `
alias T = vec4<${outType}>;
alias TA = vec4<${inTypes[0]}>;
${decls((ty) => `vec4<${ty}>`)}
@compute @workgroup_size(16, 4) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let tx = gid.x;
  if (tx >= u.C4) { return; }
  for (var q = 0u; q < ${TPT}u; q++) {
  let ty = gid.y * ${TPT}u + q;
  if (ty < u.R4) {
  ${inputs.map((_, j) => (trans[j]
    ? `let w${j}_0 = in${j}[u.t${j}.x + i32(tx * 4u) * u.t${j}.y + i32(ty)]; let w${j}_1 = in${j}[u.t${j}.x + i32(tx * 4u + 1u) * u.t${j}.y + i32(ty)]; let w${j}_2 = in${j}[u.t${j}.x + i32(tx * 4u + 2u) * u.t${j}.y + i32(ty)]; let w${j}_3 = in${j}[u.t${j}.x + i32(tx * 4u + 3u) * u.t${j}.y + i32(ty)];`
    : '')).join('\n  ')}
  ${[0, 1, 2, 3].map((r) => `{
    ${inputs.map((_, j) => (trans[j]
      ? `let ${letters[j]} = vec4<${inTypes[j]}>(w${j}_0[${r}], w${j}_1[${r}], w${j}_2[${r}], w${j}_3[${r}]);`
      : `let ${letters[j]} = in${j}[u.t${j}.x + i32(ty * 4u + ${r}u) * u.t${j}.y + i32(tx)];`)).join(' ')}
    out[(ty * 4u + ${r}u) * u.C4 + tx] = T(${expr});
  }`).join('\n  ')}
  }
  }
}`,
      }),
      uniforms: [R4, C4, ...t.flatMap((x) => [...x, 0, 0]), s0, s1],
      grid: [cdiv(C4, 16), cdiv(R4, 4 * TPT)],
    };
  }
  if (flat) {
    // Contiguous: vec4 lanes when the expression and the alignment allow, else scalars.
    const w = vec4Safe && n % 4 === 0 && offs.every((o) => o % 4 === 0) ? 4 : 1;
    const vt = (t: DType) => (w === 4 ? `vec4<${t}>` : t);
    return {
      key: `map:${name}:${inTypes.join(',')}>${outType}:flat${w === 4 ? `:vec4x${EPT}` : ''}`,
      build: () => ({
        uniforms: [['n', 'u32'], ...offU, ['s0', 'f32'], ['s1', 'f32']],
        code: `
alias T = ${vt(outType)};
${nIn ? `alias TA = ${vt(inTypes[0])};` : ''}
${decls(vt)}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = wgLinear(wid, nwg) * ${WG * EPT}u + lid;
  for (var k = 0u; k < ${EPT}u; k++) {
    let i = base + k * ${WG}u;
    if (i < u.n) {
      ${inputs.map((_, j) => `let ${letters[j]} = in${j}[i + u.o${j}];`).join(' ')}
      out[i] = T(${expr});
    }
  }
}`,
      }),
      uniforms: [n / w, ...offs.map((o) => o / w), s0, s1],
      grid: grid1d(cdiv(n / w, WG * EPT)),
    };
  }
  // Scalar rows (unaligned or odd-width row views, e.g. contiguous() of a spatial slice): rows
  // of >= 64 elements, so that the 64 lanes have work.
  const rows1 = rowsPlan(co.shape, co.strides.slice(1), offs, 1);
  if (rows1 && rows1.dims[2] >= 64) return rowsKernel(rows1);
  const g3 = plan3(co.shape, co.strides);
  if (g3) {
    // Output strides are co.strides[0] (contiguous, coalesced); inputs follow.
    return {
      key: `map:${name}:${inTypes.join(',')}>${outType}:g3:${g3.wx}`,
      build: () => ({
        uniforms: [['d', 'vec4u'], ['so', 'vec4i'], ...inputs.map((_, i) => [`s${i}_`, 'vec4i'] as [string, 'vec4i']), ...offU, ['s0', 'f32'], ['s1', 'f32']],
        code: `
alias T = ${outType};
${nIn ? `alias TA = ${inTypes[0]};` : ''}
${decls((t) => t)}
@compute @workgroup_size(${g3.wx}, ${g3.wy}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${GRID3_COORDS}
  ${inputs.map((_, j) => `let ${letters[j]} = in${j}[i32(u.o${j}) + c0 * u.s${j}_.x + c1 * u.s${j}_.y + c2 * u.s${j}_.z];`).join('\n  ')}
  out[c0 * u.so.x + c1 * u.so.y + c2 * u.so.z] = T(${expr});
}`,
      }),
      uniforms: [...g3.dims, 0, ...g3.strides[0], 0, ...g3.strides.slice(1).flatMap((s) => [...s, 0]), ...offs, s0, s1],
      grid: g3.grid,
    };
  }
  const shapeP = pack8(co.shape, 1);
  const stridesP = co.strides.slice(1).map((s) => pack8(s, 0));
  return {
    key: `map:${name}:${inTypes.join(',')}>${outType}:r${rank}`,
    build: () => ({
      uniforms: [
        ['sh0', 'vec4u'], ['sh1', 'vec4u'],
        ...inputs.flatMap((_, i) => [[`st${i}_0`, 'vec4i'], [`st${i}_1`, 'vec4i']] as [string, 'vec4i'][]),
        ['n', 'u32'], ...offU, ['s0', 'f32'], ['s1', 'f32'],
      ],
      code: `
alias T = ${outType};
${nIn ? `alias TA = ${inTypes[0]};` : ''}
${decls((t) => t)}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  var rem = i;
  ${inputs.map((_, j) => `var p${j} = i32(u.o${j});`).join(' ')}
  ${Array.from({ length: rank }, (_, t) => {
    const d = rank - 1 - t;
    const sh = dimRef('sh', d);
    const c = d > 0 ? `rem % ${sh}` : 'rem';
    return `{ let c = i32(${c}); ${inputs.map((_, j) => `p${j} += c * ${dimRef(`st${j}_`, d)};`).join(' ')} ${d > 0 ? `rem = rem / ${sh};` : ''} }`;
  }).join('\n  ')}
  ${inputs.map((_, j) => `let ${letters[j]} = in${j}[p${j}];`).join(' ')}
  out[i] = T(${expr});
}`,
    }),
    uniforms: [...shapeP, ...stridesP.flat(), n, ...offs, s0, s1],
    grid: grid1d(cdiv(n, WG)),
  };
}

/**
 * Fits the 4x4 tile path: coalesced rank 2 [R, C] (both % 4 == 0), every input either row-major
 * (strides [s, 1]) or transposed (strides [1, s]), s % 4 == 0 and offset % 4 == 0, at least one
 * transposed. `t`: per input (offset/4, stride/4) along its non-unit dim.
 */
function tiles4x4(shape: number[], strides: number[][], offs: number[]): { R4: number; C4: number; trans: boolean[]; t: [number, number][] } | null {
  if (shape.length !== 2 || shape[0] % 4 !== 0 || shape[1] % 4 !== 0 || cdiv(shape[1] / 4, 16) > 65535 || cdiv(shape[0] / 4, 4) > 65535) return null;
  const trans: boolean[] = [];
  const t: [number, number][] = [];
  for (let i = 0; i < strides.length; i++) {
    const [sr, sc] = strides[i];
    const tr = sr === 1 && sc !== 1;
    const s = tr ? sc : sr;
    if ((!tr && sc !== 1) || s <= 0 || s % 4 !== 0 || offs[i] % 4 !== 0) return null;
    trans.push(tr);
    t.push([offs[i] / 4, s / 4]);
  }
  return trans.some((x) => x) ? { R4: shape[0] / 4, C4: shape[1] / 4, trans, t } : null;
}

interface RowsPlan { dims: [number, number, number]; unit: boolean[]; t: [number, number, number][]; w: 1 | 4 }
/**
 * Fits the rows path: coalesced rank 1-3 (as [d0, d1, inner], d0 <= 65535), each input's inner
 * stride 0 (broadcast) or 1; at width 4 also inner % 4 == 0 and unit-stride inputs 16-byte aligned.
 */
function rowsPlan(shape: number[], strides: number[][], offs: number[], w: 1 | 4): RowsPlan | null {
  const r = shape.length;
  if (r < 1 || r > 3) return null;
  const dims: [number, number, number] = r === 3 ? [shape[0], shape[1], shape[2]] : r === 2 ? [1, shape[0], shape[1]] : [1, 1, shape[0]];
  if (dims[2] % w !== 0 || dims[0] > 65535 || cdiv(dims[1], 32) > 65535 || cdiv(dims[2] / w, 64) > 65535) return null;
  const unit: boolean[] = [];
  const t: [number, number, number][] = [];
  for (let i = 0; i < strides.length; i++) {
    const st = r === 3 ? strides[i] : r === 2 ? [0, ...strides[i]] : [0, 0, ...strides[i]];
    const inner = st[2];
    if (inner !== 0 && inner !== 1) return null;
    if (inner === 1 && (offs[i] % w !== 0 || st[0] % w !== 0 || st[1] % w !== 0)) return null;
    const q = inner === 1 ? w : 1;
    unit.push(inner === 1);
    t.push([offs[i] / q, st[0] / q, st[1] / q]);
  }
  return { dims, unit, t, w };
}

export function unaryLaunch(op: UnaryOp, dtype: DType, x: View, s0 = 0, s1 = 0): Launch {
  return mapLaunch(op, UNARY[op].wgsl, [dtype], dtype, [x], x.shape, s0, s1, UNARY[op].vec4);
}

export function binaryLaunch(op: BinaryOp, dtype: DType, a: View, b: View, outShape: number[], s0 = 0, s1 = 0): Launch {
  return mapLaunch(op, BINARY[op].wgsl, [dtype, dtype], dtype, [a, b], outShape, s0, s1, BINARY[op].vec4);
}

/** Comparisons produce u32 0/1 masks. */
export function compareLaunch(op: CompareOp, dtype: DType, a: View, b: View, outShape: number[]): Launch {
  return mapLaunch(op, `select(T(0u), T(1u), a ${COMPARE[op].wgsl} b)`, [dtype, dtype], 'u32', [a, b], outShape, 0, 0, true);
}

/** where(cond != 0, a, b). */
export function whereLaunch(condType: DType, dtype: DType, cond: View, a: View, b: View, outShape: number[]): Launch {
  return mapLaunch('where', 'select(c, b, a != TA(0))', [condType, dtype, dtype], dtype, [cond, a, b], outShape, 0, 0, true);
}

/** Casts follow WGSL conversion: f32→i32/u32 truncate toward zero (as torch) and saturate. */
export function castLaunch(from: DType, to: DType, x: View): Launch {
  return mapLaunch('cast', 'a', [from], to, [x], x.shape, 0, 0, true);
}

// ---- float64 references -------------------------------------------------------------------

/** Broadcast shape (numpy rules); throws naming both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes [${a}] and [${b}] do not broadcast (dim ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Reads `data` (contiguous, `shape`) broadcast to outShape, as a flat float64 array. */
export function refBroadcast(data: ArrayLike<number>, shape: readonly number[], outShape: readonly number[]): Float64Array {
  const n = numel(outShape);
  const out = new Float64Array(n);
  const r = outShape.length;
  const st = contiguousStrides(shape);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = 0;
    for (let d = r - 1; d >= 0; d--) {
      const c = rem % outShape[d];
      rem = Math.floor(rem / outShape[d]);
      const sd = d - (r - shape.length);
      if (sd >= 0 && shape[sd] !== 1) off += c * st[sd];
    }
    out[i] = data[off];
  }
  return out;
}

export function refUnary(op: UnaryOp, x: ArrayLike<number>, s0 = 0, s1 = 0): Float64Array {
  return Float64Array.from(x, (v) => UNARY[op].ref(v, 0, s0, s1));
}

export function refBinary(op: BinaryOp, a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], s0 = 0, s1 = 0): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapes(op, aShape, bShape);
  const A = refBroadcast(a, aShape, shape);
  const B = refBroadcast(b, bShape, shape);
  return { data: A.map((v, i) => BINARY[op].ref(v, B[i], s0, s1)), shape };
}
