// Region Proposal Network (Ren et al. 2015) as torchvision/models/detection/rpn.py: a shared
// head over the FPN levels, anchors per level, per-level pre-NMS top-k, decode, clip, small-box
// removal, per-level NMS, post-NMS top-N per image; Matcher 0.7/0.3 with low-quality matches,
// balanced sampling, BCE + smooth-L1 normalised by the sampled count. Everything data-dependent
// (kept proposals, sampled anchors) stays on the GPU in fixed-capacity tensors with masks.
import * as E from '../engine/index.ts';
import { Conv2d } from '../engine/nn-conv.ts';
import { conv2dRelu } from '../engine/ops-conv.ts';
import { anchorsTorchvision, batchedNms, boxIou, decodeBoxes, encodeBoxes, matcher, sampler, segmentedTopk, smallBoxesMask } from '../engine/ops-detect.ts';
import { initParam } from './init.ts';
import type { ModelConfig, RpnConfig } from './config.ts';
import type { GpuBatch } from './transform.ts';

type Tensor = E.Tensor;

/** RPNHead: conv3×3 + ReLU (`conv.0.0`), then 1×1 `cls_logits` → A and `bbox_pred` → 4A. Init normal(0.01), bias 0. */
export class RPNHead extends E.Module {
  readonly convs: Conv2d[] = [];
  readonly cls: Conv2d;
  readonly bbox: Conv2d;
  constructor(channels: number, readonly anchorsPerLoc: number, convs: number) {
    super();
    const seq = this.child('conv', new E.Module());
    for (let i = 0; i < convs; i++) this.convs.push(seq.child(String(i), new E.Module()).child('0', new Conv2d(channels, channels, 3, { padding: 1 })));
    this.cls = this.child('cls_logits', new Conv2d(channels, anchorsPerLoc, 1));
    this.bbox = this.child('bbox_pred', new Conv2d(channels, 4 * anchorsPerLoc, 1));
    for (const c of [...this.convs, this.cls, this.bbox]) {
      initParam(c.weight, 'normal001');
      initParam(c.bias!, 'zeros');
    }
  }
  /** feature [B, C, H, W] → objectness [B, H·W·A] and deltas [B, H·W·A, 4] in (y, x, a) order. */
  forward(x: Tensor): { objectness: Tensor; deltas: Tensor } {
    let h = x;
    for (const c of this.convs) h = conv2dRelu(h, c.weight, c.bias, { padding: 1 });
    const [B, , H, W] = h.shape;
    const A = this.anchorsPerLoc;
    const o = this.cls.forward(h); // [B, A, H, W]
    const d = this.bbox.forward(h); // [B, 4A, H, W]
    // torchvision permute_and_flatten: (N, A, C, H, W) → (N, H, W, A, C)
    const objectness = E.reshape(E.permute(o, [0, 2, 3, 1]), [B, H * W * A]);
    const deltas = E.reshape(E.permute(E.reshape(d, [B, A, 4, H, W]), [0, 3, 4, 1, 2]), [B, H * W * A, 4]);
    return { objectness, deltas };
  }
}

export interface Proposals {
  boxes: Tensor; // [B, P, 4] in the resized image frame; invalid slots [0, 0, 1, 1]
  valid: Tensor; // f32 [B, P]
  scores: Tensor; // f32 [B, P] sigmoid objectness (invalid: -1)
}

export interface RpnLosses { objectness: Tensor; boxReg: Tensor }

/** Cached anchors per padded size and per-level constants (static per shape; kept across steps). */
interface LevelPlan { anchors: Tensor; levelLens: number[]; featSizes: [number, number][] }

export class RPN extends E.Module {
  readonly head: RPNHead;
  private readonly plans = new Map<string, LevelPlan>();
  private readonly consts = new Map<string, Tensor>();
  step = 0;

  constructor(channels: number, readonly cfg: RpnConfig, readonly model: ModelConfig) {
    super();
    this.head = this.child('head', new RPNHead(channels, cfg.aspectRatios[0].length * cfg.anchorSizes[0].length, cfg.headConvs));
  }

  private plan(Hp: number, Wp: number, feats: Tensor[]): LevelPlan {
    const featSizes = feats.map((f) => [f.shape[2], f.shape[3]] as [number, number]);
    const key = `${Hp}x${Wp}:${featSizes.join(';')}`;
    let p = this.plans.get(key);
    if (!p) {
      const A = this.head.anchorsPerLoc;
      const anchors = anchorsTorchvision([Hp, Wp], featSizes, this.cfg.anchorSizes, this.cfg.aspectRatios).keep();
      p = { anchors, levelLens: featSizes.map(([h, w]) => h * w * A), featSizes };
      this.plans.set(key, p);
    }
    return p;
  }

  /** Host-built constant (i32 level ids, per-image offsets…) cached by key. */
  private constant(key: string, make: () => Tensor): Tensor {
    let t = this.consts.get(key);
    if (!t) {
      t = make().keep();
      this.consts.set(key, t);
    }
    return t;
  }

  forward(feats: Tensor[], batch: GpuBatch, training: boolean): { proposals: Proposals; losses: RpnLosses | null } {
    const { B, Hp, Wp } = batch;
    const plan = this.plan(Hp, Wp, feats);
    const heads = feats.map((f) => this.head.forward(f));
    const objectness = heads.length === 1 ? heads[0].objectness : E.concat(heads.map((h) => h.objectness), 1); // [B, N]
    const deltas = heads.length === 1 ? heads[0].deltas : E.concat(heads.map((h) => h.deltas), 1); // [B, N, 4]
    const tag = E.tagNow();
    E.setTag(`${tag}_proposals`);
    const proposals = E.noGrad(() => this.filterProposals(objectness, deltas, plan, batch, training));
    E.setTag(`${tag}_targets`);
    const losses = training ? this.loss(objectness, deltas, plan, batch) : null;
    E.setTag(tag);
    return { proposals, losses };
  }

  /** torchvision RegionProposalNetwork.filter_proposals on fixed shapes. */
  private filterProposals(objectness: Tensor, deltas: Tensor, plan: LevelPlan, batch: GpuBatch, training: boolean): Proposals {
    const { B } = batch;
    const c = this.cfg;
    const preN = training ? c.preNmsTopNTrain : c.preNmsTopNTest;
    const idx = segmentedTopk(objectness, plan.levelLens, preN); // [B, T] per level, descending
    const T = idx.shape[1];
    const P = Math.min(training ? c.postNmsTopNTrain : c.postNmsTopNTest, T);
    const levelOfTop = this.constant(`lvl:${plan.levelLens}:${preN}`, () => {
      const l = new Int32Array(T);
      let at = 0;
      plan.levelLens.forEach((len, lv) => { const k = Math.min(preN, len); l.fill(lv, at, at + k); at += k; });
      return E.fromArray(l, [T], 'i32');
    });
    const objTop = E.gather(objectness, 1, idx); // [B, T]
    const deltasTop = E.gather(deltas, 1, E.expand(E.unsqueeze(idx, 2), [B, T, 4])); // [B, T, 4]
    const anchorsTop = E.indexSelect(plan.anchors, 0, E.reshape(idx, [B * T])); // [B·T, 4]
    const decoded = E.reshape(decodeBoxes(E.reshape(deltasTop, [B * T, 4]), anchorsTop), [B, T, 4]);
    const boxes = E.reshape(clipPerImage(decoded, batch), [B * T, 4]);
    const scores = E.sigmoid(E.reshape(objTop, [B * T]));
    const ok = E.mul(E.cast(smallBoxesMask(boxes, c.minSizePx), 'f32'), E.cast(E.ge(scores, c.scoreThresh), 'f32'));
    const scoresM = E.where(ok, scores, E.full([], -1)); // sigmoid >= 0, so -1 marks removed boxes
    const keeps: Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const r = batchedNms(E.narrow(boxes, 0, b * T, T), E.narrow(scoresM, 0, b * T, T), levelOfTop, c.nmsThresh);
      keeps.push(E.narrow(r.keep, 0, 0, P));
    }
    const keep = E.stack(keeps, 0); // [B, P] local indices in descending score order, then -1
    const offs = this.constant(`offs:${B}:${T}`, () => E.fromArray(Int32Array.from({ length: B }, (_, b) => b * T), [B, 1], 'i32'));
    const has = E.ge(keep, 0);
    const gidx = E.reshape(E.where(has, E.add(keep, offs), offs), [B * P]);
    const sel = E.indexSelect(scoresM, 0, gidx); // [B·P]
    const valid = E.reshape(E.mul(E.cast(has, 'f32'), E.reshape(E.cast(E.ge(sel, 0), 'f32'), [B, P])), [B, P]);
    const pb = E.reshape(E.indexSelect(boxes, 0, gidx), [B, P, 4]);
    const pad = this.constant('pad:1x1x4', () => E.fromArray([0, 0, 1, 1], [1, 1, 4]));
    return { boxes: E.where(E.unsqueeze(valid, 2), pb, pad), valid, scores: E.reshape(E.where(E.reshape(valid, [B * P]), sel, E.full([], -1)), [B, P]) };
  }

  /** torchvision RegionProposalNetwork.assign_targets_to_anchors + compute_loss. */
  private loss(objectness: Tensor, deltas: Tensor, plan: LevelPlan, batch: GpuBatch): RpnLosses {
    const t = batch.targets;
    if (!t) throw new Error('rpn: training needs targets');
    const c = this.cfg;
    const o = { cfg: c, step: this.step, mode: this.model.sampler };
    const { pos, sampled, regTargets } = E.noGrad(() => (targetsPath.impl === 'batched'
      ? anchorTargets(t.boxes, t.valid, plan.anchors, o, (k, make) => this.constant(k, make))
      : anchorTargetsPerImage(t.boxes, t.valid, plan.anchors, o)));
    const nSampled = E.clamp(E.sum(sampled), 1);
    const bce = E.bceWithLogits(objectness, pos, 'none');
    const objLoss = E.div(E.sum(E.where(sampled, bce, E.full([], 0))), nSampled);
    const l1 = E.smoothL1(deltas, regTargets, c.smoothL1Beta, 'none');
    const boxLoss = E.div(E.sum(E.where(E.unsqueeze(pos, 2), l1, E.full([], 0))), nSampled);
    return { objectness: objLoss, boxReg: boxLoss };
  }
}

/**
 * Which code computes the training targets (RPN anchor targets here, RoI sampling in
 * roi-heads.ts): 'batched' runs each op once for all images; 'perImage' is the per-image loop it
 * replaced, kept only so test/model-targets-batched.test.ts can prove the two bit-identical.
 */
export const targetsPath: { impl: 'batched' | 'perImage' } = { impl: 'batched' };

interface AnchorTargetOpts { cfg: RpnConfig; step: number; mode: ModelConfig['sampler'] }
interface AnchorTargets { pos: Tensor; sampled: Tensor; regTargets: Tensor }

/**
 * Anchor targets of all images at once: gtBoxes [B, G, 4] with gtValid f32 [B, G] (padding rows
 * 0), anchors [N, 4] shared → pos, sampled f32 [B, N]; regTargets [B, N, 4]. Each op is one
 * dispatch for the whole batch; image b samples with samplerSeed(step, b, 0).
 */
function anchorTargets(gtBoxes: Tensor, gtValid: Tensor, anchors: Tensor, o: AnchorTargetOpts, constant: (key: string, make: () => Tensor) => Tensor): AnchorTargets {
  const [B, G] = gtBoxes.shape;
  const N = anchors.shape[0];
  const c = o.cfg;
  const iou = E.where(E.unsqueeze(gtValid, 2), boxIou(gtBoxes, anchors), E.full([], -1)); // [B, G, N]; padding rows -1
  const m = matcher(iou, { high: c.fgIouThresh, low: c.bgIouThresh, allowLowQualityMatches: true });
  const seeds = Array.from({ length: B }, (_, b) => samplerSeed(o.step, b, 0));
  const s = sampler(m.labels, { batchSizePerImage: c.batchSizePerImage, positiveFraction: c.positiveFraction, seed: seeds, mode: o.mode });
  const gtOffs = constant(`gtOffs:${B}:${G}`, () => E.fromArray(Int32Array.from({ length: B }, (_, b) => b * G), [B, 1], 'i32'));
  const gidx = E.reshape(E.add(E.where(E.ge(m.matches, 0), m.matches, E.full([], 0, 'i32')), gtOffs), [B * N]); // row of [B·G] boxes
  const matchedGt = E.reshape(E.indexSelect(E.reshape(gtBoxes, [B * G, 4]), 0, gidx), [B, N, 4]);
  return { pos: E.cast(s.pos, 'f32'), sampled: E.cast(E.add(s.pos, s.neg), 'f32'), regTargets: encodeBoxes(matchedGt, anchors) };
}

/** anchorTargets as the per-image loop it replaced (same result bit for bit; test reference only). */
function anchorTargetsPerImage(gtBoxes: Tensor, gtValid: Tensor, anchors: Tensor, o: AnchorTargetOpts): AnchorTargets {
  const [B, G] = gtBoxes.shape;
  const c = o.cfg;
  const posL: Tensor[] = [], sampL: Tensor[] = [], regL: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const gt = E.reshape(E.narrow(gtBoxes, 0, b, 1), [G, 4]);
    const gv = E.reshape(E.narrow(gtValid, 0, b, 1), [G, 1]);
    const iou = E.where(gv, boxIou(gt, anchors), E.full([], -1)); // [G, N]; padding rows -1
    const m = matcher(iou, { high: c.fgIouThresh, low: c.bgIouThresh, allowLowQualityMatches: true });
    const s = sampler(m.labels, { batchSizePerImage: c.batchSizePerImage, positiveFraction: c.positiveFraction, seed: samplerSeed(o.step, b, 0), mode: o.mode });
    posL.push(E.cast(s.pos, 'f32'));
    sampL.push(E.cast(E.add(s.pos, s.neg), 'f32'));
    const matchedGt = E.indexSelect(gt, 0, E.where(E.ge(m.matches, 0), m.matches, E.full([], 0, 'i32')));
    regL.push(encodeBoxes(matchedGt, anchors));
  }
  return { pos: E.stack(posL, 0), sampled: E.stack(sampL, 0), regTargets: E.stack(regL, 0) }; // [B, N], [B, N], [B, N, 4]
}

/** Per-(step, image, stage) sampler seed: a pure function of the iteration, so resume is exact. */
export function samplerSeed(step: number, image: number, stage: number): number {
  return (Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(image + 1, 0x85ebca6b) ^ Math.imul(stage + 1, 0xc2b2ae35)) >>> 0;
}

/** clip_boxes_to_image per image: boxes [B, T, 4] into [0, W_b] × [0, H_b] of each image's resized size. */
export function clipPerImage(boxes: Tensor, batch: GpuBatch): Tensor {
  const B = boxes.shape[0];
  const hi = new Float32Array(B * 4);
  batch.sizes.forEach((s, b) => hi.set([s.widthPx, s.heightPx, s.widthPx, s.heightPx], b * 4));
  const bound = E.fromArray(hi, [B, 1, 4]);
  const out = E.minimum(E.clamp(boxes, 0), E.expand(bound, boxes.shape));
  bound.dispose();
  return out;
}

/** FLOPs of the RPN head over the levels (conv3×3 + two 1×1). */
export function rpnFlops(channels: number, anchorsPerLoc: number, convs: number, sizes: [number, number][]): number {
  return sizes.reduce((f, [h, w]) => f + 2 * h * w * channels * (convs * 9 * channels + 5 * anchorsPerLoc), 0);
}
