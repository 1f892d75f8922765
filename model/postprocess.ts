// Inference end to end: forward on the GPU, boxes back to each original image size
// (torchvision transform.postprocess: ratio per axis), masks pasted into the original image on the
// GPU (paste_masks_in_image, threshold 0.5, bit-packed), then ONE readback for the whole batch;
// keypoints decoded on the host from the 56×56 logits (heatmaps_to_keypoints) and rescaled.
// toCocoResults turns the detections into the evaluator's results format (compressed RLE masks).
import * as E from '../engine/index.ts';
import { pasteMasks } from '../engine/ops-detect.ts';
import type { CocoResult } from '../data/coco-types.ts';
import { rleDecodeRowMajor, rleFromPackedRows, rleToCompressed, type Rle } from '../data/rle.ts';
import { heatmapsToKeypoints } from './keypoint-decode.ts';
import type { MaskRCNN } from './mask-rcnn.ts';
import type { GpuBatch } from './transform.ts';

/** One image's detections in original-image pixel coordinates. */
export interface ImageDetections {
  imageId: number;
  heightPx: number; widthPx: number;
  boxesXyxy: Float32Array; // [n*4]
  scores: Float32Array; // [n]
  labels: Int32Array; // [n] model labels 1..K
  /** Per detection, the binary mask (pasted soft mask > 0.5) as COCO RLE at the image size. */
  masks: Rle[] | null;
  keypoints: Float32Array | null; // [n*K*3] x, y, 1 (torchvision: no -0.5 shift)
  keypointScores: Float32Array | null; // [n*K]
  /** Candidates above the score threshold dropped by the box head's preNmsCandidates capacity. */
  droppedCandidates: number;
}

export async function predict(model: MaskRCNN, batch: GpuBatch): Promise<ImageDetections[]> {
  model.eval();
  const { B, sizes } = batch;
  const Hmax = Math.max(...sizes.map((s) => s.origHeightPx));
  const Wmax = Math.max(...sizes.map((s) => s.origWidthPx));
  const words = Math.ceil(Wmax / 32);
  const outs = E.tidy(() => {
    const r = model.forwardInfer(batch);
    const D = r.D;
    const ratio = new Float32Array(B * 4);
    sizes.forEach((s, b) => {
      const rx = s.origWidthPx / s.widthPx, ry = s.origHeightPx / s.heightPx;
      ratio.set([rx, ry, rx, ry], b * 4);
    });
    const boxesOrig = E.mul(r.boxes, E.fromArray(ratio, [B, 1, 4])); // [B, D, 4]
    let bits: E.Tensor | null = null;
    if (r.maskProbs) {
      const sz = new Int32Array(B * D * 2);
      for (let i = 0; i < B * D; i++) sz.set([sizes[Math.floor(i / D)].origHeightPx, sizes[Math.floor(i / D)].origWidthPx], i * 2);
      bits = pasteMasks(r.maskProbs, E.reshape(boxesOrig, [B * D, 4]), E.fromArray(sz, [B * D, 2], 'i32'), [Hmax, Wmax]);
    }
    const list = [boxesOrig, r.boxes, r.scores, r.labels, r.valid, r.overflow, ...(bits ? [bits] : []), ...(r.keypointLogits ? [r.keypointLogits] : [])];
    return { list, D, hasMask: !!bits, hasKp: !!r.keypointLogits, kShape: r.keypointLogits?.shape ?? null };
  });
  const arrs = await E.toArrays(outs.list); // the single readback of inference
  outs.list.forEach((t) => t.dispose());
  const [boxesOrig, boxesResized, scores, labels, valid, overflow] = arrs as [Float32Array, Float32Array, Float32Array, Int32Array, Float32Array, Int32Array];
  const bits = outs.hasMask ? (arrs[6] as Uint32Array) : null;
  const kpl = outs.hasKp ? (arrs[outs.hasMask ? 7 : 6] as Float32Array) : null;
  const D = outs.D;
  const res: ImageDetections[] = [];
  for (let b = 0; b < B; b++) {
    let n = 0;
    while (n < D && valid[b * D + n] > 0) n++; // valid slots are a prefix (NMS keeps in score order)
    const s = sizes[b];
    const det: ImageDetections = {
      imageId: batch.imageIds[b] ?? b, heightPx: s.origHeightPx, widthPx: s.origWidthPx,
      boxesXyxy: boxesOrig.slice(b * D * 4, (b * D + n) * 4), scores: scores.slice(b * D, b * D + n), labels: labels.slice(b * D, b * D + n),
      masks: null, keypoints: null, keypointScores: null, droppedCandidates: overflow[b],
    };
    if (bits) {
      det.masks = [];
      for (let i = 0; i < n; i++) det.masks.push(rleFromPackedRows(bits, (b * D + i) * Hmax * words, s.origHeightPx, s.origWidthPx, words));
    }
    if (kpl && outs.kShape) {
      const [, K, S] = outs.kShape;
      const per = K * S * S;
      const dec = heatmapsToKeypoints(kpl.subarray(b * D * per, (b * D + n) * per), n, K, S, boxesResized.slice(b * D * 4, (b * D + n) * 4));
      const rx = s.origWidthPx / s.widthPx, ry = s.origHeightPx / s.heightPx;
      for (let i = 0; i < n * K; i++) { dec.keypoints[i * 3] *= rx; dec.keypoints[i * 3 + 1] *= ry; }
      det.keypoints = dec.keypoints;
      det.keypointScores = dec.scores;
    }
    res.push(det);
  }
  return res;
}

/** Keypoints for drawing: (x, y, 0) for detections whose label has no keypoints (shapes: only persons do). */
export function keypointsForLabels(d: ImageDetections, labels: ReadonlySet<number> | null): Float32Array | undefined {
  if (!d.keypoints) return undefined;
  const k = d.keypoints.slice();
  const per = d.scores.length ? k.length / d.scores.length : 0;
  if (labels) d.labels.forEach((l, i) => { if (!labels.has(l)) for (let j = 2; j < per; j += 3) k[i * per + j] = 0; });
  return k;
}

/** Row-major 0/1 mask of detection i (for drawing). */
export const maskBitmap = (d: ImageDetections, i: number): Uint8Array => rleDecodeRowMajor(d.masks![i]);

/**
 * COCO results (torchvision references/detection/coco_eval.py): bbox as xywh, segm as compressed
 * RLE, keypoints as raw (x, y, 1) for labels whose category has keypoints. `labelToCatId[label]`.
 */
export function toCocoResults(dets: ImageDetections[], labelToCatId: readonly number[], opts: { keypointLabels?: ReadonlySet<number> } = {}): { bbox: CocoResult[]; segm: CocoResult[]; keypoints: CocoResult[] } {
  const bbox: CocoResult[] = [], segm: CocoResult[] = [], keypoints: CocoResult[] = [];
  for (const d of dets) {
    const n = d.scores.length;
    for (let i = 0; i < n; i++) {
      const label = d.labels[i];
      const catId = labelToCatId[label];
      if (catId === undefined) throw new Error(`toCocoResults: label ${label} has no COCO category (labelToCatId has ${labelToCatId.length} entries)`);
      const [x1, y1, x2, y2] = d.boxesXyxy.subarray(i * 4, i * 4 + 4);
      const base = { image_id: d.imageId, category_id: catId, score: d.scores[i] };
      bbox.push({ ...base, bbox: [x1, y1, x2 - x1, y2 - y1] });
      if (d.masks) segm.push({ ...base, segmentation: rleToCompressed(d.masks[i]) });
      if (d.keypoints && (!opts.keypointLabels || opts.keypointLabels.has(label))) {
        const K = d.keypoints.length / (3 * n);
        keypoints.push({ ...base, keypoints: Array.from(d.keypoints.subarray(i * K * 3, (i + 1) * K * 3)) });
      }
    }
  }
  return { bbox, segm, keypoints };
}
