// Matching and sampling ops for training targets: pairwise IoU, BoxCoder encode/decode, clip,
// small-box mask, stream compaction, torchvision's Matcher and BalancedPositiveNegativeSampler.
// Re-exported by ops-detect.ts. Counts stay on the GPU as i32 tensors (no host syncs). Semantics:
// torchvision 0.14 (../shared/reference/torchvision-mask-rcnn.md §1.2, §1.6).
import { empty, Tensor } from './tensor.ts';
import { assignInto, full, run, zeros } from './ops.ts';
import { boxIouLaunch, clipLaunch, compactLaunch, decodeLaunch, encodeLaunch, matchColMaxLaunch, matchFinalLaunch, matchRowMaxLaunch, smallMaskLaunch } from '../kernels/boxes.ts';
import { samplerPickLaunch } from '../kernels/sampler.ts';

/** Kernels index whole buffers from element 0, so inputs must be contiguous at offset 0. */
export function contiguousAt0(t: Tensor): Tensor {
  if (t.isContiguous && t.offset === 0) return t;
  const o = empty(t.shape, t.dtype, 'detect.contiguous');
  assignInto(o, t);
  return o;
}
/** Frees the copy contiguousAt0 made (never the caller's tensor). */
export const disposeCopy = (t: Tensor, orig: Tensor) => t !== orig && t.dispose();
const c = contiguousAt0;
const done = disposeCopy;

// ---- box ops ------------------------------------------------------------------------------------------

export function checkBoxes(op: string, b: Tensor): void {
  if (b.rank !== 2 || b.shape[1] !== 4 || b.dtype !== 'f32') throw new Error(`${op}: boxes must be f32 [N, 4], got ${b.dtype} [${b.shape}]`);
}

/** torchvision box_iou: a [N, 4], b [M, 4] → [N, M]. */
export function boxIou(a: Tensor, b: Tensor): Tensor {
  checkBoxes('boxIou', a); checkBoxes('boxIou', b);
  const ac = c(a), bc = c(b);
  const out = empty([a.shape[0], b.shape[0]], 'f32', 'boxIou');
  run(boxIouLaunch(a.shape[0], b.shape[0]), [ac, bc, out]);
  done(ac, a); done(bc, b);
  return out;
}

export type BoxWeights = [number, number, number, number];
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

/** BoxCoder.encode_single: regression targets of gt [N, 4] w.r.t. proposals [N, 4] → [N, 4]. */
export function encodeBoxes(gt: Tensor, proposals: Tensor, weights: BoxWeights = [1, 1, 1, 1]): Tensor {
  checkBoxes('encodeBoxes', gt); checkBoxes('encodeBoxes', proposals);
  const g = c(gt), p = c(proposals);
  const out = empty(gt.shape, 'f32', 'encodeBoxes');
  run(encodeLaunch(gt.shape[0], weights), [g, p, out]);
  done(g, gt); done(p, proposals);
  return out;
}

/** BoxCoder.decode_single: codes [N, 4K] applied to boxes [N, 4] → [N, 4K]; dw, dh clamped at clip. */
export function decodeBoxes(codes: Tensor, boxes: Tensor, weights: BoxWeights = [1, 1, 1, 1], clip = BBOX_XFORM_CLIP): Tensor {
  checkBoxes('decodeBoxes', boxes);
  if (codes.rank !== 2 || codes.shape[0] !== boxes.shape[0] || codes.shape[1] % 4) throw new Error(`decodeBoxes: codes [${codes.shape}] must be [${boxes.shape[0]}, 4K]`);
  const cc = c(codes), b = c(boxes);
  const out = empty(codes.shape, 'f32', 'decodeBoxes');
  run(decodeLaunch(boxes.shape[0], codes.shape[1] / 4, weights, clip), [cc, b, out]);
  done(cc, codes); done(b, boxes);
  return out;
}

/** clip_boxes_to_image: boxes [N, 4] into [0, W] × [0, H]. */
export function clipBoxes(boxes: Tensor, imageSize: [number, number]): Tensor {
  checkBoxes('clipBoxes', boxes);
  const b = c(boxes);
  const out = empty(boxes.shape, 'f32', 'clipBoxes');
  run(clipLaunch(boxes.shape[0], imageSize[0], imageSize[1]), [b, out]);
  done(b, boxes);
  return out;
}

/** remove_small_boxes as a mask: i32 [N], 1 where w >= minSize and h >= minSize. */
export function smallBoxesMask(boxes: Tensor, minSize: number): Tensor {
  checkBoxes('smallBoxesMask', boxes);
  const b = c(boxes);
  const out = empty([boxes.shape[0]], 'i32', 'smallBoxesMask');
  run(smallMaskLaunch(boxes.shape[0], minSize), [b, out]);
  done(b, boxes);
  return out;
}

/** Stream compaction: mask i32 [N] → indices i32 [N] (set positions in order, then -1) and count i32 [1]. */
export function compact(mask: Tensor): { indices: Tensor; count: Tensor } {
  if (mask.rank !== 1 || mask.dtype !== 'i32') throw new Error(`compact: mask must be i32 [N], got ${mask.dtype} [${mask.shape}]`);
  const m = c(mask);
  const indices = empty([mask.shape[0]], 'i32', 'compact.indices');
  const count = zeros([1], 'i32');
  if (mask.shape[0] > 0) run(compactLaunch(mask.shape[0]), [m, indices, count]);
  done(m, mask);
  return { indices, count };
}

/** remove_small_boxes: indices of boxes with both sides >= minSize, compacted, and their count. */
export function removeSmallBoxes(boxes: Tensor, minSize: number): { indices: Tensor; count: Tensor } {
  const m = smallBoxesMask(boxes, minSize);
  const r = compact(m);
  m.dispose();
  return r;
}
// ---- matcher and sampler ---------------------------------------------------------------------------------

/**
 * torchvision Matcher on iou [M gt, N pred]: matches i32 [N] (gt index, -1 below low, -2 between)
 * and labels i32 [N] (1 fg, 0 bg, -1 ignore). No gt (M = 0): everything is background. A row of
 * IoUs all -1 is a padding GT (fixed-capacity targets): it makes no low-quality match.
 */
export function matcher(iou: Tensor, o: { high: number; low: number; allowLowQualityMatches?: boolean }): { matches: Tensor; labels: Tensor } {
  if (iou.rank !== 2 || iou.dtype !== 'f32') throw new Error(`matcher: iou must be f32 [M, N], got ${iou.dtype} [${iou.shape}]`);
  if (o.low > o.high) throw new Error(`matcher: low ${o.low} > high ${o.high}`);
  const [M, N] = iou.shape;
  if (M === 0) return { matches: full([N], -1, 'i32'), labels: zeros([N], 'i32') };
  const q = c(iou);
  const vals = empty([N], 'f32', 'matcher.vals');
  const args = empty([N], 'i32', 'matcher.args');
  const best = empty([M], 'f32', 'matcher.best');
  const matches = empty([N], 'i32', 'matcher.matches');
  const labels = empty([N], 'i32', 'matcher.labels');
  if (N > 0) {
    run(matchColMaxLaunch(M, N), [q, vals, args]);
    run(matchRowMaxLaunch(M, N), [q, best]);
    run(matchFinalLaunch(M, N, o.high, o.low, o.allowLowQualityMatches ?? false), [q, vals, args, best, matches, labels]);
  }
  [vals, args, best].forEach((t) => t.dispose());
  done(q, iou);
  return { matches, labels };
}

/**
 * BalancedPositiveNegativeSampler for one image: labels i32 [N] (>= 1 fg, 0 bg, < 0 ignored) →
 * pos/neg masks i32 [N] with min(#fg, ⌊batch·fraction⌋) positives and min(#bg, batch - #pos)
 * negatives, chosen uniformly by a seeded GPU RNG (the first ones in descending order of random
 * keys, ties by index); mode 'firstK' takes the first ones by index instead (parity tests). One
 * dispatch: a radix select in one workgroup (kernels/sampler.ts samplerPickLaunch), the same masks as
 * an index-stable argsort of the keys (the tests keep that path as the reference).
 */
export function sampler(labels: Tensor, o: { batchSizePerImage: number; positiveFraction: number; seed: number; mode?: 'random' | 'firstK' }): { pos: Tensor; neg: Tensor } {
  if (labels.rank !== 1 || labels.dtype !== 'i32') throw new Error(`sampler: labels must be i32 [N], got ${labels.dtype} [${labels.shape}]`);
  const N = labels.shape[0];
  const pos = empty([N], 'i32', 'sampler.pos');
  const neg = empty([N], 'i32', 'sampler.neg');
  if (N === 0) return { pos, neg };
  const l = c(labels);
  run(samplerPickLaunch(N, o.batchSizePerImage, o.positiveFraction, o.seed, (o.mode ?? 'random') === 'random'), [l, pos, neg]);
  done(l, labels);
  return { pos, neg };
}
