// Batch norm (train / eval / frozen), per-channel affine, group norm, pooling and resampling op rows
// (kernels in ../kernels/{norm,group-norm,pool,resample}.ts); aggregated into convOps by ./ops-conv.ts. All NCHW.
import { apply, noGrad, type OpDef } from './autograd.ts';
import { empty, Tensor, viewOf } from './tensor.ts';
import { add, dense, freeIfCopy, full, mul, rsqrt, run, sub } from './ops.ts';
import { mapLaunch } from '../kernels/elementwise.ts';
import {
  bnBackwardLaunch, bnStatsFinalizeLaunch, bnStatsPartialLaunch, channelAffineLaunch, channelSumsFinalizeLaunch, channelSumsPartialLaunch, planChannels, type ChannelPlan,
} from '../kernels/norm.ts';
import { gnBwdChannelLaunch, gnBwdDxLaunch, gnBwdGroupLaunch, gnBwdPartialLaunch, gnNormalizeLaunch, gnStatsFinalLaunch, gnStatsPartialLaunch, planGroupNorm, type GroupNormPlan } from '../kernels/group-norm.ts';
import { TARGET_THREADS_CPU, TARGET_THREADS_GPU } from '../kernels/reduce.ts';
import { numel } from '../kernels/common.ts';
import { runtime } from './runtime.ts';


/** g · (y > 0): a ReLU fused into a forward epilogue, undone on the way back. */
export function reluMask(g: Tensor, y: Tensor): Tensor {
  const gd = dense(g);
  const out = empty(g.shape, 'f32', 'relu-mask');
  run(mapLaunch('reluMask', 'select(T(0), a, b > T(0))', ['f32', 'f32'], 'f32', [gd.view, y.view], g.shape, 0, 0, true), [gd, y, out]);
  freeIfCopy(gd, g);
  return out;
}

function nchw(op: string, x: Tensor): [number, number, number, number] {
  if (x.rank !== 4) throw new Error(`${op}: input [${x.shape}] must be NCHW (4-D)`);
  return x.shape as [number, number, number, number];
}
function checkChannels(op: string, x: Tensor, ts: (Tensor | null)[]): void {
  for (const t of ts) if (t && (t.rank !== 1 || t.shape[0] !== x.shape[1])) throw new Error(`${op}: per-channel tensor [${t.shape}] != [${x.shape[1]}] for input [${x.shape}]`);
}

/** Σ dy and Σ dy·x̂ per channel ([2, C]); x̂ normalised by `stats` when given, else x itself. */
function channelSums(p: ChannelPlan, gd: Tensor, xd: Tensor, stats: Tensor | null): Tensor {
  const part = empty([p.C * p.chunks * 2], 'f32', 'chan-sums-part');
  run(channelSumsPartialLaunch(p, !!stats), [gd, xd, stats ?? xd, part]);
  const sums = empty([2, p.C], 'f32', 'chan-sums');
  run(channelSumsFinalizeLaunch(p), [part, sums]);
  part.dispose();
  return sums;
}
const row = (sums: Tensor, r: number) => viewOf(sums, [sums.shape[1]], [1], r * sums.shape[1]);

// ---- batch norm (training mode) --------------------------------------------------------------

interface BnAttrs { eps: number; momentum: number; runningMean: Tensor | null; runningVar: Tensor | null; stats?: Tensor }

const batchNormTrainOp: OpDef<BnAttrs> = {
  forward: ([x, gamma, beta], a) => {
    const [N, C, H, W] = nchw('batchNorm', x);
    const xd = dense(x);
    const gd = dense(gamma);
    const bd = dense(beta);
    const p = planChannels(N, C, H * W);
    const part = empty([C * p.chunks * 4], 'f32', 'bn-part');
    run(bnStatsPartialLaunch(p), [xd, part]);
    a.stats = empty([C, 4], 'f32', 'bn-stats');
    const upd = !!(a.runningMean && a.runningVar);
    // Without running stats the kernel does not touch bindings 4/5, but they must not alias.
    const dummies = upd ? [] : [empty([1], 'f32', 'bn-no-rm'), empty([1], 'f32', 'bn-no-rv')];
    run(bnStatsFinalizeLaunch(p, a.eps, a.momentum, upd), [part, gd, bd, a.stats, a.runningMean ?? dummies[0], a.runningVar ?? dummies[1]]);
    part.dispose();
    dummies.forEach((t) => t.dispose());
    const y = empty(x.shape, 'f32', 'batchNorm');
    run(channelAffineLaunch(x.size, C, H * W, false, { off: 2, stride: 4 }, { off: 3, stride: 4 }), [xd, a.stats, a.stats, y]);
    freeIfCopy(xd, x);
    freeIfCopy(gd, gamma);
    freeIfCopy(bd, beta);
    return y;
  },
  save: ([x, gamma], _out, a) => [x, gamma, a.stats!],
  backward: (g, [x, gamma, stats], _a, [mx]) => {
    const [N, C, H, W] = mx.shape;
    const p = planChannels(N, C, H * W);
    const gd = dense(g);
    const xd = dense(x);
    const gm = dense(gamma);
    const sums = channelSums(p, gd, xd, stats);
    const dx = empty(mx.shape, 'f32', 'batchNorm-dx');
    run(bnBackwardLaunch(dx.size, p), [gd, xd, stats, gm, sums, dx]);
    const out = [dx, row(sums, 1), row(sums, 0)];
    freeIfCopy(gd, g);
    freeIfCopy(xd, x);
    freeIfCopy(gm, gamma);
    sums.dispose();
    return out;
  },
};

// ---- per-channel affine (eval BN, frozen BN) -----------------------------------------------------

interface AffineAttrs { relu: boolean }

const channelAffineOp: OpDef<AffineAttrs> = {
  forward: ([x, scale, shift], { relu }) => {
    const [, C, H, W] = nchw('channelAffine', x);
    const xd = dense(x);
    const sd = dense(scale);
    const td = dense(shift);
    const y = empty(x.shape, 'f32', 'channelAffine');
    run(channelAffineLaunch(x.size, C, H * W, relu, { off: 0, stride: 1 }, { off: 0, stride: 1 }), [xd, sd, td, y]);
    freeIfCopy(xd, x);
    freeIfCopy(sd, scale);
    freeIfCopy(td, shift);
    return y;
  },
  save: ([x, scale], out, { relu }) => (relu ? [x, scale, out] : [x, scale]),
  backward: (g, [x, scale, y], { relu }, [mx, ms, mt]) => {
    const [N, C, H, W] = mx.shape;
    const gm = relu ? reluMask(g, y) : dense(g);
    const sd = dense(scale);
    let dx: Tensor | null = null;
    if (mx.requiresGrad) {
      dx = empty(mx.shape, 'f32', 'channelAffine-dx');
      const zero = full([1], 0);
      run(channelAffineLaunch(dx.size, C, H * W, false, { off: 0, stride: 1 }, { off: 0, stride: 0 }), [gm, sd, zero, dx]);
      zero.dispose();
    }
    let sums: Tensor | null = null;
    if (ms.requiresGrad || mt.requiresGrad) {
      const xd = dense(x);
      sums = channelSums(planChannels(N, C, H * W), gm, xd, null);
      freeIfCopy(xd, x);
    }
    const out = [dx, sums && ms.requiresGrad ? row(sums, 1) : null, sums && mt.requiresGrad ? row(sums, 0) : null];
    sums?.dispose();
    freeIfCopy(sd, scale);
    if (gm !== g) gm.dispose();
    return out;
  },
};

// ---- group norm -------------------------------------------------------------------------------

interface GnAttrs { G: number; eps: number; relu: boolean; rowStats?: Tensor }

/** The plan the op takes on this device: interleaved partial walks and 16k threads on GPUs, contiguous blocks and 1k threads on CPUs. */
export function groupNormPlan(shape: number[], G: number): GroupNormPlan {
  const cpu = runtime().dev.isCpu;
  return planGroupNorm(shape[0], shape[1], numel(shape.slice(2)), G, cpu ? TARGET_THREADS_CPU : TARGET_THREADS_GPU, cpu);
}

/** Forward under plan p: y and RowStats [N·C, 4] (what backward needs besides x and γ). x, γ, β dense. */
export function groupNormRaw(p: GroupNormPlan, x: Tensor, gamma: Tensor, beta: Tensor, eps: number, relu: boolean): { y: Tensor; rowStats: Tensor } {
  const y = empty(x.shape, 'f32', 'groupNorm');
  const rowStats = empty([p.N * p.C, 4], 'f32', 'gn-row-stats');
  if (x.size === 0) return { y, rowStats };
  const part = empty([p.N * p.G * p.statsP, 4], 'f32', 'gn-part');
  run(gnStatsPartialLaunch(p), [x, part]);
  run(gnStatsFinalLaunch(p, eps), [x, part, gamma, beta, rowStats]);
  run(gnNormalizeLaunch(p, relu), [x, rowStats, y]);
  part.dispose();
  return { y, rowStats };
}

/** Backward under plan p: [dx, dγ, dβ], each only when asked for. g, x, γ dense. */
export function groupNormBackwardRaw(p: GroupNormPlan, g: Tensor, x: Tensor, gamma: Tensor, rowStats: Tensor, relu: boolean, want: [boolean, boolean, boolean]): (Tensor | null)[] {
  if (x.size === 0) return [want[0] ? empty(x.shape, 'f32', 'groupNorm-dx') : null, want[1] ? full([p.C], 0) : null, want[2] ? full([p.C], 0) : null];
  const part = empty([p.N * p.C * p.rowsP, 2], 'f32', 'gn-bwd-part');
  run(gnBwdPartialLaunch(p, relu), [g, x, rowStats, part]);
  const rowSums = empty([p.N * p.C, 2], 'f32', 'gn-row-sums');
  const coef = empty([p.N * p.G, 2], 'f32', 'gn-coef');
  run(gnBwdGroupLaunch(p), [part, gamma, rowStats, rowSums, coef]);
  let dx: Tensor | null = null;
  if (want[0]) {
    dx = empty(x.shape, 'f32', 'groupNorm-dx');
    run(gnBwdDxLaunch(p, relu), [g, x, rowStats, coef, dx]);
  }
  const sums = want[1] || want[2] ? empty([2, p.C], 'f32', 'gn-sums') : null;
  if (sums) run(gnBwdChannelLaunch(p), [rowSums, sums]);
  const out = [dx, sums && want[1] ? row(sums, 1) : null, sums && want[2] ? row(sums, 0) : null];
  for (const t of [part, rowSums, coef]) t.dispose();
  sums?.dispose();
  return out;
}

const groupNormOp: OpDef<GnAttrs> = {
  forward: ([x, gamma, beta], a) => {
    const [xd, gd, bd] = [dense(x), dense(gamma), dense(beta)];
    const { y, rowStats } = groupNormRaw(groupNormPlan(x.shape, a.G), xd, gd, bd, a.eps, a.relu);
    a.rowStats = rowStats;
    freeIfCopy(xd, x);
    freeIfCopy(gd, gamma);
    freeIfCopy(bd, beta);
    return y;
  },
  save: ([x, gamma], _out, a) => [x, gamma, a.rowStats!],
  backward: (g, [x, gamma, rowStats], a, [mx, mg, mb]) => {
    const [gd, xd, gm] = [dense(g), dense(x), dense(gamma)];
    const out = groupNormBackwardRaw(groupNormPlan(mx.shape, a.G), gd, xd, gm, rowStats, a.relu, [mx.requiresGrad, mg.requiresGrad, mb.requiresGrad]);
    freeIfCopy(gd, g);
    freeIfCopy(xd, x);
    freeIfCopy(gm, gamma);
    return out;
  },
};

export interface GroupNormOpts { eps?: number; relu?: boolean }

/**
 * torch F.group_norm: x [N, C, *] (rank 2-5), numGroups | C; per (n, group) mean and biased
 * variance over the group's C/G channels and all positions; weight/bias [C] or null (1 / 0).
 * `relu: true` fuses the ReLU of conv → GN → ReLU into the same kernels (forward and backward).
 */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, opts: GroupNormOpts = {}): Tensor {
  if (x.rank < 2 || x.rank > 5) throw new Error(`groupNorm: input [${x.shape}] must have rank 2-5 (N, C, *)`);
  const C = x.shape[1];
  if (!Number.isInteger(numGroups) || numGroups < 1 || C % numGroups !== 0) throw new Error(`groupNorm: numGroups ${numGroups} must divide the ${C} channels of input [${x.shape}]`);
  checkChannels('groupNorm', x, [weight, bias]);
  const gamma = weight ?? full([C], 1);
  const beta = bias ?? full([C], 0);
  const relu = !!opts.relu;
  const a: GnAttrs = { G: numGroups, eps: opts.eps ?? 1e-5, relu };
  const y = apply(relu ? 'groupNormRelu' : 'groupNorm', groupNormOp, [x, gamma, beta], a);
  a.rowStats?.dispose(); // the graph holds its own reference when recording
  if (!weight) gamma.dispose();
  if (!bias) beta.dispose();
  return y;
}

export const normOps = {
  batchNormTrain: batchNormTrainOp,
  channelAffine: channelAffineOp,
  groupNorm: groupNormOp,
} satisfies Record<string, OpDef>;

/** y = x·scale[c] + shift[c] (+ReLU), x: [N,C,H,W], scale/shift: [C]. */
export function channelAffine(x: Tensor, scale: Tensor, shift: Tensor, relu = false): Tensor {
  nchw('channelAffine', x);
  checkChannels('channelAffine', x, [scale, shift]);
  return apply(relu ? 'channelAffineRelu' : 'channelAffine', channelAffineOp, [x, scale, shift], { relu });
}

export interface BatchNormOpts { training: boolean; momentum?: number; eps?: number }

/**
 * torch F.batch_norm over NCHW. Training: batch statistics (biased var normalises), running stats
 * updated in place on the GPU: r ← (1−momentum)·r + momentum·batch (unbiased var). Eval: running
 * stats, as a per-channel affine.
 */
export function batchNorm(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNormOpts): Tensor {
  nchw('batchNorm', x);
  checkChannels('batchNorm', x, [gamma, beta, runningMean, runningVar]);
  const eps = opts.eps ?? 1e-5;
  if (opts.training) {
    if (x.shape[0] * x.shape[2] * x.shape[3] < 2) throw new Error(`batchNorm: training needs more than 1 value per channel, got input [${x.shape}]`);
    const a: BnAttrs = { eps, momentum: opts.momentum ?? 0.1, runningMean, runningVar };
    const y = apply('batchNorm', batchNormTrainOp, [x, gamma, beta], a);
    a.stats?.dispose(); // the graph holds its own reference when recording
    return y;
  }
  if (!runningMean || !runningVar) throw new Error('batchNorm: eval mode needs running stats');
  const scale = mul(gamma, rsqrt(add(runningVar, eps)));
  return channelAffine(x, scale, sub(beta, mul(runningMean, scale)));
}

/**
 * torchvision FrozenBatchNorm2d: scale = w·rsqrt(rv + eps), shift = b − rm·scale, all buffers (no
 * grads but to x). torchvision's COCO (legacy) weights need eps = 0 (vision#2933).
 */
export function frozenBatchNorm(x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-5, relu = false): Tensor {
  checkChannels('frozenBatchNorm', x, [weight, bias, runningMean, runningVar]);
  const [scale, shift] = noGrad(() => {
    const s = mul(weight, rsqrt(add(runningVar, eps)));
    return [s, sub(bias, mul(runningMean, s))];
  });
  const y = channelAffine(x, scale, shift, relu);
  scale.dispose();
  shift.dispose();
  return y;
}

// ---- pooling -----------------------------------------------------------------------------------

import { adaptiveAvgPoolLaunch, avgPoolBackwardLaunch, avgPoolLaunch, maxPoolBackwardLaunch, maxPoolLaunch, poolOutSize, type PoolGeom } from '../kernels/pool.ts';
import { resampleLaunch, type ResampleMode } from '../kernels/resample.ts';

type P2 = number | [number, number];
const p2 = (v: P2): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface PoolOpts { kernel: P2; stride?: P2; padding?: P2; ceilMode?: boolean; countIncludePad?: boolean }

function poolGeom(op: string, shape: number[], o: PoolOpts): PoolGeom {
  const [N, C, H, W] = shape;
  const [kH, kW] = p2(o.kernel);
  const [sH, sW] = p2(o.stride ?? o.kernel);
  const [pH, pW] = p2(o.padding ?? 0);
  if (2 * pH > kH || 2 * pW > kW) throw new Error(`${op}: padding [${pH}, ${pW}] must be <= half the kernel [${kH}, ${kW}]`);
  const Ho = poolOutSize(H, kH, sH, pH, !!o.ceilMode);
  const Wo = poolOutSize(W, kW, sW, pW, !!o.ceilMode);
  if (Ho <= 0 || Wo <= 0) throw new Error(`${op}: output ${Ho}x${Wo} is empty for input [${shape}]`);
  return { planes: N * C, H, W, Ho, Wo, kH, kW, sH, sW, pH, pW };
}

interface PoolAttrs { geom: PoolGeom; includePad: boolean; arg?: Tensor }

const maxPoolOp: OpDef<PoolAttrs> = {
  forward: ([x], a) => {
    const g = a.geom;
    const xd = dense(x);
    const y = empty([x.shape[0], x.shape[1], g.Ho, g.Wo], 'f32', 'maxPool2d');
    a.arg = empty(y.shape, 'i32', 'maxPool2d-argmax');
    run(maxPoolLaunch(g), [xd, y, a.arg]);
    freeIfCopy(xd, x);
    return y;
  },
  save: (_x, _out, a) => [a.arg!],
  backward: (g, [arg], a, [mx]) => {
    const gd = dense(g);
    const dx = empty(mx.shape, 'f32', 'maxPool2d-dx');
    run(maxPoolBackwardLaunch(a.geom), [gd, arg, dx]);
    freeIfCopy(gd, g);
    return [dx];
  },
};

const avgPoolOp: OpDef<PoolAttrs> = {
  forward: ([x], a) => {
    const g = a.geom;
    const xd = dense(x);
    const y = empty([x.shape[0], x.shape[1], g.Ho, g.Wo], 'f32', 'avgPool2d');
    run(avgPoolLaunch(g, a.includePad), [xd, y]);
    freeIfCopy(xd, x);
    return y;
  },
  backward: (g, _s, a, [mx]) => {
    const gd = dense(g);
    const dx = empty(mx.shape, 'f32', 'avgPool2d-dx');
    run(avgPoolBackwardLaunch(a.geom, a.includePad), [gd, dx]);
    freeIfCopy(gd, g);
    return [dx];
  },
};

interface SizeAttrs { Ho: number; Wo: number; mode?: ResampleMode }

const adaptiveAvgPoolOp: OpDef<SizeAttrs> = {
  forward: ([x], { Ho, Wo }) => {
    const [N, C, H, W] = x.shape;
    const xd = dense(x);
    const y = empty([N, C, Ho, Wo], 'f32', 'adaptiveAvgPool2d');
    run(adaptiveAvgPoolLaunch(N * C, H, W, Ho, Wo, false), [xd, y]);
    freeIfCopy(xd, x);
    return y;
  },
  backward: (g, _s, { Ho, Wo }, [mx]) => {
    const [N, C, H, W] = mx.shape;
    const gd = dense(g);
    const dx = empty(mx.shape, 'f32', 'adaptiveAvgPool2d-dx');
    run(adaptiveAvgPoolLaunch(N * C, H, W, Ho, Wo, true), [gd, dx]);
    freeIfCopy(gd, g);
    return [dx];
  },
};

const resampleOp: OpDef<SizeAttrs> = {
  forward: ([x], { Ho, Wo, mode }) => {
    const [N, C, H, W] = x.shape;
    const xd = dense(x);
    const y = empty([N, C, Ho, Wo], 'f32', `upsample-${mode}`);
    run(resampleLaunch(mode!, N * C, H, W, Ho, Wo, false), [xd, y]);
    freeIfCopy(xd, x);
    return y;
  },
  backward: (g, _s, { Ho, Wo, mode }, [mx]) => {
    const [N, C, H, W] = mx.shape;
    const gd = dense(g);
    const dx = empty(mx.shape, 'f32', `upsample-${mode}-dx`);
    run(resampleLaunch(mode!, N * C, H, W, Ho, Wo, true), [gd, dx]);
    freeIfCopy(gd, g);
    return [dx];
  },
};

export const poolOps = {
  maxPool2d: maxPoolOp,
  avgPool2d: avgPoolOp,
  adaptiveAvgPool2d: adaptiveAvgPoolOp,
  resample: resampleOp,
} satisfies Record<string, OpDef>;

/** torch F.max_pool2d (dilation 1); the argmax is kept for backward only. */
export function maxPool2d(x: Tensor, o: PoolOpts): Tensor {
  nchw('maxPool2d', x);
  const a: PoolAttrs = { geom: poolGeom('maxPool2d', x.shape, o), includePad: false };
  const y = apply('maxPool2d', maxPoolOp, [x], a);
  a.arg?.dispose();
  return y;
}

/** torch F.avg_pool2d; countIncludePad defaults to true as torch. */
export function avgPool2d(x: Tensor, o: PoolOpts): Tensor {
  nchw('avgPool2d', x);
  return apply('avgPool2d', avgPoolOp, [x], { geom: poolGeom('avgPool2d', x.shape, o), includePad: o.countIncludePad ?? true });
}

/** torch F.adaptive_avg_pool2d to [Ho, Wo]. */
export function adaptiveAvgPool2d(x: Tensor, size: P2): Tensor {
  nchw('adaptiveAvgPool2d', x);
  const [Ho, Wo] = p2(size);
  return apply('adaptiveAvgPool2d', adaptiveAvgPoolOp, [x], { Ho, Wo });
}

/** Mean over H, W keeping [N, C, 1, 1]. */
export const globalAvgPool2d = (x: Tensor) => adaptiveAvgPool2d(x, 1);

/** Output size from an explicit size or an integer scale factor. */
function outSize(op: string, x: Tensor, size: P2 | null, scale: number | null): [number, number] {
  nchw(op, x);
  if (size !== null) return p2(size);
  if (scale === null) throw new Error(`${op}: give a size or a scale factor`);
  return [Math.floor(x.shape[2] * scale), Math.floor(x.shape[3] * scale)];
}

/** torch F.interpolate(mode='nearest') to `size` (FPN top-down) or by `scale` (×2). */
export function upsampleNearest(x: Tensor, size: P2 | null, scale: number | null = null): Tensor {
  const [Ho, Wo] = outSize('upsampleNearest', x, size, scale);
  return apply('upsampleNearest', resampleOp, [x], { Ho, Wo, mode: 'nearest' });
}

/** torch F.interpolate(mode='bilinear', align_corners) to `size` or by `scale`. */
export function upsampleBilinear(x: Tensor, size: P2 | null, scale: number | null = null, alignCorners = false): Tensor {
  const [Ho, Wo] = outSize('upsampleBilinear', x, size, scale);
  return apply('upsampleBilinear', resampleOp, [x], { Ho, Wo, mode: alignCorners ? 'bilinearAligned' : 'bilinear' });
}

// ---- fused residual epilogue ---------------------------------------------------------------------

const addReluOp: OpDef<{}> = {
  forward: ([a, b]) => {
    if (a.shape.join() !== b.shape.join()) throw new Error(`addRelu: shapes differ [${a.shape}] vs [${b.shape}]`);
    const out = empty(a.shape, 'f32', 'addRelu');
    run(mapLaunch('addRelu', 'max(a + b, T(0))', ['f32', 'f32'], 'f32', [a.view, b.view], a.shape, 0, 0, true), [a, b, out]);
    return out;
  },
  save: (_i, out) => [out],
  backward: (g, [y]) => {
    const m = reluMask(g, y);
    return [m, m];
  },
};

/** relu(a + b) in one pass: the bottleneck's residual join. */
export const addRelu = (a: Tensor, b: Tensor) => apply('addRelu', addReluOp, [a, b], {});
export const epilogueOps = { addRelu: addReluOp } satisfies Record<string, OpDef>;
