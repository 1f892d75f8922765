// Detection ops over tensors: RoI Align / multi-level RoI Align / RoI Pool / RoI crop
// (differentiable into features), argsort / top-k, NMS, anchors, mask paste; box ops, matcher and
// sampler are in ops-match.ts (re-exported here).
// Everything stays on the GPU: counts (NMS kept, compaction) are i32 tensors, never host numbers,
// so none of these ops moves runtime().stats.hostSyncs. Semantics: torchvision 0.14
// (../shared/reference/torchvision-mask-rcnn.md §1.2, §1.6) and the seed (seed-mask-rcnn-pytorch.md §3).
import { apply, type OpDef } from './autograd.ts';
import { empty, fromArray, Tensor } from './tensor.ts';
import { dense as c, freeIfCopy as done, full, run, zeros } from './ops.ts';
import { runtime } from './runtime.ts';
import { cdiv } from '../kernels/common.ts';
import { roiCropLaunch, roiPoolBackwardLaunch, roiPoolLaunch } from '../kernels/roi.ts';
import { multiLevelRoiAlignLaunch, roiAlignLaunch, type RoiAlignParams } from '../kernels/roi-align.ts';
import { alignGatherBwdLaunch, alignTileListsLaunch, alignTileListWords, type AlignBwdParams } from '../kernels/roi-align-bwd.ts';
import { nextPow2, sortExtractLaunch, sortInitLaunch, sortMergeRunsPasses, sortPasses, sortPruneLaunch, sortRunsPasses } from '../kernels/sort.ts';
import { nmsChunkRows, nmsChunks, nmsGatherLaunch, nmsGreedyLaunch, nmsMaskLaunch, nmsSplitLaunch } from '../kernels/nms.ts';
import { anchorGridLaunch, pyFasterBaseAnchors, torchvisionBaseAnchors } from '../kernels/boxes.ts';
import { pasteLaunch, pasteSetupLaunch, pasteWordsPerRow } from '../kernels/paste.ts';
import { checkBoxes } from './ops-match.ts';

// box ops, matcher, sampler and compaction live in ops-match.ts
export * from './ops-match.ts';

function checkFeatRois(op: string, x: Tensor, rois: Tensor): void {
  if (x.rank !== 4 || x.dtype !== 'f32') throw new Error(`${op}: features must be f32 [N, C, H, W], got ${x.dtype} [${x.shape}]`);
  if (rois.rank !== 2 || rois.shape[1] !== 5 || rois.dtype !== 'f32') throw new Error(`${op}: rois must be f32 [R, 5] (batch index, x1, y1, x2, y2), got ${rois.dtype} [${rois.shape}]`);
}

// torchvision takes an int (<= 0: adaptive ceil(roi / out) per RoI); kernels unroll it at compile time
function checkSamplingRatio(op: string, sr: number | undefined): void {
  if (sr !== undefined && !Number.isInteger(sr)) throw new Error(`${op}: samplingRatio must be an integer (<= 0 for adaptive), got ${sr}`);
}

const size2 = (s: number | [number, number]): [number, number] => (typeof s === 'number' ? [s, s] : s);

// ---- RoI Align -------------------------------------------------------------------------------------

export interface RoiAlignOpts { outputSize: number | [number, number]; spatialScale?: number; samplingRatio?: number; aligned?: boolean }
interface AlignAttrs { PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean }

const alignParams = (x: { shape: number[] }, R: number, a: AlignAttrs): RoiAlignParams => {
  const [N, C, H, W] = x.shape;
  return { N, C, H, W, R, ...a };
};

const roiAlignOp: OpDef<AlignAttrs> = {
  forward: ([x, rois], a) => {
    const xc = c(x), rc = c(rois);
    const out = empty([rois.shape[0], x.shape[1], a.PH, a.PW], 'f32', 'roiAlign');
    run(roiAlignLaunch(alignParams(x, rois.shape[0], a)), [xc, rc, out]);
    done(xc, x); done(rc, rois);
    return out;
  },
  save: ([, rois]) => [rois],
  backward: (g, [rois], a, [mx]) => {
    const gc = c(g), rc = c(rois);
    const gx = alignGatherBackward(gc, rc, alignParams(mx, rois.shape[0], a));
    done(gc, g); done(rc, rois);
    return [gx, null];
  },
};

/** RoI Align backward as a gather over per-tile RoI lists (kernels/roi-align-bwd.ts): writes all of gx, no atomics. */
function alignGatherBackward(g: Tensor, rois: Tensor, p: AlignBwdParams): Tensor {
  const gx = empty([p.N, p.C, p.H, p.W], 'f32', 'roiAlign.grad');
  const lists = empty([alignTileListWords(p)], 'i32', 'roiAlign.tileLists');
  run(alignTileListsLaunch(p), [rois, lists]);
  run(alignGatherBwdLaunch(p), [g, rois, lists, gx]);
  lists.dispose();
  return gx;
}

/** torchvision.ops.roi_align: x [N, C, H, W], rois [R, 5] → [R, C, PH, PW]; grads flow into x only. */
export function roiAlign(x: Tensor, rois: Tensor, o: RoiAlignOpts): Tensor {
  checkFeatRois('roiAlign', x, rois);
  const [PH, PW] = size2(o.outputSize);
  checkSamplingRatio('roiAlign', o.samplingRatio);
  return apply('roiAlign', roiAlignOp, [x, rois], { PH, PW, spatialScale: o.spatialScale ?? 1, samplingRatio: o.samplingRatio ?? -1, aligned: o.aligned ?? false });
}

// ---- multi-level RoI Align (torchvision MultiScaleRoIAlign) ------------------------------------------

interface MultiAttrs { P: number; scales: number[]; samplingRatio: number; kMin: number; canonicalScale: number; canonicalLevel: number; aligned: boolean }

const mlParams = (feats: { shape: number[] }[], R: number, a: MultiAttrs) => ({
  N: feats[0].shape[0], C: feats[0].shape[1], R, P: a.P, samplingRatio: a.samplingRatio, kMin: a.kMin, canonicalScale: a.canonicalScale, canonicalLevel: a.canonicalLevel, aligned: a.aligned,
  levels: feats.map((f, l) => ({ H: f.shape[2], W: f.shape[3], scale: a.scales[l] })),
});

const multiLevelOp: OpDef<MultiAttrs> = {
  forward: (ins, a) => {
    const rois = ins[ins.length - 1];
    const fs = ins.slice(0, -1).map(c);
    const rc = c(rois);
    const out = empty([rois.shape[0], fs[0].shape[1], a.P, a.P], 'f32', 'multiScaleRoiAlign');
    run(multiLevelRoiAlignLaunch(mlParams(fs, rois.shape[0], a)), [...fs, rc, out]);
    fs.forEach((f, i) => done(f, ins[i]));
    done(rc, rois);
    return out;
  },
  save: (ins) => [ins[ins.length - 1]],
  backward: (g, [rois], a, metas) => {
    const fm = metas.slice(0, -1);
    const gc = c(g), rc = c(rois);
    // one gather per level over the RoIs its LevelMapper sends there (no host work between them)
    const gs = fm.map((m, l) => {
      const [N, C, H, W] = m.shape;
      return alignGatherBackward(gc, rc, {
        N, C, H, W, R: rois.shape[0], PH: a.P, PW: a.P, spatialScale: a.scales[l], samplingRatio: a.samplingRatio, aligned: a.aligned,
        levelOf: { level: l, levels: fm.length, kMin: a.kMin, canonicalScale: a.canonicalScale, canonicalLevel: a.canonicalLevel },
      });
    });
    done(gc, g); done(rc, rois);
    return [...gs, null];
  },
};

/** Per-level scale as torchvision's poolers infer it: 2^round(log2(featureSize / imageSize)). */
export const inferScale = (featSize: number, imageSize: number) => 2 ** Math.round(Math.log2(featSize / imageSize));

/**
 * torchvision MultiScaleRoIAlign over up to 4 FPN levels (feats [N, C, Hl, Wl], level l at
 * scales[l], l = 0 ↔ k = kMin): each RoI is pooled from the level the LevelMapper assigns, in one
 * dispatch (no per-level host work). rois [R, 5] → [R, C, P, P]. aligned=false as torchvision.
 */
/** aligned: false as torchvision's MultiScaleRoIAlign; true shifts by half a cell (Detectron2 ROIAlignV2). */
export function multiScaleRoiAlign(feats: Tensor[], rois: Tensor, o: { outputSize: number; scales: number[]; samplingRatio?: number; kMin?: number; canonicalScale?: number; canonicalLevel?: number; aligned?: boolean }): Tensor {
  checkSamplingRatio('multiScaleRoiAlign', o.samplingRatio);
  feats.forEach((f) => checkFeatRois('multiScaleRoiAlign', f, rois));
  if (o.scales.length !== feats.length) throw new Error(`multiScaleRoiAlign: ${o.scales.length} scales for ${feats.length} levels`);
  for (const f of feats) {
    if (f.shape[0] !== feats[0].shape[0] || f.shape[1] !== feats[0].shape[1]) throw new Error(`multiScaleRoiAlign: level [${f.shape}] differs from [${feats[0].shape}] in batch or channels`);
  }
  const kMin = o.kMin ?? -Math.round(Math.log2(o.scales[0]));
  return apply('multiScaleRoiAlign', multiLevelOp, [...feats, rois], {
    P: o.outputSize, scales: o.scales, samplingRatio: o.samplingRatio ?? 2, kMin, canonicalScale: o.canonicalScale ?? 224, canonicalLevel: o.canonicalLevel ?? 4, aligned: o.aligned ?? false,
  });
}

// ---- RoI Pool ------------------------------------------------------------------------------------

interface PoolAttrs { PH: number; PW: number; spatialScale: number; argmax?: Tensor }

const roiPoolOp: OpDef<PoolAttrs> = {
  forward: ([x, rois], a) => {
    const xc = c(x), rc = c(rois);
    const [N, C, H, W] = x.shape;
    const out = empty([rois.shape[0], C, a.PH, a.PW], 'f32', 'roiPool');
    a.argmax = empty(out.shape, 'i32', 'roiPool.argmax');
    run(roiPoolLaunch({ N, C, H, W, R: rois.shape[0], PH: a.PH, PW: a.PW, spatialScale: a.spatialScale }), [xc, rc, out, a.argmax]);
    done(xc, x); done(rc, rois);
    return out;
  },
  save: ([, rois], _out, a) => [rois, a.argmax!],
  backward: (g, [rois, argmax], a, [mx]) => {
    const [N, C, H, W] = mx.shape;
    const gc = c(g), rc = c(rois);
    const gx = zeros(mx.shape);
    run(roiPoolBackwardLaunch({ N, C, H, W, R: rois.shape[0], PH: a.PH, PW: a.PW, spatialScale: a.spatialScale }), [gc, rc, argmax, gx]);
    done(gc, g); done(rc, rois);
    return [gx, null];
  },
};

/** torchvision.ops.roi_pool: x [N, C, H, W], rois [R, 5] → [R, C, PH, PW] (max with argmax for backward). */
export function roiPool(x: Tensor, rois: Tensor, o: { outputSize: number | [number, number]; spatialScale?: number }): Tensor {
  checkFeatRois('roiPool', x, rois);
  const [PH, PW] = size2(o.outputSize);
  const attrs: PoolAttrs = { PH, PW, spatialScale: o.spatialScale ?? 1 };
  const out = apply('roiPool', roiPoolOp, [x, rois], attrs);
  attrs.argmax?.dispose(); // the graph holds its own view when backward needs it
  return out;
}

// ---- RoI crop (the seed) ---------------------------------------------------------------------------

interface CropAttrs { P: number; strideInPx: number; maxPool: boolean }
const cropParams = (x: { shape: number[] }, R: number, a: CropAttrs) => {
  const [N, C, H, W] = x.shape;
  return { N, C, H, W, R, ...a };
};

const roiCropOp: OpDef<CropAttrs> = {
  forward: ([x, rois], a) => {
    const xc = c(x), rc = c(rois);
    const out = empty([rois.shape[0], x.shape[1], a.P, a.P], 'f32', 'roiCrop');
    run(roiCropLaunch(cropParams(x, rois.shape[0], a), 'fwd'), [xc, rc, out]);
    done(xc, x); done(rc, rois);
    return out;
  },
  save: ([x, rois]) => [x, rois],
  backward: (g, [x, rois], a) => {
    const xc = c(x), gc = c(g), rc = c(rois);
    const gx = zeros(x.shape);
    run(roiCropLaunch(cropParams(x, rois.shape[0], a), 'bwd'), [xc, gc, rc, gx]);
    done(xc, x); done(gc, g); done(rc, rois);
    return [gx, null];
  },
};

/**
 * The seed's POOLING_MODE='crop': affine grid from each RoI (box coords / strideInPx) and a bilinear
 * sampler, on a P×P grid, or 2P×2P followed by a 2×2 max pool (CROP_RESIZE_WITH_MAX_POOL). Unlike
 * the seed it uses each RoI's batch index. x [N, C, H, W], rois [R, 5] → [R, C, P, P].
 */
export function roiCrop(x: Tensor, rois: Tensor, o: { outputSize: number; strideInPx: number; maxPool?: boolean }): Tensor {
  checkFeatRois('roiCrop', x, rois);
  if (x.shape[2] < 2 || x.shape[3] < 2) throw new Error(`roiCrop: map [${x.shape}] must be at least 2×2 (theta divides by H-1, W-1)`);
  return apply('roiCrop', roiCropOp, [x, rois], { P: o.outputSize, strideInPx: o.strideInPx, maxPool: o.maxPool ?? true });
}

// ---- sort / top-k ------------------------------------------------------------------------------------

/**
 * Descending, index-stable sort along the last dim: first k values and their indices (i32) per
 * row. x [..., n] → values/indices [..., k]. Not differentiable (use gather with the indices).
 */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  if (x.dtype !== 'f32') throw new Error(`topk: needs f32 keys, got ${x.dtype} [${x.shape}]`);
  const n = x.shape[x.rank - 1] ?? 1;
  if (k < 0 || k > n) throw new Error(`topk: k=${k} out of range for last dim ${n} of [${x.shape}]`);
  const lead = x.shape.slice(0, -1);
  const B = lead.reduce((s, v) => s * v, 1);
  const values = empty([...lead, k], 'f32', 'topk.values');
  const indices = empty([...lead, k], 'i32', 'topk.indices');
  if (B * k === 0) return { values, indices };
  const xc = c(x);
  const { K, I, P } = sortedRuns(xc, B, n, n, 0, k);
  run(sortExtractLaunch(B, P, k, 0), [K, I, values, indices]);
  K.dispose(); I.dispose(); done(xc, x);
  return { values, indices };
}

/**
 * Rows of xc (row stride, offset) sorted so that the first k of each row of the result [B, P]
 * are the row's top k in order. k << n: sort runs of nextPow2(k), then halve by bitonic prunes
 * (log n · log k passes instead of log² n).
 */
function sortedRuns(xc: Tensor, B: number, n: number, rowStride: number, offset: number, k: number): { K: Tensor; I: Tensor; P: number } {
  let P = nextPow2(n);
  let K = empty([B * P], 'f32', 'sort.K');
  let I = empty([B * P], 'u32', 'sort.I');
  run(sortInitLaunch(B, n, P, rowStride, offset), [xc, K, I]);
  const runLen = Math.max(nextPow2(k), 2);
  if (2 * runLen > P) {
    for (const l of sortPasses(B, P)) run(l, [K, I]);
    return { K, I, P };
  }
  for (const l of sortRunsPasses(B, P, runLen)) run(l, [K, I]);
  while (P > runLen) {
    const K2 = empty([(B * P) / 2], 'f32', 'sort.K');
    const I2 = empty([(B * P) / 2], 'u32', 'sort.I');
    run(sortPruneLaunch(B, P, runLen), [K, I, K2, I2]);
    K.dispose(); I.dispose();
    K = K2; I = I2; P /= 2;
    for (const l of sortMergeRunsPasses(B, P, runLen)) run(l, [K, I]);
  }
  return { K, I, P };
}

export const argsort = (x: Tensor) => topk(x, x.shape[x.rank - 1] ?? 1);

/**
 * Top-k per contiguous segment of the last dim (torchvision RPN: per image and per FPN level;
 * segment lengths are static shapes): x [B, Σ lens] → indices [B, Σ min(k, len)] into the row,
 * segment by segment, each in descending order.
 */
export function segmentedTopk(x: Tensor, segLens: number[], k: number): Tensor {
  if (x.rank !== 2 || segLens.reduce((s, v) => s + v, 0) !== x.shape[1]) throw new Error(`segmentedTopk: x [${x.shape}] must be [B, ${segLens.join('+')}]`);
  const B = x.shape[0];
  const ks = segLens.map((l) => Math.min(k, l));
  const total = ks.reduce((s, v) => s + v, 0);
  const out = empty([B, total], 'i32', 'segmentedTopk');
  const xc = c(x);
  let at = 0, outAt = 0;
  segLens.forEach((len, s) => {
    if (len > 0 && ks[s] > 0) {
      const { K, I, P } = sortedRuns(xc, B, len, x.shape[1], at, ks[s]);
      const vals = empty([B * ks[s]], 'f32', 'sort.vals');
      const idx = empty([B * ks[s]], 'i32', 'sort.idx');
      run(sortExtractLaunch(B, P, ks[s], at), [K, I, vals, idx]);
      // scatter rows [B, ks] into columns [outAt, outAt + ks) of out
      for (let b = 0; b < B; b++) runtimeCopy(idx, b * ks[s], out, b * total + outAt, ks[s]);
      [K, I, vals, idx].forEach((t) => t.dispose());
    }
    at += len;
    outAt += ks[s];
  });
  done(xc, x);
  return out;
}

function runtimeCopy(src: Tensor, srcAt: number, dst: Tensor, dstAt: number, n: number): void {
  runtime().copy(src.buffer, (src.offset + srcAt) * 4, dst.buffer, (dst.offset + dstAt) * 4, n * 4);
}

// ---- NMS -----------------------------------------------------------------------------------------------

export interface NmsOpts {
  /** Budget of the IoU bitmask per greedy chunk (default 64 MiB; tests shrink it to force many chunks). */
  maskBytes?: number;
}

export interface NmsResult {
  /** i32 [N]: kept box indices in descending-score order, then -1. */
  keep: Tensor;
  /** i32 [1]: number of kept boxes. */
  count: Tensor;
}

function nmsImpl(boxes: Tensor, scores: Tensor, iouThresh: number, cats: Tensor | null, o: NmsOpts = {}): NmsResult {
  const N = scores.shape[0];
  if (boxes.rank !== 2 || boxes.shape[1] !== 4 || boxes.shape[0] !== N || scores.rank !== 1) throw new Error(`nms: boxes [${boxes.shape}] must be [N, 4] with scores [N], got scores [${scores.shape}]`);
  if (cats && (cats.dtype !== 'i32' || cats.shape.join() !== `${N}`)) throw new Error(`batchedNms: idxs must be i32 [${N}], got ${cats.dtype} [${cats.shape}]`);
  const keep = full([N], -1, 'i32');
  const count = zeros([1], 'i32');
  if (N === 0) return { keep, count };
  const { values, indices: order } = argsort(scores);
  values.dispose();
  const bc = c(boxes), cc = cats ? c(cats) : null;
  const sb = empty([N, 4], 'f32', 'nms.sortedBoxes');
  const sc = empty([N], 'i32', 'nms.sortedCats');
  run(nmsGatherLaunch(N, !!cc), [bc, cc ?? order, order, sb, sc]);
  const words = cdiv(N, 32);
  const remv = zeros([words], 'u32');
  const mask = empty([nmsChunkRows(N, o.maskBytes) * words], 'u32', 'nms.mask');
  for (const [r0, rows] of nmsChunks(N, o.maskBytes)) {
    run(nmsMaskLaunch(N, r0, rows, iouThresh), [sb, sc, remv, mask]);
    run(nmsGreedyLaunch(N, r0, rows), [mask, order, remv, keep, count]);
  }
  [order, sb, sc, remv, mask].forEach((t) => t.dispose());
  done(bc, boxes);
  if (cc && cats) done(cc, cats);
  return { keep, count };
}

/** torchvision.ops.nms: boxes xyxy [N, 4], scores [N]; suppress when IoU > iouThresh. */
export const nms = (boxes: Tensor, scores: Tensor, iouThresh: number, o?: NmsOpts) => nmsImpl(boxes, scores, iouThresh, null, o);

/**
 * torchvision.ops.batched_nms: boxes of different idxs (i32 [N]: class, level, image·levels+level…)
 * never suppress each other. Same result as the coordinate-offset trick, computed by comparing
 * categories in the IoU kernel (no f32 rounding of offset coordinates).
 */
export const batchedNms = (boxes: Tensor, scores: Tensor, idxs: Tensor, iouThresh: number, o?: NmsOpts) => nmsImpl(boxes, scores, iouThresh, idxs, o);

/**
 * Per-image view of a batched NMS over several images (torchvision RPN keeps post_nms_top_n per
 * image): imageOf i32 [N] gives each box's image; returns keep [numImages, topN] (kept indices in
 * descending-score order, then -1) and count i32 [numImages]. All on the GPU.
 */
export function splitKeepByImage(r: NmsResult, imageOf: Tensor, numImages: number, topN: number): NmsResult {
  const N = r.keep.shape[0];
  if (imageOf.dtype !== 'i32' || imageOf.shape.join() !== `${N}`) throw new Error(`splitKeepByImage: imageOf must be i32 [${N}], got ${imageOf.dtype} [${imageOf.shape}]`);
  const keep = empty([numImages, topN], 'i32', 'nms.keepPerImage');
  if (numImages === 0 || topN === 0) return { keep, count: zeros([numImages], 'i32') };
  const count = empty([numImages], 'i32', 'nms.countPerImage');
  const kc = c(r.keep), cc = c(r.count), ic = c(imageOf);
  run(nmsSplitLaunch(N, numImages, topN), [kc, cc, ic, keep, count]);
  done(kc, r.keep); done(cc, r.count); done(ic, imageOf);
  return { keep, count };
}

// ---- anchors --------------------------------------------------------------------------------------------

function anchorLevels(base: number[][], featSizes: [number, number][], strides: [number, number][]): Tensor {
  const counts = featSizes.map(([h, w], l) => h * w * (base[l].length / 4));
  const out = empty([counts.reduce((s, v) => s + v, 0), 4], 'f32', 'anchors');
  let at = 0;
  featSizes.forEach(([h, w], l) => {
    const bt = fromArray(base[l], [base[l].length / 4, 4]);
    run(anchorGridLaunch(h, w, base[l].length / 4, strides[l][0], strides[l][1], at), [bt, out]);
    bt.dispose();
    at += counts[l];
  });
  return out;
}

/**
 * torchvision AnchorGenerator for one image size: rounded base anchors per level, stride =
 * imageSize // featSize per axis (integer division), (level, y, x, a) order → [Σ H·W·A, 4].
 */
export function anchorsTorchvision(imageSize: [number, number], featSizes: [number, number][], sizes: number[][], aspectRatios: number[][]): Tensor {
  if (sizes.length !== featSizes.length || aspectRatios.length !== featSizes.length) throw new Error(`anchorsTorchvision: ${featSizes.length} levels but ${sizes.length} size and ${aspectRatios.length} ratio lists`);
  const base = sizes.map((s, l) => torchvisionBaseAnchors(s, aspectRatios[l]));
  return anchorLevels(base, featSizes, featSizes.map(([h, w]) => [Math.floor(imageSize[0] / h), Math.floor(imageSize[1] / w)]));
}

/** The seed's py-faster-rcnn anchors on one feature map of stride featStride: [H·W·A, 4]. */
export function anchorsPyFaster(featSize: [number, number], featStride = 16, baseSize = 16, ratios = [0.5, 1, 2], scales = [8, 16, 32]): Tensor {
  return anchorLevels([pyFasterBaseAnchors(baseSize, ratios, scales)], [featSize], [[featStride, featStride]]);
}

export const detectOps = {
  roiAlign: roiAlignOp,
  multiScaleRoiAlign: multiLevelOp,
  roiPool: roiPoolOp,
  roiCrop: roiCropOp,
} satisfies Record<string, OpDef>;

// ---- mask paste (inference) -------------------------------------------------------------------------

/**
 * torchvision paste_masks_in_image(masks, boxes, img_shape, padding=1) > 0.5 (kernels/paste.ts) for
 * detections of several images at once: probs f32 [R, M, M] (sigmoid mask probabilities),
 * boxesXyxy f32 [R, 4] in original-image pixels, sizes i32 [R, 2] (origH, origW of each detection's
 * image, at most maxSize) → u32 [R, maxSize[0], ceil(maxSize[1] / 32)] bit rows: bit x % 32 of word
 * x / 32 is pixel x; pixels outside a detection's own image are 0. Not differentiable; no readback.
 */
export function pasteMasks(probs: Tensor, boxesXyxy: Tensor, sizes: Tensor, maxSize: [number, number]): Tensor {
  if (probs.rank !== 3 || probs.dtype !== 'f32' || probs.shape[1] !== probs.shape[2] || probs.shape[1] < 1) throw new Error(`pasteMasks: probs must be f32 [R, M, M], got ${probs.dtype} [${probs.shape}]`);
  const [R, M] = probs.shape;
  checkBoxes('pasteMasks', boxesXyxy);
  if (boxesXyxy.shape[0] !== R) throw new Error(`pasteMasks: boxesXyxy [${boxesXyxy.shape}] must have R = ${R} rows like probs [${probs.shape}]`);
  if (sizes.dtype !== 'i32' || sizes.shape.join() !== `${R},2`) throw new Error(`pasteMasks: sizes must be i32 [${R}, 2] (origH, origW), got ${sizes.dtype} [${sizes.shape}]`);
  const [hmax, wmax] = maxSize;
  if (![hmax, wmax].every((v) => Number.isInteger(v) && v >= 1)) throw new Error(`pasteMasks: maxSize must be two positive integers [Hmax, Wmax], got [${maxSize}]`);
  const out = empty([R, hmax, pasteWordsPerRow(wmax)], 'u32', 'pasteMasks');
  if (R === 0) return out;
  const pc = c(probs), bc = c(boxesXyxy), sc = c(sizes);
  const params = empty([R, 8], 'i32', 'pasteMasks.params');
  run(pasteSetupLaunch(R, M), [bc, sc, params]);
  run(pasteLaunch(R, M, hmax, wmax), [pc, params, out]);
  params.dispose();
  done(pc, probs); done(bc, boxesXyxy); done(sc, sizes);
  return out;
}
