// NN op table: matmul, softmax family, losses, gather/scatter, concat/stack/pad, random.
import { apply, type OpDef } from './autograd.ts';
import { empty, Tensor, viewOf, type DType } from './tensor.ts';
import { runtime } from './runtime.ts';
import { coalesce, numel } from '../kernels/common.ts';
import { canVec4, matmulLaunch, matmulVec4Launch, type MatmulDims, vec4Tile } from '../kernels/matmul.ts';
import { mapLaunch, broadcastShapes } from '../kernels/elementwise.ts';
import { gatherLaunch, scatterAddLaunch } from '../kernels/layout.ts';
import { randomLaunch } from '../kernels/random.ts';
import { softmaxBackwardLaunch, softmaxLaunch, softmaxRowsSgLaunch, softmaxSgFits } from '../kernels/softmax.ts';
import {
  assignInto, cast, contiguous, div, expand, full, mul, narrow, ne, neg, permute, reshape, run, slice, sum, sumTo, transpose, unsqueeze, zeros,
} from './ops.ts';

// ---- matmul ------------------------------------------------------------------------------------

/** Flattens a view's batch dims (all but the last two) into one stride, or null if impossible. */
function batchStride(t: Tensor): number | null {
  const co = coalesce(t.shape.slice(0, -2), [t.strides.slice(0, -2)]);
  return co.shape.length === 1 ? co.strides[0][0] : null;
}

function matmulRaw(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error(`matmul: needs f32, got ${a.dtype} [${a.shape}] · ${b.dtype} [${b.shape}]`);
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  if (K !== K2) throw new Error(`matmul: inner dims differ: [${a.shape}] · [${b.shape}] (${K} vs ${K2})`);
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = numel(batchShape);
  let av = expand(a, [...batchShape, M, K]);
  let bv = expand(b, [...batchShape, K, N]);
  let sa = batchStride(av);
  let sb = batchStride(bv);
  // Replaces a view by its contiguous copy, freeing the view when it is not the caller's tensor.
  const dense = (v: Tensor, orig: Tensor) => { const c = contiguous(v); if (c !== v && v !== orig) v.dispose(); return c; };
  if (sa === null) { av = dense(av, a); sa = M * K; }
  if (sb === null) { bv = dense(bv, b); sb = K * N; }
  const out = empty([...batchShape, M, N], 'f32', 'matmul');
  if (out.size > 0) {
    const dims = (): MatmulDims => ({
      batch, M, N, K,
      aStrides: [batch > 1 ? sa! : 0, av.strides[av.rank - 2], av.strides[av.rank - 1]], aOffset: av.offset,
      bStrides: [batch > 1 ? sb! : 0, bv.strides[bv.rank - 2], bv.strides[bv.rank - 1]], bOffset: bv.offset,
    });
    let d = dims();
    // A transposed (or misaligned) B costs one contiguous copy (4x4-tile transpose: ~1% of the
    // product at 1024^3) and then runs the vec4 kernel, 5x faster than the strided one on lavapipe.
    if (K > 0 && M >= 8 && N % 4 === 0 && !canVec4(d) && (batch === 1 || sb !== 0)) {
      bv = dense(bv, b);
      sb = K * N;
      d = dims();
    }
    if (K === 0) run(mapLaunch('fill', 'T(u.s0)', [], 'f32', [], out.shape, 0), [out]);
    else run(canVec4(d) && M >= 8 ? matmulVec4Launch(d, false, 0, vec4Tile(M, runtime().dev.subgroups8)) : matmulLaunch(d), [av, bv, out]);
  }
  if (av !== a) av.dispose();
  if (bv !== b) bv.dispose();
  return out;
}

const matmulOp: OpDef<{}> = {
  forward: ([a, b]) => matmulRaw(a, b),
  save: ([a, b]) => [a, b],
  backward: (g, [a, b], _attrs, [ma, mb]) => [
    ma.requiresGrad ? sumTo(matmul(g, transpose(b)), ma.shape) : null,
    mb.requiresGrad ? sumTo(matmul(transpose(a), g), mb.shape) : null,
  ],
};

/** a: [..., M, K] · b: [..., K, N] → [..., M, N]; batch dims broadcast; 1-D operands as torch. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 1) return reshape(matmul(unsqueeze(a, 0), b), b.rank === 1 ? [] : [...b.shape.slice(0, -2), b.shape[b.rank - 1]]);
  if (b.rank === 1) return reshape(matmul(a, unsqueeze(b, 1)), a.shape.slice(0, -1));
  return apply('matmul', matmulOp, [a, b], {});
}

// ---- softmax family ------------------------------------------------------------------------------

const softmaxOp: OpDef<{ log: boolean }> = {
  // x: [rows, cols] (any strides) → y: [rows, cols] contiguous.
  forward: ([x], { log }) => {
    if (x.dtype !== 'f32') throw new Error(`softmax: needs f32, got ${x.dtype} [${x.shape}]`);
    const [rows, cols] = x.shape;
    const y = empty([rows, cols], 'f32', log ? 'logSoftmax' : 'softmax');
    const dev = runtime().dev;
    if (y.size === 0) return y;
    if (dev.subgroups8 && softmaxSgFits(cols, x.strides[0], x.strides[1], x.offset)) run(softmaxRowsSgLaunch(log, 'fwd', rows, cols, x.strides[0], x.offset, dev.subgroupMaxSize), [x, y]);
    else run(softmaxLaunch(log, rows, cols, x.strides[0], x.strides[1], x.offset), [x, y]);
    return y;
  },
  save: (_x, y) => [y],
  backward: (g, [y], { log }) => {
    const gc = contiguous(g);
    const dx = empty(y.shape, 'f32', 'softmax-grad');
    const dev = runtime().dev;
    const [rows, cols] = y.shape;
    if (dx.size === 0) return [dx];
    if (dev.subgroups8 && softmaxSgFits(cols, cols, 1, 0)) run(softmaxRowsSgLaunch(log, 'bwd', rows, cols, cols, 0, dev.subgroupMaxSize), [gc, y, dx]);
    else run(softmaxBackwardLaunch(log, rows, cols), [gc, y, dx]);
    return [dx];
  },
};

function softmaxAlong(x: Tensor, dim: number, log: boolean): Tensor {
  const d = dim < 0 ? dim + x.rank : dim;
  if (d < 0 || d >= x.rank) throw new Error(`softmax: dim ${dim} out of range for [${x.shape}]`);
  const perm = x.shape.map((_, i) => i).filter((i) => i !== d).concat([d]);
  const moved = d === x.rank - 1 ? x : permute(x, perm);
  const cols = x.shape[d];
  const rows = cols === 0 ? 0 : moved.size / cols;
  // [rows, cols] as a view when the leading dims merge, else one copy.
  const flat2 = reshape(moved, [rows, cols]);
  const y = apply(log ? 'logSoftmax' : 'softmax', softmaxOp, [flat2], { log });
  const back = reshape(y, moved.shape);
  if (d === x.rank - 1) return back;
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return permute(back, inv);
}

/** softmax along dim (fused: one pass per row). */
export const softmax = (x: Tensor, dim = -1) => softmaxAlong(x, dim, false);
/** log-softmax along dim: x - max - log Σ exp(x - max). */
export const logSoftmax = (x: Tensor, dim = -1) => softmaxAlong(x, dim, true);

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(l: Tensor, reduction: Reduction): Tensor {
  return reduction === 'none' ? l : reduction === 'sum' ? sum(l) : mul(sum(l), 1 / Math.max(l.size, 1));
}

/**
 * logits: [N, C]; labels: i32 [N]. torch F.cross_entropy: entries with label == ignoreIndex add
 * nothing; 'mean' divides by the number of non-ignored entries (computed on the GPU, no sync).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: { ignoreIndex?: number; reduction?: Reduction } = {}): Tensor {
  const { ignoreIndex = -100, reduction = 'mean' } = opts;
  if (logits.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: logits [${logits.shape}] must be [N, C] and labels [${labels.shape}] [N]`);
  }
  if (labels.dtype !== 'i32') throw new Error(`crossEntropy: labels must be i32, got ${labels.dtype}`);
  const lsm = logSoftmax(logits, 1);
  const valid = cast(ne(labels, ignoreIndex), 'f32');
  const picked = reshape(gather(lsm, 1, unsqueeze(labels, 1)), [labels.shape[0]]);
  const nll = neg(mul(picked, valid));
  if (reduction === 'none') return nll;
  if (reduction === 'sum') return sum(nll);
  return div(sum(nll), sum(valid));
}

interface PairLossAttrs { kind: 'smoothL1' | 'l1' | 'bce'; beta: number }
// Forward expr over (a = input, b = target); backward exprs over (a = g, b = input, c = target).
// Valid for scalar and vec4 operands (T is the operand type), so flat inputs take the vec4 path.
const pairLoss: Record<PairLossAttrs['kind'], { f: string; dx: string; dy: string }> = {
  // torch smooth_l1_loss: beta == 0 is exactly L1.
  smoothL1: {
    f: 'select(abs(a - b) - 0.5 * u.s0, 0.5 * (a - b) * (a - b) / u.s0, abs(a - b) < T(u.s0))',
    dx: 'a * select(sign(b - c), (b - c) / u.s0, abs(b - c) < T(u.s0))',
    dy: '-a * select(sign(b - c), (b - c) / u.s0, abs(b - c) < T(u.s0))',
  },
  l1: { f: 'abs(a - b)', dx: 'a * sign(b - c)', dy: '-a * sign(b - c)' },
  // max(x,0) - x·y + log1p(exp(-|x|)): stable for large |x|.
  bce: {
    f: 'max(a, T(0)) - a * b + log(1.0 + exp(-abs(a)))',
    dx: 'a * (select(exp(-abs(b)), T(1), b >= T(0)) / (1.0 + exp(-abs(b))) - c)',
    dy: '-a * b',
  },
};

const pairLossOp: OpDef<PairLossAttrs> = {
  forward: ([x, y], { kind, beta }) => {
    const shape = broadcastShapes(kind, x.shape, y.shape);
    const out = empty(shape, 'f32', kind);
    if (out.size === 0) return out;
    const xv = expand(x, shape);
    const yv = expand(y, shape);
    run(mapLaunch(`loss-${kind}`, pairLoss[kind].f, ['f32', 'f32'], 'f32', [xv.view, yv.view], shape, beta, 0, true), [xv, yv, out]);
    if (xv !== x) xv.dispose();
    if (yv !== y) yv.dispose();
    return out;
  },
  save: ([x, y]) => [x, y],
  backward: (g, [x, y], { kind, beta }, [mx, my]) => {
    const shape = g.shape;
    const grad = (which: 'dx' | 'dy', m: { shape: number[]; requiresGrad: boolean }) => {
      if (!m.requiresGrad) return null;
      const out = empty(shape, 'f32', `${kind}-${which}`);
      const vs = [g, expand(x, shape), expand(y, shape)];
      run(mapLaunch(`loss-${kind}-${which}`, pairLoss[kind][which], ['f32', 'f32', 'f32'], 'f32', vs.map((v) => v.view), shape, beta, 0, true), [...vs, out]);
      return sumTo(out, m.shape);
    };
    return [grad('dx', mx), grad('dy', my)];
  },
};

/** torch smooth_l1_loss(input, target, beta). */
export const smoothL1 = (input: Tensor, target: Tensor, beta = 1, reduction: Reduction = 'mean') =>
  reduce(beta === 0 ? apply('l1', pairLossOp, [input, target], { kind: 'l1', beta }) : apply('smoothL1', pairLossOp, [input, target], { kind: 'smoothL1', beta }), reduction);
export const l1Loss = (input: Tensor, target: Tensor, reduction: Reduction = 'mean') => reduce(apply('l1', pairLossOp, [input, target], { kind: 'l1', beta: 0 }), reduction);
/** torch binary_cross_entropy_with_logits. */
export const bceWithLogits = (logits: Tensor, target: Tensor, reduction: Reduction = 'mean') => reduce(apply('bce', pairLossOp, [logits, target], { kind: 'bce', beta: 0 }), reduction);

// ---- gather / scatter ----------------------------------------------------------------------------

interface IndexAttrs { mode: 'gather' | 'indexSelect'; dim: number }
function checkIndex(op: string, idx: Tensor): void {
  if (idx.dtype !== 'i32') throw new Error(`${op}: index must be i32, got ${idx.dtype} [${idx.shape}]`);
}

const gatherOp: OpDef<IndexAttrs> = {
  forward: ([x, idx], { mode, dim }) => {
    const xc = contiguous(x);
    const ic = contiguous(idx);
    const outShape = mode === 'gather' ? idx.shape.slice() : x.shape.map((s, i) => (i === dim ? idx.shape[0] : s));
    const out = empty(outShape, x.dtype, mode);
    if (out.size > 0) run(gatherLaunch(mode, x.dtype, xc.view, dim, ic.view, outShape), [xc, ic, out]);
    if (xc !== x) xc.dispose();
    if (ic !== idx) ic.dispose();
    return out;
  },
  save: ([, idx]) => [idx],
  backward: (g, [idx], { mode, dim }, [mx]) => [mx.requiresGrad ? scatterAddRaw(zeros(mx.shape), mode, dim, idx, g) : null, null],
};

function scatterAddRaw(base: Tensor, mode: IndexAttrs['mode'], dim: number, idx: Tensor, src: Tensor): Tensor {
  if (base.dtype !== 'f32') throw new Error(`scatterAdd: needs f32, got ${base.dtype}`);
  const out = empty(base.shape, 'f32', 'scatterAdd');
  assignInto(out, base);
  const sc = contiguous(src);
  const ic = contiguous(idx);
  if (sc.size > 0) run(scatterAddLaunch(mode, sc.view, dim, base.shape[dim], ic.view), [sc, ic, out]);
  if (sc !== src) sc.dispose();
  if (ic !== idx) ic.dispose();
  return out;
}

/** torch.gather: out[.., j, ..] = x[.., index[.., j, ..], ..]; index: i32 with x's shape except along dim. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndex('gather', index);
  const d = dim < 0 ? dim + x.rank : dim;
  if (index.rank !== x.rank || index.shape.some((s, i) => i !== d && s !== x.shape[i])) {
    throw new Error(`gather: index [${index.shape}] must match x [${x.shape}] except along dim ${d}`);
  }
  return apply('gather', gatherOp, [x, index], { mode: 'gather', dim: d });
}

/** torch.index_select: rows idx[L] (i32) of x along dim. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndex('indexSelect', index);
  if (index.rank !== 1) throw new Error(`indexSelect: index must be 1-D, got [${index.shape}]`);
  return apply('indexSelect', gatherOp, [x, index], { mode: 'indexSelect', dim: dim < 0 ? dim + x.rank : dim });
}

const scatterAddOp: OpDef<IndexAttrs> = {
  forward: ([base, idx, src], { mode, dim }) => scatterAddRaw(base, mode, dim, idx, src),
  save: ([, idx]) => [idx],
  backward: (g, [idx], { mode, dim }, [mb, , ms]) => [
    mb.requiresGrad ? g : null,
    null,
    ms.requiresGrad ? apply(mode, gatherOp, [g, idx], { mode, dim }) : null,
  ],
};

/** torch.scatter_add (gather-shaped index) on f32: base + scatter of src at index along dim. */
export function scatterAdd(base: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkIndex('scatterAdd', index);
  const d = dim < 0 ? dim + base.rank : dim;
  if (index.shape.join() !== src.shape.join()) throw new Error(`scatterAdd: index [${index.shape}] and src [${src.shape}] must have one shape`);
  return apply('scatterAdd', scatterAddOp, [base, index, src], { mode: 'gather', dim: d });
}

/** torch.index_add: base with src[.., l, ..] added at row index[l] along dim. */
export function indexAdd(base: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkIndex('indexAdd', index);
  return apply('indexAdd', scatterAddOp, [base, index, src], { mode: 'indexSelect', dim: dim < 0 ? dim + base.rank : dim });
}

// ---- concat / stack / pad ---------------------------------------------------------------------------

const concatOp: OpDef<{ dim: number }> = {
  forward: (xs, { dim }) => {
    const shape = xs[0].shape.slice();
    shape[dim] = xs.reduce((s, x) => s + x.shape[dim], 0);
    const out = empty(shape, xs[0].dtype, 'concat');
    let at = 0;
    for (const x of xs) {
      const v = narrowRaw(out, dim, at, x.shape[dim]);
      assignInto(v, x);
      v.dispose();
      at += x.shape[dim];
    }
    return out;
  },
  backward: (g, _s, { dim }, ms) => {
    let at = 0;
    return ms.map((m) => {
      const r = m.requiresGrad ? narrow(g, dim, at, m.shape[dim]) : null;
      at += m.shape[dim];
      return r;
    });
  },
};

function narrowRaw(x: Tensor, dim: number, start: number, len: number): Tensor {
  const shape = x.shape.slice();
  shape[dim] = len;
  return viewOf(x, shape, x.strides.slice(), x.offset + start * x.strides[dim]);
}

export function concat(xs: Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors');
  const d = dim < 0 ? dim + xs[0].rank : dim;
  for (const x of xs) {
    if (x.rank !== xs[0].rank || x.dtype !== xs[0].dtype || x.shape.some((s, i) => i !== d && s !== xs[0].shape[i])) {
      throw new Error(`concat: [${x.shape}] ${x.dtype} does not match [${xs[0].shape}] ${xs[0].dtype} outside dim ${d}`);
    }
  }
  return apply('concat', concatOp, xs, { dim: d });
}

export const stack = (xs: Tensor[], dim = 0) => concat(xs.map((x) => unsqueeze(x, dim < 0 ? dim + x.rank + 1 : dim)), dim);

const padOp: OpDef<{ pads: [number, number][]; value: number }> = {
  forward: ([x], { pads, value }) => {
    const shape = x.shape.map((s, i) => s + pads[i][0] + pads[i][1]);
    const out = full(shape, value, x.dtype);
    const inner = viewOf(out, x.shape.slice(), out.strides.slice(), pads.reduce((o, p, i) => o + p[0] * out.strides[i], 0));
    assignInto(inner, x);
    inner.dispose();
    return out;
  },
  backward: (g, _s, { pads }, [m]) => [slice(g, m.shape.map((s, i) => [pads[i][0], pads[i][0] + s] as [number, number]))],
};

/** Constant pad as torch F.pad: pads = [lastLo, lastHi, prevLo, prevHi, ...] (non-negative). */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  if (pads.length % 2 || pads.length / 2 > x.rank || pads.some((p) => p < 0 || !Number.isInteger(p))) {
    throw new Error(`pad: pads [${pads}] invalid for [${x.shape}] (pairs per trailing dim, non-negative integers)`);
  }
  const per: [number, number][] = x.shape.map(() => [0, 0]);
  for (let k = 0; k < pads.length / 2; k++) per[x.rank - 1 - k] = [pads[2 * k], pads[2 * k + 1]];
  return apply('pad', padOp, [x], { pads: per, value });
}

// ---- random ------------------------------------------------------------------------------------

let rngSeed = 0x5eed;
let rngStream = 0;
/** Resets the engine RNG; every later rand/randn/init is a function of (seed, call order). */
export function manualSeed(seed: number): void {
  rngSeed = seed >>> 0;
  rngStream = 0;
}

export function rand(shape: number[], lo = 0, hi = 1, dtype: DType = 'f32'): Tensor {
  const t = empty(shape, dtype, 'rand');
  if (t.size > 0) run(randomLaunch('uniform', dtype, t.size, rngSeed, rngStream++, lo, hi), [t]);
  return t;
}

export function randn(shape: number[], meanV = 0, std = 1): Tensor {
  const t = empty(shape, 'f32', 'randn');
  if (t.size > 0) run(randomLaunch('normal', 'f32', t.size, rngSeed, rngStream++, meanV, std), [t]);
  return t;
}

export const nnOps = {
  matmul: matmulOp,
  softmax: softmaxOp,
  pairLoss: pairLossOp,
  gather: gatherOp,
  scatterAdd: scatterAddOp,
  concat: concatOp,
  pad: padOp,
} satisfies Record<string, OpDef>;

