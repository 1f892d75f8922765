// The op test table: every core op's GPU forward vs its float64 reference (poisoned outputs,
// odd sizes, size-1 dims, non-contiguous views, broadcasting) and GPU backward vs central
// differences of the reference. One row per op (variant).
import { suite } from 'uvu';
import * as E from '../engine/index.ts';
import { checkOp, refPermute, type GradInput } from './util.ts';
import { COMPARE, refBinary, refUnary, type UnaryOp, type BinaryOp } from '../kernels/elementwise.ts';
import { refReduce } from '../kernels/reduce.ts';
import { refMatmul } from '../kernels/matmul.ts';
import { numel } from '../kernels/common.ts';
import { refGather, refScatterAdd } from '../kernels/layout.ts';

interface Row {
  name: string;
  inputs: GradInput[];
  gpu: (xs: E.Tensor[]) => E.Tensor;
  ref: (xs: Float64Array[]) => Float64Array;
  grad?: boolean;
  tol?: { atol?: number; rtol?: number; gatol?: number; grtol?: number; h?: number };
}

const un = (op: UnaryOp, f: (t: E.Tensor) => E.Tensor, shape: number[], lo = -2, hi = 2, s0 = 0, s1 = 0, grad = true): Row => ({
  name: `${op} [${shape}]`,
  inputs: [{ shape, lo, hi }],
  gpu: ([x]) => f(x),
  ref: ([x]) => refUnary(op, x, s0, s1),
  grad,
});

const bin = (op: BinaryOp, f: (a: E.Tensor, b: E.Tensor) => E.Tensor, sa: number[], sb: number[], lo = -2, hi = 2): Row => ({
  name: `${op} [${sa}]·[${sb}]`,
  inputs: [{ shape: sa, lo, hi }, { shape: sb, lo, hi }],
  gpu: ([a, b]) => f(a, b),
  ref: ([a, b]) => refBinary(op, a, sa, b, sb).data,
});

const red = (name: string, f: (x: E.Tensor) => E.Tensor, shape: number[], dims: number[], r: (x: Float64Array) => Float64Array, grad = true): Row => ({
  name: `${name} [${shape}] over [${dims}]`,
  inputs: [{ shape }],
  gpu: ([x]) => f(x),
  ref: ([x]) => r(x),
  grad,
});

function refSoftmaxRows(x: Float64Array, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    for (let c = 0; c < cols; c++) out[r * cols + c] = log ? x[r * cols + c] - m - Math.log(s) : Math.exp(x[r * cols + c] - m) / s;
  }
  return out;
}

const mmRow = (sa: number[], sb: number[], ta = false, tb = false): Row => {
  // a, b given in storage shape; ta/tb transpose the last two dims as views (no copies).
  const M = ta ? sa[sa.length - 1] : sa[sa.length - 2];
  const K = ta ? sa[sa.length - 2] : sa[sa.length - 1];
  const N = tb ? sb[sb.length - 2] : sb[sb.length - 1];
  const batch = numel(sa.slice(0, -2));
  return {
    name: `matmul [${sa}]${ta ? 'ᵀ' : ''}·[${sb}]${tb ? 'ᵀ' : ''}`,
    inputs: [{ shape: sa }, { shape: sb }],
    gpu: ([a, b]) => E.matmul(ta ? E.transpose(a) : a, tb ? E.transpose(b) : b),
    ref: ([a, b]) =>
      refMatmul(
        {
          batch, M, N, K,
          aStrides: [numel(sa.slice(-2)), ta ? 1 : K, ta ? M : 1], aOffset: 0,
          bStrides: [sb.length > 2 ? numel(sb.slice(-2)) : 0, tb ? 1 : N, tb ? K : 1], bOffset: 0,
        },
        a, b,
      ),
    tol: { atol: 1e-4, rtol: 1e-4 },
  };
};

const GIDX = [0, 4, 2, 1, 1, 3, 4, 4, 0, 2, 3, 1];
const SIDX = [5, 0, 2, 2];
const SCIDX = [3, 0, 1, 1, 2, 0];
const CE_LABELS = [2, -100, 0, 3, 1];

const rows: Row[] = [
  un('neg', E.neg, [7, 3]),
  un('exp', E.exp, [5, 9]),
  un('log', E.log, [33], 0.2, 3),
  un('sqrt', E.sqrt, [2, 3, 5], 0.2, 3),
  un('rsqrt', E.rsqrt, [17], 0.3, 3),
  un('abs', E.abs, [4, 5]),
  un('relu', E.relu, [3, 7]),
  un('sigmoid', E.sigmoid, [1, 13], -6, 6),
  // vec4 path (numel % 4 == 0) over both tails: exp(-|x|) never overflows.
  un('sigmoid', E.sigmoid, [4, 6], -60, 60),
  un('tanh', E.tanh, [13], -3, 3),
  un('powS', (x) => E.pow(x, 3), [11], -2, 2, 3),
  un('powS', (x) => E.pow(x, 0.5), [9], 0.2, 2, 0.5),
  un('clamp', (x) => E.clamp(x, -0.5, 0.7), [23], -1, 1, -0.5, 0.7),
  un('square', E.square, [6]),
  un('reciprocal', E.reciprocal, [6], 0.5, 2),
  { name: 'addS/mulS/rsubS chain', inputs: [{ shape: [5, 2] }], gpu: ([x]) => E.rsub(E.mul(E.add(x, 1.5), -2), 3), ref: ([x]) => x.map((v) => 3 - (v + 1.5) * -2) },
  bin('add', E.add, [3, 1, 5], [4, 5]),
  bin('sub', E.sub, [2, 3], [3]),
  bin('mul', E.mul, [1], [4, 3]),
  bin('div', E.div, [5, 4], [5, 1], 0.5, 2),
  bin('maximum', E.maximum, [6, 7], [7]),
  bin('minimum', E.minimum, [3, 1], [1, 8]),
  // rows4 path: inner dim % 4 == 0, one operand broadcast along rows (inner stride 1) or per row (inner stride 0).
  bin('add', E.add, [5, 12], [12]),
  bin('mul', E.mul, [2, 3, 8], [3, 1]),
  bin('sub', E.sub, [3, 1, 8], [1, 5, 8]),
  bin('maximum', E.maximum, [2, 1, 4], [2, 3, 1]),
  // >= 32 rows: 32 rows per workgroup, ragged last workgroup (45 = 32 + 13; 2 x 33 rows).
  bin('add', E.add, [45, 8], [8]),
  // ragged columns too (1036 = 259 vec4 over 2 workgroups); the big operand skips the O(n²)
  // central-difference check (its grad g·b is the path the rows above check).
  { ...bin('mul', E.mul, [2, 33, 1036], [33, 1]), inputs: [{ shape: [2, 33, 1036], grad: false }, { shape: [33, 1] }] },
  // Scalar rows path: unaligned row views (offset 1, width 66) with >= 32 rows and a row broadcast.
  {
    name: 'add of a column slice [35,70][:, 1:67] and a row [66] (scalar rows)',
    inputs: [{ shape: [35, 70] }, { shape: [66] }],
    gpu: ([x, y]) => E.add(E.narrow(x, 1, 1, 66), y),
    ref: ([x, y]) => Float64Array.from({ length: 35 * 66 }, (_, i) => x[Math.floor(i / 66) * 70 + 1 + (i % 66)] + y[i % 66]),
  },
  {
    name: 'contiguous of a spatial slice [2,3,9,70][..., 1:8, 2:68]',
    inputs: [{ shape: [2, 3, 9, 70] }],
    gpu: ([x]) => E.contiguous(E.slice(x, [null, null, [1, 8], [2, 68]])),
    ref: ([x]) => Float64Array.from({ length: 6 * 7 * 66 }, (_, i) => { const p = Math.floor(i / 462), h = Math.floor(i / 66) % 7 + 1, w = (i % 66) + 2; return x[(p * 9 + h) * 70 + w]; }),
  },
  { name: 'where(x > 0, x, y) vec4 path, scalar-broadcast compare', inputs: [{ shape: [16] }, { shape: [16] }], gpu: ([a, b]) => E.where(E.gt(a, 0), a, b), ref: ([a, b]) => a.map((v, i) => (v > 0 ? v : b[i])) },
  // Non-contiguous inputs: transposed and sliced views feed elementwise kernels directly.
  {
    name: 'mul on transposed view [4,6]ᵀ·[6,4]',
    inputs: [{ shape: [4, 6] }, { shape: [6, 4] }],
    gpu: ([a, b]) => E.mul(E.transpose(a), b),
    ref: ([a, b]) => refPermute(a, [4, 6], [1, 0]).map((v, i) => v * b[i]),
  },
  {
    name: 'mul on transposed view, 4x4 tile path [8,12]ᵀ·[12,8]',
    inputs: [{ shape: [8, 12] }, { shape: [12, 8] }],
    gpu: ([a, b]) => E.mul(E.transpose(a), b),
    ref: ([a, b]) => refPermute(a, [8, 12], [1, 0]).map((v, i) => v * b[i]),
  },
  {
    // 4 tiles per thread down the rows: 9 tile rows = 2 full threads' worth + 1
    name: 'add on transposed view, 4x4 tile path [8,36]ᵀ·[36,8]',
    inputs: [{ shape: [8, 36] }, { shape: [36, 8] }],
    gpu: ([a, b]) => E.add(E.transpose(a), b),
    ref: ([a, b]) => refPermute(a, [8, 36], [1, 0]).map((v, i) => v + b[i]),
  },
  {
    name: 'transpose → contiguous, 4x4 tile path [4,16]ᵀ',
    inputs: [{ shape: [4, 16] }],
    gpu: ([a]) => E.contiguous(E.transpose(a)),
    ref: ([a]) => refPermute(a, [4, 16], [1, 0]),
  },
  {
    name: 'exp on strided slice [7,9][1:6:2, ::3]',
    inputs: [{ shape: [7, 9] }],
    gpu: ([x]) => E.exp(E.slice(x, [[1, 6, 2], [0, 9, 3]])),
    ref: ([x]) => Float64Array.from([1, 3, 5].flatMap((r) => [0, 3, 6].map((c) => Math.exp(x[r * 9 + c])))),
  },
  {
    name: 'flip [3,5] dims 0,1 then contiguous',
    inputs: [{ shape: [3, 5] }],
    gpu: ([x]) => E.contiguous(E.flip(x, [0, 1])),
    ref: ([x]) => Float64Array.from(x).reverse(),
  },
  {
    name: 'cast f32→i32 truncates toward zero (as torch), i32→f32',
    inputs: [{ shape: [17], lo: -3, hi: 3 }],
    gpu: ([x]) => E.cast(E.cast(E.mul(x, 3), 'i32'), 'f32'),
    ref: ([x]) => x.map((v) => Math.trunc(Math.fround(v * 3))),
    grad: false,
  },
  ...(['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const).map((op): Row => ({
    name: `compare ${op} with broadcast (u32 mask)`,
    // Rounded values so equality cases occur.
    inputs: [{ shape: [3, 4], data: Float64Array.from([0, 1, 2, 3, 1, 1, 0, 2, 3, 3, 2, 1]) }, { shape: [4], data: Float64Array.from([1, 1, 2, 0]) }],
    gpu: ([a, b]) => E.cast(E[op](a, b), 'f32'),
    ref: ([a, b]) => a.map((v, i) => (COMPARE[op].ref(v, b[i % 4]) ? 1 : 0)),
    grad: false,
  })),
  {
    name: 'where(cond, a, b) broadcast',
    inputs: [{ shape: [4, 3] }, { shape: [3] }],
    gpu: ([a, b]) => E.where(E.gt(a, 0.1), a, b),
    ref: ([a, b]) => a.map((v, i) => (v > 0.1 ? v : b[i % 3])),
  },
  red('sum', (x) => E.sum(x, [0, 2]), [3, 4, 5], [0, 2], (x) => refReduce('sum', x, [3, 4, 5], [0, 2])),
  red('sum', (x) => E.sum(x), [1, 9], [0, 1], (x) => refReduce('sum', x, [1, 9], [0, 1])),
  red('sum', (x) => E.sum(x, 1, true), [37, 300], [1], (x) => refReduce('sum', x, [37, 300], [1])),
  red('sum all (split path)', (x) => E.sum(x), [5000], [0], (x) => refReduce('sum', x, [5000], [0]), false),
  red('mean', (x) => E.mean(x, [1]), [4, 6, 2], [1], (x) => refReduce('sum', x, [4, 6, 2], [1], 1 / 6)),
  red('max', (x) => E.max(x, [1]), [5, 7], [1], (x) => refReduce('max', x, [5, 7], [1])),
  red('min', (x) => E.min(x, [0]), [6, 3], [0], (x) => refReduce('min', x, [6, 3], [0])),
  red('max of transposed', (x) => E.max(E.transpose(x), [1]), [7, 5], [0], (x) => refReduce('max', x, [7, 5], [0])),
  // Column (leading-dim) reductions take the vec4 kernel when the row length % 4 == 0.
  red('sum cols vec4', (x) => E.sum(x, 0), [37, 12], [0], (x) => refReduce('sum', x, [37, 12], [0])),
  red('sum cols vec4 split', (x) => E.sum(x, 0), [3000, 4], [0], (x) => refReduce('sum', x, [3000, 4], [0]), false),
  red('max cols vec4', (x) => E.max(x, [0, 1]), [3, 5, 8], [0, 1], (x) => refReduce('max', x, [3, 5, 8], [0, 1])),
  red('mean cols vec4', (x) => E.mean(x, [0]), [6, 16], [0], (x) => refReduce('sum', x, [6, 16], [0], 1 / 6)),
  red('argmax', (x) => E.cast(E.argmax(x, 1), 'f32'), [6, 11], [1], (x) => refReduce('argmax', x, [6, 11], [1]), false),
  red('argmin', (x) => E.cast(E.argmin(x, 0), 'f32'), [9, 4], [0], (x) => refReduce('argmin', x, [9, 4], [0]), false),
  red('argmax split', (x) => E.cast(E.argmax(x), 'f32'), [3000], [0], (x) => refReduce('argmax', x, [3000], [0]), false),
  {
    name: 'variance unbiased [5,8] dim 1',
    inputs: [{ shape: [5, 8] }],
    gpu: ([x]) => E.variance(x, 1),
    ref: ([x]) => {
      const m = refReduce('sum', x, [5, 8], [1], 1 / 8);
      return Float64Array.from({ length: 5 }, (_, r) => x.slice(r * 8, r * 8 + 8).reduce((s, v) => s + (v - m[r]) ** 2, 0) / 7);
    },
  },
  mmRow([5, 7], [7, 3]),
  mmRow([9, 16], [16, 12]),
  mmRow([2, 17, 8], [2, 8, 20]),
  mmRow([7, 5], [7, 3], true, false),
  mmRow([5, 7], [3, 7], false, true),
  mmRow([3, 4, 6], [5, 6], false, true),
  // Subgroup-broadcast vec4 kernel (32-row tiles) with ragged M and N edges; Bᵀ is copied first.
  mmRow([37, 9], [9, 20]),
  mmRow([33, 6], [12, 6], false, true),
  mmRow([2, 35, 5], [2, 8, 5], false, true),
  { name: 'softmax [4,9]', inputs: [{ shape: [4, 9], lo: -3, hi: 3 }], gpu: ([x]) => E.softmax(x, 1), ref: ([x]) => refSoftmaxRows(x, 4, 9, false) },
  { name: 'logSoftmax [3,5]', inputs: [{ shape: [3, 5], lo: -3, hi: 3 }], gpu: ([x]) => E.logSoftmax(x, -1), ref: ([x]) => refSoftmaxRows(x, 3, 5, true) },
  // Subgroup row kernels (cols % 4 == 0): fewer vec4s than lanes, ragged lanes, many rows, views.
  { name: 'softmax [5,12] (subgroup rows)', inputs: [{ shape: [5, 12], lo: -3, hi: 3 }], gpu: ([x]) => E.softmax(x, 1), ref: ([x]) => refSoftmaxRows(x, 5, 12, false) },
  { name: 'logSoftmax [33,4] (subgroup rows)', inputs: [{ shape: [33, 4], lo: -3, hi: 3 }], gpu: ([x]) => E.logSoftmax(x, 1), ref: ([x]) => refSoftmaxRows(x, 33, 4, true) },
  { name: 'softmax [19,44] (subgroup rows)', inputs: [{ shape: [19, 44], lo: -3, hi: 3 }], gpu: ([x]) => E.softmax(x, 1), ref: ([x]) => refSoftmaxRows(x, 19, 44, false) },
  {
    name: 'logSoftmax of a column slice [6,16][:, 4:12] (offset view)',
    inputs: [{ shape: [6, 16], lo: -3, hi: 3 }],
    gpu: ([x]) => E.logSoftmax(E.narrow(x, 1, 4, 8), 1),
    ref: ([x]) => refSoftmaxRows(Float64Array.from({ length: 48 }, (_, i) => x[Math.floor(i / 8) * 16 + 4 + (i % 8)]), 6, 8, true),
  },
  {
    name: 'softmax over dim 0 [6,3]',
    inputs: [{ shape: [6, 3] }],
    gpu: ([x]) => E.softmax(x, 0),
    ref: ([x]) => refPermute(refSoftmaxRows(refPermute(x, [6, 3], [1, 0]), 3, 6, false), [3, 6], [1, 0]),
  },
  {
    name: 'smoothL1 beta 0.5 (none)',
    inputs: [{ shape: [4, 5] }, { shape: [4, 5] }],
    gpu: ([a, b]) => E.smoothL1(a, b, 0.5, 'none'),
    ref: ([a, b]) => a.map((v, i) => { const d = Math.abs(v - b[i]); return d < 0.5 ? (0.5 * d * d) / 0.5 : d - 0.25; }),
  },
  {
    name: 'bceWithLogits mean',
    inputs: [{ shape: [7, 3], lo: -4, hi: 4 }, { shape: [7, 3], lo: 0, hi: 1 }],
    gpu: ([a, b]) => E.bceWithLogits(a, b),
    ref: ([a, b]) => Float64Array.of(a.reduce((s, x, i) => s + Math.max(x, 0) - x * b[i] + Math.log1p(Math.exp(-Math.abs(x))), 0) / a.length),
  },
  {
    name: 'bceWithLogits mean, vec4 path [4,6] with large logits',
    inputs: [{ shape: [4, 6], lo: -30, hi: 30 }, { shape: [4, 6], lo: 0, hi: 1 }],
    gpu: ([a, b]) => E.bceWithLogits(a, b),
    ref: ([a, b]) => Float64Array.of(a.reduce((s, x, i) => s + Math.max(x, 0) - x * b[i] + Math.log1p(Math.exp(-Math.abs(x))), 0) / a.length),
  },
  {
    name: 'l1Loss sum',
    inputs: [{ shape: [9] }, { shape: [9] }],
    gpu: ([a, b]) => E.l1Loss(a, b, 'sum'),
    ref: ([a, b]) => Float64Array.of(a.reduce((s, x, i) => s + Math.abs(x - b[i]), 0)),
  },
  {
    name: 'concat dim 1 of [2,3],[2,1],[2,4]',
    inputs: [{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 4] }],
    gpu: (xs) => E.concat(xs, 1),
    ref: ([a, b, c]) => Float64Array.from([0, 1].flatMap((r) => [...a.slice(r * 3, r * 3 + 3), ...b.slice(r, r + 1), ...c.slice(r * 4, r * 4 + 4)])),
  },
  // Row-path assignment: vec4 rows, 32 rows per workgroup with a ragged last one, scalar rows
  // for unaligned pads, a broadcast (inner stride 0) source.
  {
    name: 'concat dim 1 of [40,8],[40,4] (vec4 rows)',
    inputs: [{ shape: [40, 8] }, { shape: [40, 4] }],
    gpu: (xs) => E.concat(xs, 1),
    ref: ([a, b]) => Float64Array.from({ length: 40 * 12 }, (_, i) => { const r = Math.floor(i / 12), c = i % 12; return c < 8 ? a[r * 8 + c] : b[r * 4 + c - 8]; }),
  },
  {
    name: 'concat dim 1 of expand([5,1]→[5,8]),[5,4] (broadcast source rows)',
    inputs: [{ shape: [5, 1] }, { shape: [5, 4] }],
    gpu: ([a, b]) => E.concat([E.expand(a, [5, 8]), b], 1),
    ref: ([a, b]) => Float64Array.from({ length: 5 * 12 }, (_, i) => { const r = Math.floor(i / 12), c = i % 12; return c < 8 ? a[r] : b[r * 4 + c - 8]; }),
  },
  {
    name: 'pad [1,2,33,3] by (1,2) W, (3,0) H (scalar rows, 66 rows)',
    inputs: [{ shape: [1, 2, 33, 3] }],
    gpu: ([x]) => E.pad(x, [1, 2, 3, 0]),
    ref: ([x]) => Float64Array.from({ length: 2 * 36 * 6 }, (_, i) => {
      const c = Math.floor(i / 216), h = Math.floor(i / 6) % 36 - 3, w = (i % 6) - 1;
      return h >= 0 && w >= 0 && w < 3 ? x[(c * 33 + h) * 3 + w] : 0;
    }),
  },
  {
    name: 'stack dim 0 of [3],[3]',
    inputs: [{ shape: [3] }, { shape: [3] }],
    gpu: (xs) => E.stack(xs, 0),
    ref: ([a, b]) => Float64Array.from([...a, ...b]),
  },
  {
    name: 'pad [2,3] by (1,2) last, (0,1) first, value 0.5',
    inputs: [{ shape: [2, 3] }],
    gpu: ([x]) => E.pad(x, [1, 2, 0, 1], 0.5),
    ref: ([x]) => Float64Array.from({ length: 3 * 6 }, (_, i) => {
      const r = Math.floor(i / 6);
      const c = i % 6;
      return r < 2 && c >= 1 && c < 4 ? x[r * 3 + c - 1] : 0.5;
    }),
  },
  {
    name: 'reshape of permuted view then sum',
    inputs: [{ shape: [2, 3, 4] }],
    gpu: ([x]) => E.sum(E.reshape(E.permute(x, [2, 0, 1]), [4, 6]), 1),
    ref: ([x]) => Float64Array.from({ length: 4 }, (_, k) => { let s = 0; for (let i = 0; i < 6; i++) s += x[i * 4 + k]; return s; }),
  },
  {
    name: 'expand [3,1] → [3,4] (grad sums back)',
    inputs: [{ shape: [3, 1] }],
    gpu: ([x]) => E.mul(E.expand(x, [3, 4]), 2),
    ref: ([x]) => Float64Array.from({ length: 12 }, (_, i) => 2 * x[Math.floor(i / 4)]),
  },
  {
    name: 'gather dim 1 [4,5] by [4,3]',
    inputs: [{ shape: [4, 5] }],
    gpu: ([x]) => E.gather(x, 1, E.fromArray(GIDX, [4, 3], 'i32')),
    ref: ([x]) => refGather('gather', x, [4, 5], 1, GIDX, [4, 3]),
  },
  // Row kernels: 35 rows (32 per workgroup + 3) of vec4 rows; 33 rows of 70 scalars with a pre dim.
  {
    name: 'indexSelect dim 0 [40,64] by 35 indices with repeats (vec4 rows)',
    inputs: [{ shape: [40, 64] }],
    gpu: ([x]) => E.indexSelect(x, 0, E.fromArray(Int32Array.from({ length: 35 }, (_, i) => (i * 7 + 3) % 40), [35], 'i32')),
    ref: ([x]) => refGather('indexSelect', x, [40, 64], 0, Array.from({ length: 35 }, (_, i) => (i * 7 + 3) % 40), [35, 64]),
  },
  {
    name: 'indexSelect dim 1 [2,5,70] by 33 indices (scalar rows)',
    inputs: [{ shape: [2, 5, 70] }],
    gpu: ([x]) => E.indexSelect(x, 1, E.fromArray(Int32Array.from({ length: 33 }, (_, i) => (i * 3 + 1) % 5), [33], 'i32')),
    ref: ([x]) => refGather('indexSelect', x, [2, 5, 70], 1, Array.from({ length: 33 }, (_, i) => (i * 3 + 1) % 5), [2, 33, 70]),
  },
  {
    name: 'indexSelect dim 0 with repeats (atomic backward)',
    inputs: [{ shape: [6, 3] }],
    gpu: ([x]) => E.indexSelect(x, 0, E.fromArray(SIDX, [4], 'i32')),
    ref: ([x]) => refGather('indexSelect', x, [6, 3], 0, SIDX, [4, 3]),
  },
  {
    name: 'scatterAdd dim 1 base [3,4] src [3,2]',
    inputs: [{ shape: [3, 4] }, { shape: [3, 2] }],
    gpu: ([b, s]) => E.scatterAdd(b, 1, E.fromArray(SCIDX, [3, 2], 'i32'), s),
    ref: ([b, s]) => refScatterAdd('gather', b, 4, s, [3, 2], 1, SCIDX),
  },
  {
    name: 'crossEntropy with ignoreIndex (mean over valid)',
    inputs: [{ shape: [5, 4], lo: -3, hi: 3 }],
    gpu: ([x]) => E.crossEntropy(x, E.fromArray(CE_LABELS, [5], 'i32')),
    ref: ([x]) => {
      const lsm = refSoftmaxRows(x, 5, 4, true);
      let s = 0;
      let n = 0;
      CE_LABELS.forEach((l, r) => { if (l !== -100) { s -= lsm[r * 4 + l]; n++; } });
      return Float64Array.of(s / n);
    },
  },
  {
    name: 'tensor used twice (x*x + x)',
    inputs: [{ shape: [5] }],
    gpu: ([x]) => E.add(E.mul(x, x), x),
    ref: ([x]) => x.map((v) => v * v + v),
  },
];

const t = suite('engine ops');
t.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});
t.after(() => E.setPoison(false));
for (const r of rows) {
  t(r.name, async () => {
    await checkOp(r.name, r.inputs, r.gpu, r.ref, { ...r.tol, grad: r.grad });
  });
}
t.run();
