// Conv op rows (kernels in ../kernels/conv.ts), the aggregate convOps table (with the norm, pool
// and resample rows of ./ops-norm.ts) and the functional API. All tensors NCHW.
import { apply, type OpDef } from './autograd.ts';
import { empty, Tensor, viewOf } from './tensor.ts';
import { runtime } from './runtime.ts';
import { add, assignInto, reshape, run, sum, zeros } from './ops.ts';
import { type ConvGeom, convForwardLaunch, convForwardV4Launch, convWeightGradV4Launch, convOutSize, convWeightGradLaunch, convWeightGradReduceLaunch, planWeightGrad, type SplitPlan } from '../kernels/conv.ts';
import { convInputGradPhaseLaunch, convPhases } from '../kernels/conv-grad.ts';
import { canVec4, matmulVec4Launch, type MatmulDims, vec4Tile } from '../kernels/matmul.ts';
import { epilogueOps, normOps, poolOps, reluMask } from './ops-norm.ts';
import { dense, freeIfCopy } from './ops.ts';

export type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface ConvOpts {
  stride?: Pair;
  /** Symmetric [h, w] (or one number), or asymmetric [top, bottom, left, right]. */
  padding?: Pair | [number, number, number, number];
  dilation?: Pair;
  groups?: number;
}

interface ConvAttrs { stride: [number, number]; pad: [number, number, number, number]; dil: [number, number]; groups: number; relu: boolean }

function convAttrs(o: ConvOpts, relu = false): ConvAttrs {
  const p = o.padding ?? 0;
  const pad: [number, number, number, number] = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[0], p[1], p[1]] : p;
  return { stride: pair(o.stride ?? 1), pad, dil: pair(o.dilation ?? 1), groups: o.groups ?? 1, relu };
}

/** Geometry of conv(x: [N,Cin,H,W], w: [Cout,Cin/G,KH,KW]) with validation naming the op and shapes. */
export function convGeom(op: string, xShape: number[], wShape: number[], a: ConvAttrs): ConvGeom {
  if (xShape.length !== 4 || wShape.length !== 4) throw new Error(`${op}: input [${xShape}] and weight [${wShape}] must be 4-D (NCHW, OIHW)`);
  const [N, Cin, H, W] = xShape;
  const [Cout, Cig, KH, KW] = wShape;
  const G = a.groups;
  if (Cin % G || Cout % G) throw new Error(`${op}: channels in ${Cin} / out ${Cout} not divisible by groups ${G}`);
  if (Cig !== Cin / G) throw new Error(`${op}: input channels ${Cin} / groups ${G} != weight channels ${Cig} (weight [${wShape}])`);
  const Ho = convOutSize(H, KH, a.stride[0], a.pad[0], a.pad[1], a.dil[0]);
  const Wo = convOutSize(W, KW, a.stride[1], a.pad[2], a.pad[3], a.dil[1]);
  if (Ho <= 0 || Wo <= 0) throw new Error(`${op}: output ${Ho}x${Wo} is empty for input [${xShape}], kernel ${KH}x${KW}, padding [${a.pad}], dilation [${a.dil}]`);
  return { N, Cin, H, W, Cout, KH, KW, strideH: a.stride[0], strideW: a.stride[1], padT: a.pad[0], padL: a.pad[2], dilH: a.dil[0], dilW: a.dil[1], groups: G, Ho, Wo };
}

// ---- raw kernels on tensors (no autograd) -------------------------------------------------------

/** w [Cout, Cin/G, KH, KW] (= [G, Cog, Kred]) → [G, Kred, Cog] contiguous, for the vec4 kernels. */
function weightPerGroupT(g: ConvGeom, w: Tensor): Tensor {
  const Cog = g.Cout / g.groups;
  const Kred = (g.Cin / g.groups) * g.KH * g.KW;
  const t = empty([g.groups, Kred, Cog], 'f32', 'conv-wT');
  const src = viewOf(w, [g.groups, Kred, Cog], [Cog * w.strides[0], w.strides[3], w.strides[0]], w.offset);
  if (!w.isContiguous) throw new Error('conv2d: internal: weight must be dense here');
  assignInto(t, src);
  src.dispose();
  return t;
}

/**
 * A 1×1, stride-1, unpadded, ungrouped conv is per image a GEMM over channels:
 *   forward Y[n] = W · X[n] ([Cout, Cin]·[Cin, H·W]), input grad dX[n] = Wᵀ · dY[n].
 * Runs on matmul-v4 over strided views (weight rows workgroup-uniform, pixels as vec4 lanes, so
 * the NCHW output is written as contiguous vec4 rows) when the pixel count and offset allow vec4.
 */
function conv1x1Dims(g: ConvGeom, transposeW: boolean, bOffset: number): MatmulDims | null {
  if (process.env.MRCNN_CONV1X1_IMPLICIT || g.KH !== 1 || g.KW !== 1 || g.strideH !== 1 || g.strideW !== 1 || g.padT || g.padL || g.groups !== 1 || g.Ho !== g.H || g.Wo !== g.W) return null;
  const hw = g.H * g.W;
  const [M, K] = transposeW ? [g.Cin, g.Cout] : [g.Cout, g.Cin];
  const d: MatmulDims = {
    batch: g.N, M, N: hw, K,
    aStrides: [0, transposeW ? 1 : g.Cin, transposeW ? g.Cin : 1], aOffset: 0,
    bStrides: [K * hw, hw, 1], bOffset,
  };
  return canVec4(d) && M >= 16 ? d : null;
}
const mm1x1 = (d: MatmulDims) => matmulVec4Launch(d, false, 0, vec4Tile(d.M, runtime().dev.subgroups8));

const useV4 = (cols: number) => cols % 4 === 0 && !process.env.MRCNN_CONV_SCALAR;

export function convForwardRaw(g: ConvGeom, x: Tensor, w: Tensor, b: Tensor | null, relu = false): Tensor {
  const xd = x.isContiguous ? x : dense(x);
  const wd = dense(w);
  const bd = b ? dense(b) : null;
  const y = empty([g.N, g.Cout, g.Ho, g.Wo], 'f32', 'conv2d');
  const mm = !bd && !relu ? conv1x1Dims(g, false, xd.offset) : null;
  if (mm) {
    run(mm1x1(mm), [wd, xd, y]);
  } else if (useV4(g.Cout / g.groups)) {
    const wt = weightPerGroupT(g, wd);
    run(convForwardV4Launch(g, { bias: !!bd, relu }, xd.offset, runtime().dev.subgroups8), bd ? [xd, wt, bd, y] : [xd, wt, y]);
    wt.dispose();
  } else {
    run(convForwardLaunch(g, { bias: !!bd, relu }, xd.offset), bd ? [xd, wd, bd, y] : [xd, wd, y]);
  }
  freeIfCopy(xd, x);
  freeIfCopy(wd, w);
  if (bd && b) freeIfCopy(bd, b);
  return y;
}

/** dX [N,Cin,H,W] from dY [N,Cout,Ho,Wo] (also convTranspose2d's forward). */
export function convInputGradRaw(g: ConvGeom, gy: Tensor, w: Tensor): Tensor {
  const gd = gy.isContiguous ? gy : dense(gy);
  const wd = dense(w);
  const dx = empty([g.N, g.Cin, g.H, g.W], 'f32', 'conv2d-dx');
  const mm = conv1x1Dims(g, true, gd.offset);
  if (mm) {
    run(mm1x1(mm), [wd, gd, dx]);
    freeIfCopy(gd, gy);
    freeIfCopy(wd, w);
    return dx;
  }
  const Cig = g.Cin / g.groups;
  // [G, Cog, Cig, KH·KW] → [G, KH·KW, Cog, Cig4·4]: taps outermost (one uniform branch per tap
  // and phase), input channels innermost for vec4 loads, zero-padded to a multiple of 4.
  const khw = g.KH * g.KW;
  const Cog = g.Cout / g.groups;
  const Cp = Math.ceil(Cig / 4) * 4;
  const wp = Cp === Cig ? empty([g.groups, khw, Cog, Cp], 'f32', 'conv-wP') : zeros([g.groups, khw, Cog, Cp]);
  const src = viewOf(wd, [g.groups, khw, Cog, Cig], [Cog * Cig * khw, 1, Cig * khw, khw], 0);
  const dst = viewOf(wp, [g.groups, khw, Cog, Cig], [khw * Cog * Cp, Cog * Cp, Cp, 1], 0);
  assignInto(dst, src);
  src.dispose();
  dst.dispose();
  for (const p of convPhases(g)) run(convInputGradPhaseLaunch(g, p, gd.offset), [gd, wp, dx]);
  wp.dispose();
  freeIfCopy(gd, gy);
  freeIfCopy(wd, w);
  return dx;
}

/** dW [Cout,Cin/G,KH,KW] = split-K GEMM over N·Ho·Wo, deterministic two-pass. */
export function convWeightGradRaw(g: ConvGeom, x: Tensor, gy: Tensor, plan: SplitPlan = planWeightGrad(g)): Tensor {
  const xd = x.isContiguous ? x : dense(x);
  const gd = dense(gy);
  const dw = empty([g.Cout, g.Cin / g.groups, g.KH, g.KW], 'f32', 'conv2d-dw');
  let l = convWeightGradLaunch(g, plan, xd.offset);
  let gArg = gd;
  if (useV4(g.Cout / g.groups) && g.Cout % 4 === 0) {
    // dY channels-last [N, Ho·Wo, Cout] so lanes read output channels as vec4.
    const hw = g.Ho * g.Wo;
    gArg = empty([g.N, hw, g.Cout], 'f32', 'conv-dYt');
    const src = viewOf(gd, [g.N, hw, g.Cout], [g.Cout * hw, 1, hw], gd.offset);
    assignInto(gArg, src);
    src.dispose();
    l = convWeightGradV4Launch(g, plan, xd.offset, runtime().dev.subgroups8);
  }
  if (plan.splits === 1) {
    run(l, [xd, gArg, dw]);
  } else {
    const part = empty([plan.splits * dw.size], 'f32', 'conv2d-dw-partials');
    run(l, [xd, gArg, part]);
    run(convWeightGradReduceLaunch(g, plan), [part, dw]);
    part.dispose();
  }
  freeIfCopy(xd, x);
  freeIfCopy(gd, gy);
  if (gArg !== gd) gArg.dispose();
  return dw;
}

// ---- op rows -------------------------------------------------------------------------------------

const conv2dOp: OpDef<ConvAttrs> = {
  forward: ([x, w, b], a) => convForwardRaw(convGeom('conv2d', x.shape, w.shape, a), x, w, b ?? null, a.relu),
  save: ([x, w], out, a) => (a.relu ? [x, w, out] : [x, w]),
  backward: (g, [x, w, y], a, [mx, mw, mb]) => {
    const geo = convGeom('conv2d', mx.shape, mw.shape, a);
    const gy = a.relu ? reluMask(g, y) : g;
    return [
      mx.requiresGrad ? convInputGradRaw(geo, gy, w) : null,
      mw.requiresGrad ? convWeightGradRaw(geo, x, gy) : null,
      mb?.requiresGrad ? sum(gy, [0, 2, 3]) : null,
    ];
  },
};

interface ConvTAttrs extends ConvAttrs { outPad: [number, number] }

/** The conv whose input-grad is this transposed conv: conv input = our output. */
function convTGeom(xShape: number[], wShape: number[], a: ConvTAttrs): ConvGeom {
  if (xShape.length !== 4 || wShape.length !== 4) throw new Error(`convTranspose2d: input [${xShape}] and weight [${wShape}] must be 4-D`);
  const [N, Cin, H, W] = xShape;
  const [wi, cog, KH, KW] = wShape;
  if (wi !== Cin) throw new Error(`convTranspose2d: input channels ${Cin} != weight dim 0 ${wi} (weight [${wShape}] is [Cin, Cout/groups, KH, KW])`);
  if (Cin % a.groups) throw new Error(`convTranspose2d: input channels ${Cin} not divisible by groups ${a.groups}`);
  const Hout = (H - 1) * a.stride[0] - a.pad[0] - a.pad[1] + a.dil[0] * (KH - 1) + a.outPad[0] + 1;
  const Wout = (W - 1) * a.stride[1] - a.pad[2] - a.pad[3] + a.dil[1] * (KW - 1) + a.outPad[1] + 1;
  if (a.outPad[0] >= Math.max(a.stride[0], a.dil[0]) || a.outPad[1] >= Math.max(a.stride[1], a.dil[1])) {
    throw new Error(`convTranspose2d: output_padding [${a.outPad}] must be < stride or dilation`);
  }
  // The conv of this geometry maps [N, Cout, Hout, Wout] → [N, Cin, H, W]: output_padding < stride
  // only adds rows that the floor in the conv's output size drops again.
  const g = convGeom('convTranspose2d', [N, cog * a.groups, Hout, Wout], [Cin, cog, KH, KW], a);
  if (g.Ho !== H || g.Wo !== W) throw new Error(`convTranspose2d: internal: geometry [${g.Ho}, ${g.Wo}] != input [${H}, ${W}]`);
  return g;
}

const convTranspose2dOp: OpDef<ConvTAttrs> = {
  forward: ([x, w], a) => convInputGradRaw(convTGeom(x.shape, w.shape, a), x, w),
  save: ([x, w]) => [x, w],
  backward: (g, [x, w], a, [mx, mw]) => {
    const geo = convTGeom(mx.shape, mw.shape, a);
    return [mx.requiresGrad ? convForwardRaw(geo, g, w, null) : null, mw.requiresGrad ? convWeightGradRaw(geo, g, x) : null];
  },
};

export const convOps = {
  conv2d: conv2dOp,
  convTranspose2d: convTranspose2dOp,
  ...normOps,
  ...poolOps,
  ...epilogueOps,
} satisfies Record<string, OpDef>;

// ---- functional API -------------------------------------------------------------------------------

/** x: [N,Cin,H,W], w: [Cout,Cin/groups,KH,KW], b: [Cout] → [N,Cout,Ho,Wo] (torch F.conv2d). */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: ConvOpts = {}): Tensor {
  return apply('conv2d', conv2dOp, b ? [x, w, b] : [x, w], convAttrs(opts));
}

/** conv2d + bias + ReLU in one kernel epilogue. */
export function conv2dRelu(x: Tensor, w: Tensor, b: Tensor | null = null, opts: ConvOpts = {}): Tensor {
  return apply('conv2dRelu', conv2dOp, b ? [x, w, b] : [x, w], convAttrs(opts, true));
}

export interface ConvTOpts extends ConvOpts { outputPadding?: Pair }

/** x: [N,Cin,H,W], w: [Cin,Cout/groups,KH,KW] → [N,Cout,(H−1)s−2p+d(K−1)+outPad+1, ...] (torch F.conv_transpose2d). */
export function convTranspose2d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: ConvTOpts = {}): Tensor {
  const y = apply('convTranspose2d', convTranspose2dOp, [x, w], { ...convAttrs(opts), outPad: pair(opts.outputPadding ?? 0) });
  return b ? addChannel(y, b) : y;
}

/** y + b[c] broadcast over N, H, W. */
export function addChannel(y: Tensor, b: Tensor): Tensor {
  return add(y, reshape(b, [1, b.shape[0], 1, 1]));
}

export * from './ops-norm.ts';
