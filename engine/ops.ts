// Core op table: elementwise (broadcasting), views, reductions. Each row: forward + backward.
// Shapes in comments: x: [..] means any rank.
import { apply, backward as runBackward, type OpDef } from './autograd.ts';
import { empty, fromArray, Tensor, viewOf, type DType } from './tensor.ts';
import { runtime } from './runtime.ts';
import { type Launch, contiguousStrides, numel } from '../kernels/common.ts';
import { BINARY, type BinaryOp, broadcastShapes, binaryLaunch, castLaunch, COMPARE, type CompareOp, compareLaunch, mapLaunch, type UnaryOp, UNARY, unaryLaunch, whereLaunch } from '../kernels/elementwise.ts';
import { isArgReduce, partialsLaunch, reduceColsVec4Launch, reduceLaunch, TARGET_THREADS_CPU, TARGET_THREADS_GPU, type ReduceOp } from '../kernels/reduce.ts';
import { assignLaunch } from '../kernels/layout.ts';

/** Runs a launch over tensors' whole buffers (tensors in binding order). */
export function run(l: Launch, tensors: Tensor[]): void {
  runtime().launch(l, tensors.map((t) => t.buffer));
}

// ---- creation --------------------------------------------------------------------------------

export function full(shape: number[], value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(shape, dtype, 'full');
  if (t.size > 0) run(mapLaunch('fill', `T(${dtype}(u.s0))`, [], dtype, [], shape, value, 0, true), [t]);
  return t;
}
export const zeros = (shape: number[], dtype: DType = 'f32') => full(shape, 0, dtype);
export const ones = (shape: number[], dtype: DType = 'f32') => full(shape, 1, dtype);
export const zerosLike = (t: Tensor) => full(t.shape, 0, t.dtype);
export const onesLike = (t: Tensor) => full(t.shape, 1, t.dtype);

/** start, start+step, ... (< end). */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'f32'): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = empty([n], dtype, 'arange');
  if (n > 0) run(mapLaunch('arange', 'T(u.s0 + f32(i) * u.s1)', [], dtype, [], [n], start, step), [t]);
  return t;
}

/** The only readback path: copies to the CPU (one host sync). */
export async function toArray(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
  const c = t.isContiguous ? t : contiguous(t);
  const [buf] = await runtime().readMany([{ buffer: c.buffer, offset: c.offset * 4, bytes: c.size * 4 }]);
  if (c !== t) c.dispose();
  return t.dtype === 'f32' ? new Float32Array(buf) : t.dtype === 'i32' ? new Int32Array(buf) : new Uint32Array(buf);
}

/** Reads several tensors with one host sync (logged scalars of a training step). */
export async function toArrays(ts: Tensor[]): Promise<(Float32Array | Int32Array | Uint32Array)[]> {
  const cs = ts.map((t) => (t.isContiguous ? t : contiguous(t)));
  const bufs = await runtime().readMany(cs.map((c) => ({ buffer: c.buffer, offset: c.offset * 4, bytes: c.size * 4 })));
  cs.forEach((c, i) => c !== ts[i] && c.dispose());
  return bufs.map((b, i) => (ts[i].dtype === 'f32' ? new Float32Array(b) : ts[i].dtype === 'i32' ? new Int32Array(b) : new Uint32Array(b)));
}

export { fromArray };

// ---- views -----------------------------------------------------------------------------------

function normDim(op: string, d: number, rank: number): number {
  const r = d < 0 ? d + rank : d;
  if (r < 0 || r >= Math.max(rank, 1)) throw new Error(`${op}: dim ${d} out of range for rank ${rank}`);
  return r;
}

/** Strides for viewing x as `shape` without a copy, or null if the layout does not allow it. */
function viewStrides(x: Tensor, shape: number[]): number[] | null {
  if (x.isContiguous) return contiguousStrides(shape);
  // General case (torch's computeStride): split/merge only within jointly contiguous dim chunks.
  const oldShape = x.shape.filter((s) => s !== 1);
  const oldSt = x.strides.filter((_, i) => x.shape[i] !== 1);
  const newSt = new Array<number>(shape.length).fill(0);
  let vi = shape.length - 1;
  let chunkBase = 1;
  let i = oldShape.length - 1;
  while (i >= 0) {
    let size = oldShape[i];
    const innerStride = oldSt[i];
    while (i > 0 && oldSt[i - 1] === oldSt[i] * oldShape[i]) {
      i--;
      size *= oldShape[i];
    }
    chunkBase = innerStride;
    let acc = 1;
    while (vi >= 0 && (acc < size || shape[vi] === 1)) {
      newSt[vi] = chunkBase * acc;
      acc *= shape[vi];
      vi--;
      if (acc > size) return null;
    }
    if (acc !== size) return null;
    i--;
  }
  while (vi >= 0) newSt[vi--] = 1;
  return newSt;
}

const reshapeOp: OpDef<{ shape: number[] }> = {
  forward: ([x], { shape }) => {
    const st = viewStrides(x, shape);
    if (st) return viewOf(x, shape, st, x.offset);
    const c = contiguousRaw(x);
    const v = viewOf(c, shape, contiguousStrides(shape), 0);
    c.dispose();
    return v;
  },
  backward: (g, _s, _a, [x]) => [reshape(g, x.shape)],
};

export function reshape(x: Tensor, shape: number[]): Tensor {
  const n = x.size;
  const neg = shape.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(shape.filter((_, i) => i !== neg));
    shape = shape.slice();
    shape[neg] = rest === 0 ? 0 : n / rest;
  }
  if (numel(shape) !== n || !shape.every((s) => Number.isInteger(s) && s >= 0)) throw new Error(`reshape: cannot view [${x.shape}] (${n} elements) as [${shape}]`);
  return apply('reshape', reshapeOp, [x], { shape });
}

const permuteOp: OpDef<{ perm: number[] }> = {
  forward: ([x], { perm }) => viewOf(x, perm.map((p) => x.shape[p]), perm.map((p) => x.strides[p]), x.offset),
  backward: (g, _s, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [permute(g, inv)];
  },
};

export function permute(x: Tensor, perm: number[]): Tensor {
  const p = perm.map((d) => normDim('permute', d, x.rank));
  if (p.length !== x.rank || new Set(p).size !== p.length) throw new Error(`permute: [${perm}] is not a permutation of rank ${x.rank}`);
  return apply('permute', permuteOp, [x], { perm: p });
}

export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const p = x.shape.map((_, i) => i);
  const a = normDim('transpose', d0, x.rank);
  const b = normDim('transpose', d1, x.rank);
  [p[a], p[b]] = [p[b], p[a]];
  return permute(x, p);
}

const expandOp: OpDef<{ shape: number[] }> = {
  forward: ([x], { shape }) => {
    const lead = shape.length - x.rank;
    const st = shape.map((s, i) => {
      const j = i - lead;
      return j < 0 || (x.shape[j] === 1 && s !== 1) ? 0 : x.strides[j];
    });
    return viewOf(x, shape, st, x.offset);
  },
  backward: (g, _s, _a, [x]) => [sumTo(g, x.shape)],
};

/** Broadcast view (no copy): size-1 dims get stride 0. */
export function expand(x: Tensor, shape: number[]): Tensor {
  if (shape.join() === x.shape.join()) return x;
  const s = broadcastShapes('expand', x.shape, shape);
  if (s.join() !== shape.join()) throw new Error(`expand: [${x.shape}] cannot expand to [${shape}]`);
  return apply('expand', expandOp, [x], { shape });
}

export const unsqueeze = (x: Tensor, dim: number) => {
  const d = dim < 0 ? dim + x.rank + 1 : dim;
  const s = x.shape.slice();
  s.splice(d, 0, 1);
  return reshape(x, s);
};
export const squeeze = (x: Tensor, dim?: number) =>
  reshape(x, dim === undefined ? x.shape.filter((s) => s !== 1) : x.shape.filter((_, i) => i !== normDim('squeeze', dim, x.rank)));
export const flatten = (x: Tensor, from = 0) => reshape(x, [...x.shape.slice(0, from), -1]);

interface SliceAttrs { starts: number[]; ends: number[]; steps: number[] }
const sliceOp: OpDef<SliceAttrs> = {
  forward: ([x], { starts, ends, steps }) => {
    const shape = x.shape.map((_, d) => Math.max(0, Math.ceil((ends[d] - starts[d]) / steps[d])));
    const off = x.offset + starts.reduce((s, v, d) => s + v * x.strides[d], 0);
    return viewOf(x, shape, x.strides.map((s, d) => s * steps[d]), off);
  },
  backward: (g, _s, a, [x]) => {
    const z = zeros(x.shape, g.dtype);
    assignInto(sliceRaw(z, a), g);
    return [z];
  },
};

function sliceRaw(x: Tensor, { starts, ends, steps }: SliceAttrs): Tensor {
  return sliceOp.forward([x], { starts, ends, steps });
}

/** Strided slice along dims: ranges[d] = [start, end, step?] (negative indices from the end). */
export function slice(x: Tensor, ranges: ([number, number] | [number, number, number] | null)[]): Tensor {
  const starts: number[] = [];
  const ends: number[] = [];
  const steps: number[] = [];
  x.shape.forEach((n, d) => {
    const r = ranges[d];
    let [s, e, st] = r ? [r[0], r[1], r[2] ?? 1] : [0, n, 1];
    if (st <= 0) throw new Error(`slice: step ${st} along dim ${d} must be > 0 (use flip)`);
    if (s < 0) s += n;
    if (e < 0) e += n;
    s = Math.min(Math.max(s, 0), n);
    e = Math.min(Math.max(e, s), n);
    starts.push(s);
    ends.push(e);
    steps.push(st);
  });
  return apply('slice', sliceOp, [x], { starts, ends, steps });
}

/** Narrow along one dim: x[..., start:start+length, ...]. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim('narrow', dim, x.rank);
  const r: ([number, number] | null)[] = x.shape.map(() => null);
  r[d] = [start, start + length];
  return slice(x, r);
}

const flipOp: OpDef<{ dims: number[] }> = {
  forward: ([x], { dims }) => {
    let off = x.offset;
    const st = x.strides.slice();
    for (const d of dims) {
      off += (x.shape[d] - 1) * x.strides[d];
      st[d] = -st[d];
    }
    return viewOf(x, x.shape.slice(), st, off);
  },
  backward: (g, _s, { dims }) => [flip(g, dims)],
};

/** Reverses dims as a view (negative strides); contiguous() materialises it. */
export const flip = (x: Tensor, dims: number[]) => apply('flip', flipOp, [x], { dims: dims.map((d) => normDim('flip', d, x.rank)) });

function contiguousRaw(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, 'contiguous');
  if (out.size > 0) run(mapLaunch('copy', 'a', [x.dtype], x.dtype, [x.view], x.shape, 0, 0, true), [x, out]);
  return out;
}

const contiguousOp: OpDef<{}> = {
  forward: ([x]) => contiguousRaw(x),
  backward: (g) => [g],
};

/** A contiguous tensor with x's values (x itself if already contiguous at offset 0... or any offset). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  return apply('contiguous', contiguousOp, [x], {});
}

/** t itself when contiguous at offset 0, else a dense copy (kernels index whole buffers from element 0). */
export function dense(t: Tensor): Tensor {
  if (t.isContiguous && t.offset === 0) return t;
  const c = empty(t.shape, t.dtype, 'dense');
  assignInto(c, t);
  return c;
}
/** Frees the copy dense() made (never the caller's tensor). */
export const freeIfCopy = (c: Tensor, t: Tensor) => c !== t && c.dispose();

/** Writes src (broadcast to dst's shape) into the strided view dst. Not differentiable (used inside ops). */
export function assignInto(dst: Tensor, src: Tensor): void {
  if (dst.size === 0) return;
  const s = src.shape.join() === dst.shape.join() ? src : expandOp.forward([src], { shape: dst.shape });
  run(assignLaunch(dst.dtype, s.view, dst.view), [s, dst]);
  if (s !== src) s.dispose();
}

// ---- elementwise -------------------------------------------------------------------------------

function checkFloat(op: string, x: Tensor, floatOnly?: boolean): void {
  if (floatOnly && x.dtype !== 'f32') throw new Error(`${op}: needs f32, got ${x.dtype} [${x.shape}]`);
}

interface UnaryAttrs { op: UnaryOp; s0: number; s1: number }
const unaryOp: OpDef<UnaryAttrs> = {
  forward: ([x], { op, s0, s1 }) => {
    checkFloat(op, x, UNARY[op].floatOnly);
    const out = empty(x.shape, x.dtype, op);
    if (out.size > 0) run(unaryLaunch(op, x.dtype, x.view, s0, s1), [x, out]);
    return out;
  },
  save: ([x], out, { op }) => (['exp', 'sigmoid', 'tanh', 'sqrt', 'rsqrt'].includes(op) ? [out] : ['addS', 'mulS', 'rsubS', 'neg', 'copy'].includes(op) ? [] : [x]),
  backward: (g, [s], { op, s0, s1 }) => {
    switch (op) {
      case 'neg': return [neg(g)];
      case 'exp': return [mul(g, s)];
      case 'log': return [div(g, s)];
      case 'sqrt': return [div(g, mul(s, 2))];
      case 'rsqrt': return [mul(mul(g, pow(s, 3)), -0.5)];
      case 'abs': return [mul(g, sign(s))];
      case 'relu': return [binaryRaw('reluGrad', g, s)];
      case 'sigmoid': return [binaryRaw('sigmoidGrad', g, s)];
      case 'tanh': return [binaryRaw('tanhGrad', g, s)];
      case 'powS': return [binaryRaw('powSGrad', g, s, s0, s0 - 1)];
      case 'addS': case 'copy': return [g];
      case 'mulS': return [mul(g, s0)];
      case 'rsubS': return [neg(g)];
      case 'clamp': return [mul(g, cast(logicalAnd(ge(s, s0), le(s, s1)), 'f32'))];
      case 'sign': return [zerosLike(g)];
      case 'square': return [mul(g, mul(s, 2))];
      case 'reciprocal': return [neg(div(g, mul(s, s)))];
    }
  },
};

const unary = (op: UnaryOp, x: Tensor, s0 = 0, s1 = 0) => apply(op, unaryOp, [x], { op, s0, s1 });
export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const abs = (x: Tensor) => unary('abs', x);
export const relu = (x: Tensor) => unary('relu', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sign = (x: Tensor) => unary('sign', x);
export const square = (x: Tensor) => unary('square', x);
export const reciprocal = (x: Tensor) => unary('reciprocal', x);
/** x ** p for a scalar p (negative bases allowed for integer p, as torch). */
export const pow = (x: Tensor, p: number) => (p === 1 ? unary('copy', x) : p === 2 ? unary('square', x) : unary('powS', x, p));
export const clamp = (x: Tensor, lo = -Infinity, hi = Infinity) => unary('clamp', x, Math.max(lo, -3.4e38), Math.min(hi, 3.4e38));

interface BinaryAttrs { op: BinaryOp; s0: number; s1: number }
function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, s0 = 0, s1 = 0): Tensor {
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtypes differ (${a.dtype} [${a.shape}] vs ${b.dtype} [${b.shape}]); cast first`);
  checkFloat(op, a, BINARY[op].floatOnly);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(shape, a.dtype, op);
  if (out.size === 0) return out;
  const av = expandOp.forward([a], { shape });
  const bv = expandOp.forward([b], { shape });
  run(binaryLaunch(op, a.dtype, av.view, bv.view, shape, s0, s1), [av, bv, out]);
  av.dispose();
  bv.dispose();
  return out;
}

const binaryOp: OpDef<BinaryAttrs> = {
  forward: ([a, b], { op, s0, s1 }) => binaryRaw(op, a, b, s0, s1),
  save: ([a, b], _out, { op }) => (op === 'add' || op === 'sub' ? [] : [a, b]),
  backward: (g, [a, b], { op }, [ma, mb]) => {
    const ga = (f: () => Tensor) => (ma.requiresGrad ? sumTo(f(), ma.shape) : null);
    const gb = (f: () => Tensor) => (mb.requiresGrad ? sumTo(f(), mb.shape) : null);
    switch (op) {
      case 'add': return [ga(() => g), gb(() => g)];
      case 'sub': return [ga(() => g), gb(() => neg(g))];
      case 'mul': return [ga(() => mul(g, b)), gb(() => mul(g, a))];
      case 'div': return [ga(() => div(g, b)), gb(() => neg(div(mul(g, a), mul(b, b))))];
      // Ties split the gradient evenly, as torch.maximum.
      case 'maximum':
      case 'minimum': {
        const cmp = op === 'maximum' ? gt : lt;
        const wa = add(cast(cmp(a, b), 'f32'), mul(cast(eq(a, b), 'f32'), 0.5));
        return [ga(() => mul(g, wa)), gb(() => mul(g, rsub(wa, 1)))];
      }
      default: throw new Error(`${op}: used only inside backward passes`);
    }
  },
};

type Operand = Tensor | number;
function binary(op: 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum', a: Tensor, b: Tensor): Tensor {
  return apply(op, binaryOp, [a, b], { op, s0: 0, s1: 0 });
}
export function add(a: Tensor, b: Operand): Tensor {
  return typeof b === 'number' ? (b === 0 ? unary('copy', a) : unary('addS', a, b)) : binary('add', a, b);
}
export function sub(a: Tensor, b: Operand): Tensor {
  return typeof b === 'number' ? unary('addS', a, -b) : binary('sub', a, b);
}
export function mul(a: Tensor, b: Operand): Tensor {
  return typeof b === 'number' ? unary('mulS', a, b) : binary('mul', a, b);
}
export function div(a: Tensor, b: Operand): Tensor {
  return typeof b === 'number' ? unary('mulS', a, 1 / b) : binary('div', a, b);
}
/** s - x. */
export const rsub = (x: Tensor, s: number) => unary('rsubS', x, s);
export const maximum = (a: Tensor, b: Tensor) => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor) => binary('minimum', a, b);

function compare(op: CompareOp, a: Tensor, b: Operand): Tensor {
  const bt = typeof b === 'number' ? full([], b, a.dtype) : b;
  const shape = broadcastShapes(op, a.shape, bt.shape);
  const out = empty(shape, 'u32', op);
  if (out.size > 0) {
    const av = expandOp.forward([a], { shape });
    const bv = expandOp.forward([bt], { shape });
    run(compareLaunch(op, a.dtype, av.view, bv.view, shape), [av, bv, out]);
    av.dispose();
    bv.dispose();
  }
  if (bt !== b) bt.dispose();
  return out;
}
/** Comparisons return u32 0/1 masks (no grad). */
export const eq = (a: Tensor, b: Operand) => compare('eq', a, b);
export const ne = (a: Tensor, b: Operand) => compare('ne', a, b);
export const lt = (a: Tensor, b: Operand) => compare('lt', a, b);
export const le = (a: Tensor, b: Operand) => compare('le', a, b);
export const gt = (a: Tensor, b: Operand) => compare('gt', a, b);
export const ge = (a: Tensor, b: Operand) => compare('ge', a, b);
export const logicalAnd = (a: Tensor, b: Tensor) => binaryRaw('mul', a, b);
export { COMPARE };

const whereOp: OpDef<{}> = {
  forward: ([c, a, b]) => {
    const shape = broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape);
    if (a.dtype !== b.dtype) throw new Error(`where: branch dtypes differ (${a.dtype} vs ${b.dtype})`);
    const out = empty(shape, a.dtype, 'where');
    if (out.size === 0) return out;
    const vs = [c, a, b].map((t) => expandOp.forward([t], { shape }));
    run(whereLaunch(c.dtype, a.dtype, vs[0].view, vs[1].view, vs[2].view, shape), [...vs, out]);
    vs.forEach((v) => v.dispose());
    return out;
  },
  save: ([c]) => [c],
  backward: (g, [c], _a, [, ma, mb]) => {
    const z = zeros([], g.dtype);
    return [null, ma.requiresGrad ? sumTo(where(c, g, z), ma.shape) : null, mb.requiresGrad ? sumTo(where(c, z, g), mb.shape) : null];
  },
};
/** cond != 0 ? a : b, broadcasting all three. */
export const where = (cond: Tensor, a: Tensor, b: Tensor) => apply('where', whereOp, [cond, a, b], {});

const castOp: OpDef<{ to: DType }> = {
  forward: ([x], { to }) => {
    const out = empty(x.shape, to, 'cast');
    if (out.size > 0) run(castLaunch(x.dtype, to, x.view), [x, out]);
    return out;
  },
  backward: (g, _s, _a, [m]) => [m.dtype === 'f32' ? g : null],
};
export const cast = (x: Tensor, to: DType) => (x.dtype === to ? x : apply('cast', castOp, [x], { to }));

// ---- reductions ------------------------------------------------------------------------------

function reduceRaw(op: ReduceOp, x: Tensor, dims: number[], scale = 1): Tensor {
  const keptShape = x.shape.filter((_, i) => !dims.includes(i));
  const outType: DType = isArgReduce(op) ? 'i32' : x.dtype;
  const out = empty(keptShape, outType, op);
  if (out.size === 0) return out;
  if (numel(dims.map((d) => x.shape[d])) === 0) {
    if (op !== 'sum') throw new Error(`${op}: reducing an empty dim of [${x.shape}]`);
    run(mapLaunch('fill', 'T(u.s0)', [], outType, [], keptShape, 0), [out]);
    return out;
  }
  const target = runtime().dev.isCpu ? TARGET_THREADS_CPU : TARGET_THREADS_GPU;
  const { launch, plan } = reduceColsVec4Launch(op, x.dtype, x.view, dims, scale, target) ?? reduceLaunch(op, x.dtype, x.view, dims, scale, target);
  if (plan.chunks === 1) {
    run(launch, [x, out]);
    return out;
  }
  const pv = empty([plan.nOut * plan.chunks], x.dtype, `${op}-partials`);
  const pi = isArgReduce(op) ? empty([plan.nOut * plan.chunks], 'i32', `${op}-partial-idx`) : null;
  run(launch, pi ? [x, pv, pi] : [x, pv]);
  run(partialsLaunch(op, x.dtype, plan.nOut, plan.chunks, scale), pi ? [pv, pi, out] : [pv, out]);
  pv.dispose();
  pi?.dispose();
  return out;
}

function reduceDims(op: string, x: Tensor, dims?: number | number[]): number[] {
  if (dims === undefined) return x.shape.map((_, i) => i);
  const ds = (Array.isArray(dims) ? dims : [dims]).map((d) => normDim(op, d, x.rank));
  return [...new Set(ds)].sort((a, b) => a - b);
}

function keepdimShape(shape: number[], dims: number[]): number[] {
  return shape.map((s, i) => (dims.includes(i) ? 1 : s));
}

interface ReduceAttrs { op: 'sum' | 'max' | 'min'; dims: number[]; keepdim: boolean; scale: number }
const reduceOp: OpDef<ReduceAttrs> = {
  forward: ([x], { op, dims, keepdim, scale }) => {
    const r = reduceRaw(op, x, dims, scale);
    if (!keepdim) return r;
    const v = viewOf(r, keepdimShape(x.shape, dims), contiguousStrides(keepdimShape(x.shape, dims)), 0);
    r.dispose();
    return v;
  },
  save: ([x], out, { op }) => (op === 'sum' ? [] : [x, out]),
  backward: (g, saved, { op, dims, keepdim, scale }, [m]) => {
    const gk = keepdim ? g : reshape(g, keepdimShape(m.shape, dims));
    if (op === 'sum') return [expand(scale === 1 ? gk : mul(gk, scale), m.shape)];
    // amax/amin semantics: ties share the gradient evenly.
    const [x, out] = saved;
    const ok = keepdim ? out : reshape(out, keepdimShape(m.shape, dims));
    const mask = cast(eq(x, expand(ok, m.shape)), 'f32');
    const count = reduceOp.forward([mask], { op: 'sum', dims, keepdim: true, scale: 1 });
    return [mul(div(mask, count), expand(gk, m.shape))];
  },
};

export function sum(x: Tensor, dims?: number | number[], keepdim = false): Tensor {
  return apply('sum', reduceOp, [x], { op: 'sum', dims: reduceDims('sum', x, dims), keepdim, scale: 1 });
}
export function mean(x: Tensor, dims?: number | number[], keepdim = false): Tensor {
  const ds = reduceDims('mean', x, dims);
  const n = numel(ds.map((d) => x.shape[d]));
  if (x.dtype !== 'f32') throw new Error(`mean: needs f32, got ${x.dtype}`);
  return apply('mean', reduceOp, [x], { op: 'sum', dims: ds, keepdim, scale: 1 / n });
}
/** Values of max over dims (amax; use argmax for indices). */
export const max = (x: Tensor, dims?: number | number[], keepdim = false) => apply('max', reduceOp, [x], { op: 'max', dims: reduceDims('max', x, dims), keepdim, scale: 1 });
export const min = (x: Tensor, dims?: number | number[], keepdim = false) => apply('min', reduceOp, [x], { op: 'min', dims: reduceDims('min', x, dims), keepdim, scale: 1 });
/** Index (i32) of the first maximum along dim (flattened index if dim omitted). */
export const argmax = (x: Tensor, dim?: number) => reduceRaw('argmax', x, reduceDims('argmax', x, dim));
export const argmin = (x: Tensor, dim?: number) => reduceRaw('argmin', x, reduceDims('argmin', x, dim));

/** Variance over dims, two-pass (mean first) for stability; unbiased divides by n-1 as torch.var. */
export function variance(x: Tensor, dims?: number | number[], unbiased = true, keepdim = false): Tensor {
  const ds = reduceDims('var', x, dims);
  const n = numel(ds.map((d) => x.shape[d]));
  const d = sub(x, mean(x, ds, true));
  return mul(sum(square(d), ds, keepdim), 1 / Math.max(unbiased ? n - 1 : n, 1));
}

/** Sums g over broadcast dims so it has `shape` (inverse of expand). */
export function sumTo(g: Tensor, shape: number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.rank - shape.length;
  const dims: number[] = [];
  g.shape.forEach((s, i) => {
    if (i < lead || (shape[i - lead] === 1 && s !== 1)) dims.push(i);
  });
  const r = dims.length ? sum(g, dims, true) : g;
  return reshape(r, shape);
}

// ---- autograd entry ----------------------------------------------------------------------------

/** Backpropagates from a scalar loss (or from `root` with an explicit upstream grad). */
export function backward(root: Tensor, grad?: Tensor): void {
  runBackward(root, grad, (s) => ones(s, root.dtype), (a, b) => binaryRaw('add', a, b), contiguousRaw);
}

export const coreOps = {
  reshape: reshapeOp,
  permute: permuteOp,
  expand: expandOp,
  slice: sliceOp,
  flip: flipOp,
  contiguous: contiguousOp,
  unary: unaryOp,
  binary: binaryOp,
  where: whereOp,
  cast: castOp,
  reduce: reduceOp,
} satisfies Record<string, OpDef>;
