// RoI heads (Fast R-CNN part; torchvision/models/detection/roi_heads.py): GT boxes appended to the
// proposals, Matcher 0.5/0.5, balanced sampling (512 / 0.25), MultiScaleRoIAlign 7×7 sr 2,
// TwoMLPHead, class-specific box regression with weights (10, 10, 5, 5), cross-entropy +
// smooth-L1 over the sampled RoIs; inference: softmax, per-class decode + clip, score threshold,
// per-class NMS, top-N per image. Sampled RoIs live in fixed-capacity tensors [B·S] with masks.
import * as E from '../engine/index.ts';
import { batchedNms, boxIou, compact, decodeBoxes, encodeBoxes, matcher, multiScaleRoiAlign, sampler, smallBoxesMask, topk } from '../engine/ops-detect.ts';
import { initParam } from './init.ts';
import { clipPerImage, samplerSeed, targetsPath, type Proposals } from './rpn.ts';
import type { BoxHeadConfig, ModelConfig } from './config.ts';
import type { GpuBatch } from './transform.ts';

type Tensor = E.Tensor;

/** FPN levels P2..P5 pooled by MultiScaleRoIAlign: scale 2^-k (torchvision infers 1/4..1/32). */
export const POOL_SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32];

/** Sampled RoIs of a training batch, B·S rows (S per image), row-aligned tensors. */
export interface SampledRois {
  S: number;
  rois: Tensor; // [B·S, 5] (image index, x1, y1, x2, y2)
  labels: Tensor; // i32 [B·S]: class (0 = background), -100 on padding rows (cross-entropy ignore)
  regTargets: Tensor; // [B·S, 4] encoded with the box weights
  pos: Tensor; // f32 [B·S]
  valid: Tensor; // f32 [B·S]
  gtIndex: Tensor; // i32 [B·S]: matched GT row b·G + g (0 where unmatched)
}

/**
 * Host-built constants (padding box, image-index columns, class ids) uploaded once and kept: an
 * upload flushes the recorded work (engine/runtime.ts), so per-step uploads would cost submits.
 */
const constants = new Map<string, Tensor>();
export function cachedConstant(key: string, make: () => Tensor): Tensor {
  let t = constants.get(key);
  if (!t || t.disposed) {
    t = make().keep();
    constants.set(key, t);
  }
  return t;
}
/** [B, 1] i32 of b·n: turns per-image row indices into rows of a [B·n] concatenation. */
export const rowOffsets = (B: number, n: number) => cachedConstant(`rowOffs:${B}x${n}`, () => E.fromArray(Int32Array.from({ length: B }, (_, b) => b * n), [B, 1], 'i32'));

const PAD = () => cachedConstant('pad:1x4', () => E.fromArray([0, 0, 1, 1], [1, 4]));
const zeroI = () => E.full([], 0, 'i32');

/**
 * Runs a per-RoI head over rois [R, 5] in chunks whose largest activation (bytesPerRoi each) fits
 * the device's buffer limit (lavapipe: 128 MiB; torchvision's 256 training RoIs × 256 × 28 × 28
 * floats are 205 MB), then concatenates along dim 0. Same result as one call; gradients flow
 * through the concat.
 */
export function chunkedOverRois(rois: Tensor, bytesPerRoi: number, head: (r: Tensor) => Tensor, limitBytes = E.runtime().pool.maxBytes): Tensor {
  const R = rois.shape[0];
  // the pool rounds sizes up by at most 1.25× (engine/pool.ts buckets)
  const maxR = Math.max(1, Math.floor(limitBytes / (1.25 * bytesPerRoi)));
  if (R <= maxR) return head(rois);
  const parts: Tensor[] = [];
  for (let at = 0; at < R; at += maxR) parts.push(head(E.narrow(rois, 0, at, Math.min(maxR, R - at))));
  return E.concat(parts, 0);
}

/** (image index) column + boxes → rois [B·n, 5]. */
export function toRois(boxes: Tensor, B: number, n: number): Tensor {
  const col = cachedConstant(`imageCol:${B}x${n}`, () => E.fromArray(Float32Array.from({ length: B * n }, (_, i) => Math.floor(i / n)), [B * n, 1]));
  return E.concat([col, E.reshape(boxes, [B * n, 4])], 1);
}

/** torchvision RoIHeads.select_training_samples with static shapes, each op once for all images. */
export function selectTrainingSamples(p: Proposals, batch: GpuBatch, c: BoxHeadConfig, model: ModelConfig, step: number): SampledRois {
  const t = batch.targets;
  if (!t) throw new Error('roi_heads: training needs targets');
  if (targetsPath.impl === 'perImage') return selectTrainingSamplesPerImage(p, batch, c, model, step);
  const { B } = batch;
  const P = p.boxes.shape[1];
  const G = t.boxes.shape[1];
  const PG = P + G;
  const S = Math.min(c.batchSizePerImage, PG);
  return E.noGrad(() => {
    // torchvision add_gt_proposals: GT boxes are appended to the proposals
    const all = E.concat([p.boxes, t.boxes], 1); // [B, P+G, 4]
    const allValid = E.concat([p.valid, t.valid], 1); // [B, P+G]
    const iou = E.where(E.unsqueeze(t.valid, 2), boxIou(t.boxes, all), E.full([], -1)); // [B, G, P+G]; padding GT rows -1
    const m = matcher(iou, { high: c.fgIouThresh, low: c.bgIouThresh, allowLowQualityMatches: false });
    const lab = E.where(allValid, m.labels, E.full([], -1, 'i32'));
    const seeds = Array.from({ length: B }, (_, b) => samplerSeed(step, b, 1));
    const s = sampler(lab, { batchSizePerImage: c.batchSizePerImage, positiveFraction: c.positiveFraction, seed: seeds, mode: model.sampler });
    // torchvision: sampled_inds = where(pos | neg) — index order, per image
    const idx = E.narrow(compact(E.add(s.pos, s.neg)).indices, 1, 0, S); // [B, S] within the image, then -1
    const has = E.ge(idx, 0);
    const hasF = E.reshape(E.cast(has, 'f32'), [B * S]);
    const rows = E.reshape(E.add(E.where(has, idx, zeroI()), rowOffsets(B, PG)), [B * S]); // rows of [B·(P+G)]
    const box = E.indexSelect(E.reshape(all, [B * PG, 4]), 0, rows);
    const gtIdx = E.indexSelect(E.reshape(E.where(E.ge(m.matches, 0), m.matches, zeroI()), [B * PG]), 0, rows); // within the image
    const gtRow = E.reshape(E.add(E.reshape(gtIdx, [B, S]), rowOffsets(B, G)), [B * S]); // rows of [B·G]
    const pos = E.mul(E.indexSelect(E.reshape(E.cast(s.pos, 'f32'), [B * PG]), 0, rows), hasF);
    const gtLab = E.indexSelect(E.reshape(t.labels, [B * G]), 0, gtRow);
    const labels = E.where(hasF, E.where(pos, gtLab, zeroI()), E.full([], -100, 'i32'));
    const regTargets = encodeBoxes(E.indexSelect(E.reshape(t.boxes, [B * G, 4]), 0, gtRow), box, c.regWeights);
    const boxes = E.where(E.unsqueeze(hasF, 1), box, PAD());
    return { S, rois: toRois(boxes, B, S), labels, regTargets, pos, valid: hasF, gtIndex: gtRow };
  });
}

/** selectTrainingSamples as the per-image loop it replaced (same result bit for bit; test reference only). */
function selectTrainingSamplesPerImage(p: Proposals, batch: GpuBatch, c: BoxHeadConfig, model: ModelConfig, step: number): SampledRois {
  const t = batch.targets!;
  const { B } = batch;
  const P = p.boxes.shape[1];
  const G = t.boxes.shape[1];
  const S = Math.min(c.batchSizePerImage, P + G);
  return E.noGrad(() => {
    const boxesL: Tensor[] = [], labL: Tensor[] = [], regL: Tensor[] = [], posL: Tensor[] = [], valL: Tensor[] = [], gtL: Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const gt = E.reshape(E.narrow(t.boxes, 0, b, 1), [G, 4]);
      const gv = E.reshape(E.narrow(t.valid, 0, b, 1), [G]);
      const all = E.concat([E.reshape(E.narrow(p.boxes, 0, b, 1), [P, 4]), gt], 0); // [P+G, 4]
      const allValid = E.concat([E.reshape(E.narrow(p.valid, 0, b, 1), [P]), gv], 0);
      const iou = E.where(E.unsqueeze(gv, 1), boxIou(gt, all), E.full([], -1));
      const m = matcher(iou, { high: c.fgIouThresh, low: c.bgIouThresh, allowLowQualityMatches: false });
      const lab = E.where(allValid, m.labels, E.full([], -1, 'i32'));
      const s = sampler(lab, { batchSizePerImage: c.batchSizePerImage, positiveFraction: c.positiveFraction, seed: samplerSeed(step, b, 1), mode: model.sampler });
      const idx = E.narrow(compact(E.add(s.pos, s.neg)).indices, 0, 0, S);
      const has = E.ge(idx, 0);
      const idxC = E.where(has, idx, zeroI());
      const hasF = E.cast(has, 'f32');
      const box = E.indexSelect(all, 0, idxC);
      const gtIdx = E.indexSelect(E.where(E.ge(m.matches, 0), m.matches, zeroI()), 0, idxC);
      const pos = E.mul(E.indexSelect(E.cast(s.pos, 'f32'), 0, idxC), hasF);
      const gtLab = E.indexSelect(E.reshape(E.narrow(t.labels, 0, b, 1), [G]), 0, gtIdx);
      const cls = E.where(has, E.where(pos, gtLab, zeroI()), E.full([], -100, 'i32'));
      regL.push(encodeBoxes(E.indexSelect(gt, 0, gtIdx), box, c.regWeights));
      boxesL.push(E.where(E.unsqueeze(hasF, 1), box, PAD()));
      labL.push(cls); posL.push(pos); valL.push(hasF);
      gtL.push(E.add(gtIdx, E.full([], b * G, 'i32')));
    }
    const boxes = E.concat(boxesL, 0);
    return {
      S, rois: toRois(boxes, B, S), labels: E.concat(labL, 0), regTargets: E.concat(regL, 0),
      pos: E.concat(posL, 0), valid: E.concat(valL, 0), gtIndex: E.concat(gtL, 0),
    };
  });
}

/** TwoMLPHead (fc6, fc7 with ReLU) + FastRCNNPredictor (cls_score, bbox_pred). */
export class BoxHead extends E.Module {
  readonly fc6: E.Linear; readonly fc7: E.Linear;
  readonly cls: E.Linear; readonly bbox: E.Linear;
  constructor(channels: number, readonly cfg: BoxHeadConfig, readonly numClasses: number, parent: E.Module) {
    super();
    const head = parent.child('box_head', new E.Module());
    const pred = parent.child('box_predictor', new E.Module());
    const inF = channels * cfg.poolSize * cfg.poolSize;
    this.fc6 = head.child('fc6', new E.Linear(inF, cfg.representation));
    this.fc7 = head.child('fc7', new E.Linear(cfg.representation, cfg.representation));
    this.cls = pred.child('cls_score', new E.Linear(cfg.representation, numClasses));
    this.bbox = pred.child('bbox_pred', new E.Linear(cfg.representation, numClasses * 4));
  }
  /** feats P2..P5, rois [R, 5] → logits [R, K+1]; deltas [R, 4(K+1)]. */
  forward(feats: Tensor[], rois: Tensor): { logits: Tensor; deltas: Tensor } {
    const x = multiScaleRoiAlign(feats.slice(0, 4), rois, { outputSize: this.cfg.poolSize, scales: POOL_SCALES, samplingRatio: this.cfg.samplingRatio, aligned: this.cfg.aligned });
    const R = rois.shape[0];
    const h6 = E.relu(this.fc6.forward(E.reshape(x, [R, x.size / Math.max(R, 1)]))); // torchvision flattens C, H, W
    const h7 = E.relu(this.fc7.forward(h6));
    return { logits: this.cls.forward(h7), deltas: this.bbox.forward(h7) };
  }
}

/** torchvision fastrcnn_loss over the sampled rows (padding rows ignored). */
export function fastrcnnLoss(logits: Tensor, deltas: Tensor, s: SampledRois, beta: number): { classifier: Tensor; boxReg: Tensor } {
  const R = logits.shape[0];
  const K1 = logits.shape[1];
  const classifier = E.crossEntropy(logits, s.labels, { ignoreIndex: -100 });
  const lab = E.where(E.ge(s.labels, 0), s.labels, zeroI());
  const sel = E.reshape(E.gather(E.reshape(deltas, [R, K1, 4]), 1, E.expand(E.reshape(lab, [R, 1, 1]), [R, 1, 4])), [R, 4]);
  const l1 = E.where(E.unsqueeze(s.pos, 1), E.smoothL1(sel, s.regTargets, beta, 'none'), E.full([], 0));
  // torchvision divides by labels.numel() = all sampled rows
  const boxReg = E.div(E.sum(l1), E.clamp(E.sum(s.valid), 1));
  return { classifier, boxReg };
}

export interface Detections {
  D: number;
  boxes: Tensor; // [B, D, 4] resized frame
  scores: Tensor; // [B, D] (-1 on empty slots)
  labels: Tensor; // i32 [B, D]
  valid: Tensor; // f32 [B, D]
  /** i32 [B]: candidates above the score threshold that did not fit preNmsCandidates (reported, not silent). */
  overflow: Tensor;
}

/** torchvision RoIHeads.postprocess_detections with static shapes. */
export function postprocessDetections(logits: Tensor, deltas: Tensor, p: Proposals, batch: GpuBatch, c: BoxHeadConfig): Detections {
  return E.noGrad(() => {
    const { B } = batch;
    const P = p.boxes.shape[1];
    const K1 = logits.shape[1];
    const K = K1 - 1;
    const scoresAll = E.softmax(logits, 1); // [B·P, K+1]
    const dec = decodeBoxes(deltas, E.reshape(p.boxes, [B * P, 4]), c.regWeights); // [B·P, 4(K+1)]
    const clipped = E.reshape(clipPerImage(E.reshape(dec, [B, P * K1, 4]), batch), [B, P, K1, 4]);
    const boxes = E.reshape(E.narrow(clipped, 2, 1, K), [B * P * K, 4]); // background column dropped
    const sc = E.reshape(E.narrow(E.reshape(scoresAll, [B, P, K1]), 2, 1, K), [B, P * K]);
    const pv = E.reshape(E.expand(E.unsqueeze(p.valid, 2), [B, P, K]), [B, P * K]);
    const ok = E.mul(E.mul(E.cast(E.gt(sc, c.scoreThresh), 'f32'), E.reshape(E.cast(smallBoxesMask(boxes, 1e-2), 'f32'), [B, P * K])), pv);
    const scM = E.where(ok, sc, E.full([], -1));
    const C = Math.min(c.preNmsCandidates, P * K);
    const overflow = E.cast(E.clamp(E.sub(E.sum(ok, 1), C), 0), 'i32');
    const top = topk(scM, C); // [B, C]
    const labelsAll = cachedConstant(`labels:${P}x${K}`, () => E.fromArray(Int32Array.from({ length: P * K }, (_, j) => (j % K) + 1), [P * K], 'i32'));
    const D = Math.min(c.detectionsPerImage, C);
    const bL: Tensor[] = [], sL: Tensor[] = [], lL: Tensor[] = [], vL: Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const idx = E.reshape(E.narrow(top.indices, 0, b, 1), [C]);
      const sc_b = E.reshape(E.narrow(top.values, 0, b, 1), [C]);
      const box_b = E.indexSelect(E.narrow(boxes, 0, b * P * K, P * K), 0, idx);
      const lab_b = E.indexSelect(labelsAll, 0, idx);
      const keep = E.narrow(batchedNms(box_b, sc_b, lab_b, c.nmsThresh).keep, 0, 0, D);
      const has = E.ge(keep, 0);
      const k = E.where(has, keep, zeroI());
      const s = E.indexSelect(sc_b, 0, k);
      const v = E.mul(E.cast(has, 'f32'), E.cast(E.ge(s, 0), 'f32'));
      bL.push(E.where(E.unsqueeze(v, 1), E.indexSelect(box_b, 0, k), PAD()));
      sL.push(E.where(v, s, E.full([], -1)));
      lL.push(E.where(v, E.indexSelect(lab_b, 0, k), zeroI()));
      vL.push(v);
    }
    return { D, boxes: E.stack(bL, 0), scores: E.stack(sL, 0), labels: E.stack(lL, 0), valid: E.stack(vL, 0), overflow };
  });
}

export function initBoxHead(h: BoxHead): void {
  // torchvision keeps nn.Linear's default init for TwoMLPHead and FastRCNNPredictor; Detectron
  // uses normal(0.01) / normal(0.001) for the predictor, which trains faster from scratch.
  initParam(h.cls.weight, 'normal001'); initParam(h.cls.bias!, 'zeros');
  initParam(h.bbox.weight, 'normal0001'); initParam(h.bbox.bias!, 'zeros');
}

export function boxHeadFlops(channels: number, c: BoxHeadConfig, numClasses: number, rois: number): number {
  const inF = channels * c.poolSize * c.poolSize;
  return 2 * rois * (inF * c.representation + c.representation * c.representation + c.representation * numClasses * 5);
}
