// Matching and sampling ops for training targets: pairwise IoU, BoxCoder encode/decode, clip,
// small-box mask, stream compaction, torchvision's Matcher and BalancedPositiveNegativeSampler.
// Re-exported by ops-detect.ts. Counts stay on the GPU as i32 tensors (no host syncs). Semantics:
// torchvision 0.14 (../shared/reference/torchvision-mask-rcnn.md §1.2, §1.6).
import { empty, Tensor } from './tensor.ts';
import { dense, freeIfCopy, full, run, zeros } from './ops.ts';
import { boxIouLaunch, clipLaunch, compactLaunch, decodeLaunch, encodeLaunch, matchColMaxLaunch, matchFinalLaunch, matchRowMaxLaunch, smallMaskLaunch } from '../kernels/boxes.ts';
import { MAX_SAMPLER_ROWS, samplerPickLaunch } from '../kernels/sampler.ts';

// kernels index whole buffers from element 0: inputs go through dense(), copies are freed after
const c = dense;
const done = freeIfCopy;

// ---- box ops ------------------------------------------------------------------------------------------

export function checkBoxes(op: string, b: Tensor): void {
  if (b.rank !== 2 || b.shape[1] !== 4 || b.dtype !== 'f32') throw new Error(`${op}: boxes must be f32 [N, 4], got ${b.dtype} [${b.shape}]`);
}

/** f32 boxes [N, 4] or, batched, [B, N, 4]; returns B (0 when unbatched). */
function boxesBatch(op: string, b: Tensor): number {
  if ((b.rank !== 2 && b.rank !== 3) || b.shape[b.rank - 1] !== 4 || b.dtype !== 'f32') throw new Error(`${op}: boxes must be f32 [N, 4] or [B, N, 4], got ${b.dtype} [${b.shape}]`);
  return b.rank === 3 ? b.shape[0] : 0;
}

/**
 * torchvision box_iou: a [N, 4], b [M, 4] → [N, M]. Batched in one dispatch: a [B, N, 4] and/or
 * b [B, M, 4] → [B, N, M]; an operand of rank 2 is shared by every batch entry (RPN anchors).
 */
export function boxIou(a: Tensor, b: Tensor): Tensor {
  const Ba = boxesBatch('boxIou', a), Bb = boxesBatch('boxIou', b);
  if (Ba && Bb && Ba !== Bb) throw new Error(`boxIou: batch sizes differ, a [${a.shape}] vs b [${b.shape}]`);
  const batched = a.rank === 3 || b.rank === 3;
  const B = batched ? Math.max(Ba, Bb) : 1;
  const N = a.shape[a.rank - 2], M = b.shape[b.rank - 2];
  const out = empty(batched ? [B, N, M] : [N, M], 'f32', 'boxIou');
  if (out.size === 0) return out;
  const ac = c(a), bc = c(b);
  run(boxIouLaunch(N, M, B, a.rank === 2, b.rank === 2), [ac, bc, out]);
  done(ac, a); done(bc, b);
  return out;
}

export type BoxWeights = [number, number, number, number];
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

/**
 * BoxCoder.encode_single: regression targets of gt [N, 4] w.r.t. proposals [N, 4] → [N, 4]. Also
 * gt [B, N, 4] with proposals [B, N, 4], or with proposals [N, 4] shared by every batch entry
 * (RPN anchors) → [B, N, 4].
 */
export function encodeBoxes(gt: Tensor, proposals: Tensor, weights: BoxWeights = [1, 1, 1, 1]): Tensor {
  boxesBatch('encodeBoxes', gt); boxesBatch('encodeBoxes', proposals);
  const shared = gt.rank === 3 && proposals.rank === 2;
  const want = shared ? gt.shape.slice(1) : gt.shape;
  if (proposals.shape.join() !== want.join()) throw new Error(`encodeBoxes: proposals [${proposals.shape}] must be [${want}] for gt [${gt.shape}]`);
  const out = empty(gt.shape, 'f32', 'encodeBoxes');
  if (out.size === 0) return out;
  const g = c(gt), p = c(proposals);
  run(encodeLaunch(gt.size / 4, weights, proposals.size / 4), [g, p, out]);
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

/**
 * Stream compaction: mask i32 [N] → indices i32 [N] (set positions in order, then -1) and count
 * i32 [1]. Per row of mask [B, N] in one dispatch: indices [B, N] (positions within the row), count [B].
 */
export function compact(mask: Tensor): { indices: Tensor; count: Tensor } {
  if ((mask.rank !== 1 && mask.rank !== 2) || mask.dtype !== 'i32') throw new Error(`compact: mask must be i32 [N] or [B, N], got ${mask.dtype} [${mask.shape}]`);
  const N = mask.shape[mask.rank - 1], B = mask.rank === 2 ? mask.shape[0] : 1;
  if (B > 65535) throw new Error(`compact: mask [${mask.shape}] has ${B} rows > 65535 (one workgroup per row)`);
  const m = c(mask);
  const indices = empty(mask.shape, 'i32', 'compact.indices');
  const count = zeros(mask.rank === 2 ? [B] : [1], 'i32');
  if (N > 0 && B > 0) run(compactLaunch(N, B), [m, indices, count]);
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
 * IoUs all -1 is a padding GT (fixed-capacity targets): it makes no low-quality match. Batched:
 * iou [B, M, N] → matches, labels [B, N], each image matched on its own, in the same 3 dispatches.
 */
export function matcher(iou: Tensor, o: { high: number; low: number; allowLowQualityMatches?: boolean }): { matches: Tensor; labels: Tensor } {
  if ((iou.rank !== 2 && iou.rank !== 3) || iou.dtype !== 'f32') throw new Error(`matcher: iou must be f32 [M, N] or [B, M, N], got ${iou.dtype} [${iou.shape}]`);
  if (o.low > o.high) throw new Error(`matcher: low ${o.low} > high ${o.high}`);
  const [M, N] = iou.shape.slice(-2);
  const lead = iou.shape.slice(0, -2);
  const B = lead.length ? lead[0] : 1;
  if (M === 0) return { matches: full([...lead, N], -1, 'i32'), labels: zeros([...lead, N], 'i32') };
  const vals = empty([B * N], 'f32', 'matcher.vals');
  const args = empty([B * N], 'i32', 'matcher.args');
  const best = empty([B * M], 'f32', 'matcher.best');
  const matches = empty([...lead, N], 'i32', 'matcher.matches');
  const labels = empty([...lead, N], 'i32', 'matcher.labels');
  const q = c(iou);
  if (N > 0 && B > 0) {
    run(matchColMaxLaunch(M, N, B), [q, vals, args]);
    run(matchRowMaxLaunch(M, N, B), [q, best]);
    run(matchFinalLaunch(M, N, o.high, o.low, o.allowLowQualityMatches ?? false, B), [q, vals, args, best, matches, labels]);
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
 * Batched: labels [B, N] with seed an array of B seeds → pos/neg [B, N] in one dispatch (one
 * workgroup per image); row b is bit-identical to the 1-D sampler on that row with seed[b].
 */
export function sampler(labels: Tensor, o: { batchSizePerImage: number; positiveFraction: number; seed: number | readonly number[]; mode?: 'random' | 'firstK' }): { pos: Tensor; neg: Tensor } {
  if ((labels.rank !== 1 && labels.rank !== 2) || labels.dtype !== 'i32') throw new Error(`sampler: labels must be i32 [N] or [B, N], got ${labels.dtype} [${labels.shape}]`);
  const batched = labels.rank === 2;
  if (batched !== Array.isArray(o.seed) || (batched && (o.seed as readonly number[]).length !== labels.shape[0])) {
    throw new Error(`sampler: labels [${labels.shape}] need ${batched ? `an array of ${labels.shape[0]} seeds (one per image)` : 'one seed number'}, got ${Array.isArray(o.seed) ? `${(o.seed as readonly number[]).length} seeds` : 'a number'}`);
  }
  if (batched && labels.shape[0] > MAX_SAMPLER_ROWS) throw new Error(`sampler: labels [${labels.shape}] has ${labels.shape[0]} images > ${MAX_SAMPLER_ROWS} per dispatch`);
  const N = labels.shape[labels.rank - 1];
  const pos = empty(labels.shape, 'i32', 'sampler.pos');
  const neg = empty(labels.shape, 'i32', 'sampler.neg');
  if (N === 0 || labels.size === 0) return { pos, neg };
  const l = c(labels);
  run(samplerPickLaunch(N, o.batchSizePerImage, o.positiveFraction, o.seed, (o.mode ?? 'random') === 'random'), [l, pos, neg]);
  done(l, labels);
  return { pos, neg };
}
