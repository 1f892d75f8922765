// Mask branch (He et al. 2017; torchvision mask_rcnn.py MaskRCNNHeads + MaskRCNNPredictor):
// MultiScaleRoIAlign 14×14 → n × (conv3×3 + ReLU) → ConvTranspose 2×2/2 + ReLU → 1×1 to K+1 →
// 28×28 per class. Training on the positive sampled RoIs only (fixed capacity Q per image = the
// sampler's positive quota), targets = RoI Align of the matched GT mask (torchvision
// project_masks_on_boxes), BCE on the GT label's channel.
import * as E from '../engine/index.ts';
import { Conv2d, ConvTranspose2d } from '../engine/nn-conv.ts';
import { conv2dRelu } from '../engine/ops-conv.ts';
import { compact, multiScaleRoiAlign, roiAlign } from '../engine/ops-detect.ts';
import { makeNorm, type NormLayer } from './backbone.ts';
import { initParam } from './init.ts';
import { chunkedOverRois, POOL_SCALES, rowOffsets, type SampledRois } from './roi-heads.ts';
import { targetsPath } from './rpn.ts';
import type { MaskHeadConfig } from './config.ts';
import type { GpuTargets } from './transform.ts';

type Tensor = E.Tensor;

/** A conv3×3 + (norm) + ReLU stack named as torchvision's Conv2dNormActivation: `{i}.0` conv, `{i}.1` norm. */
export class ConvStack extends E.Module {
  readonly convs: Conv2d[] = [];
  readonly norms: (NormLayer | null)[] = [];
  constructor(inC: number, channels: number[], norm: 'none' | 'group', owner: E.Module, name: string, naming: 'convNormAct' | 'sequentialRelu') {
    super();
    const seq = owner.child(name, new E.Module());
    let c = inC;
    channels.forEach((out, i) => {
      // KeypointRCNNHeads is a flat Sequential(conv, ReLU, ...): convs at even indices
      const slot = naming === 'sequentialRelu' && norm === 'none' ? null : seq.child(String(naming === 'sequentialRelu' ? 2 * i : i), new E.Module());
      const conv = new Conv2d(c, out, 3, { padding: 1, bias: norm === 'none' });
      this.convs.push(slot ? slot.child('0', conv) : seq.child(String(2 * i), conv));
      this.norms.push(norm === 'group' && slot ? slot.child('1', makeNorm('group', out, 1e-5, 32)) : null);
      initParam(conv.weight, 'kaimingNormalFanOut');
      if (conv.bias) initParam(conv.bias, 'zeros');
      c = out;
    });
  }
  forward(x: Tensor): Tensor {
    let h = x;
    this.convs.forEach((c, i) => {
      const n = this.norms[i];
      h = n ? n.forwardAct(c.forward(h), true) : conv2dRelu(h, c.weight, c.bias, { padding: 1 });
    });
    return h;
  }
}

/** Positive rows of the sampled RoIs, Q per image (padding rows masked). */
export interface PositiveRois {
  Q: number;
  rois: Tensor; // [B·Q, 5]
  labels: Tensor; // i32 [B·Q] (0 on padding)
  gtIndex: Tensor; // i32 [B·Q] global GT row
  valid: Tensor; // f32 [B·Q]
}

/**
 * torchvision: positive proposals of the sampled set, in index order. `cap` per image (default:
 * the sampler's positive quota, so nothing can be dropped); `keep` f32 [B·S] further restricts the
 * rows (the keypoint head: positives whose GT has a visible keypoint — the others add exactly 0 to
 * keypointrcnn_loss, so skipping them changes nothing but the cost).
 */
export function selectPositives(s: SampledRois, B: number, positiveFraction: number, cap = 0, keep: Tensor | null = null): PositiveRois {
  const S = s.S;
  const quota = Math.max(1, Math.min(S, Math.floor(S * positiveFraction)));
  const Q = cap > 0 ? Math.min(cap, quota) : quota;
  return E.noGrad(() => {
    const rows = keep ? E.mul(s.pos, keep) : s.pos;
    if (targetsPath.impl === 'perImage') return selectPositivesPerImage(s, B, Q, rows);
    // one compaction for all images: positives of row b in index order, then -1
    const idx = E.narrow(compact(E.reshape(E.cast(rows, 'i32'), [B, S])).indices, 1, 0, Q); // [B, Q]
    const found = E.ge(idx, 0);
    const has = E.reshape(found, [B * Q]);
    const k = E.reshape(E.add(E.where(found, idx, E.full([], 0, 'i32')), rowOffsets(B, S)), [B * Q]);
    return {
      Q, rois: E.indexSelect(s.rois, 0, k), labels: E.where(has, E.indexSelect(s.labels, 0, k), E.full([], 0, 'i32')),
      gtIndex: E.indexSelect(s.gtIndex, 0, k), valid: E.cast(has, 'f32'),
    };
  });
}

/** The per-image loop selectPositives replaced: the reference of test/model-targets-batched.test.ts. */
function selectPositivesPerImage(s: SampledRois, B: number, Q: number, rows: Tensor): PositiveRois {
  const S = s.S;
  const rL: Tensor[] = [], lL: Tensor[] = [], gL: Tensor[] = [], vL: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const pos = E.cast(E.narrow(rows, 0, b * S, S), 'i32');
    const idx = E.narrow(compact(pos).indices, 0, 0, Q);
    const has = E.ge(idx, 0);
    const k = E.add(E.where(has, idx, E.full([], 0, 'i32')), E.full([], b * S, 'i32'));
    const v = E.cast(has, 'f32');
    rL.push(E.indexSelect(s.rois, 0, k));
    lL.push(E.where(has, E.indexSelect(s.labels, 0, k), E.full([], 0, 'i32')));
    gL.push(E.indexSelect(s.gtIndex, 0, k));
    vL.push(v);
  }
  return { Q, rois: E.concat(rL, 0), labels: E.concat(lL, 0), gtIndex: E.concat(gL, 0), valid: E.concat(vL, 0) };
}

export class MaskHead extends E.Module {
  readonly convs: ConvStack;
  readonly deconv: ConvTranspose2d;
  readonly logits: Conv2d;
  constructor(channels: number, readonly cfg: MaskHeadConfig, numClasses: number, parent: E.Module) {
    super();
    this.convs = new ConvStack(channels, cfg.convChannels, cfg.norm, parent, 'mask_head', 'convNormAct');
    const pred = parent.child('mask_predictor', new E.Module());
    const last = cfg.convChannels[cfg.convChannels.length - 1] ?? channels;
    this.deconv = pred.child('conv5_mask', new ConvTranspose2d(last, cfg.predictorChannels, 2, { stride: 2 }));
    this.logits = pred.child('mask_fcn_logits', new Conv2d(cfg.predictorChannels, numClasses, 1));
    for (const w of [this.deconv.weight, this.logits.weight]) initParam(w, 'kaimingNormalFanOut');
    initParam(this.deconv.bias!, 'zeros'); initParam(this.logits.bias!, 'zeros');
  }
  /** feats, rois [R, 5] → logits [R, K+1, 2P, 2P]. */
  forward(feats: Tensor[], rois: Tensor): Tensor {
    const P = this.cfg.poolSize;
    const widest = Math.max(this.cfg.predictorChannels * 4, ...this.cfg.convChannels, this.logits.outChannels * 4, feats[0].shape[1]);
    return chunkedOverRois(rois, widest * P * P * 4, (r) => {
      const x = multiScaleRoiAlign(feats.slice(0, 4), r, { outputSize: P, scales: POOL_SCALES, samplingRatio: this.cfg.samplingRatio, aligned: this.cfg.aligned });
      const h = E.relu(this.deconv.forward(this.convs.forward(x)));
      return this.logits.forward(h);
    });
  }
}

/** logits [R, K+1, M, M], labels i32 [R] → the label's channel [R, 1, M, M]. */
export function selectClassChannel(logits: Tensor, labels: Tensor): Tensor {
  const [R, , M] = logits.shape;
  return E.gather(logits, 1, E.expand(E.reshape(labels, [R, 1, 1, 1]), [R, 1, M, M]));
}

/** torchvision maskrcnn_loss: BCE over the positives' M×M targets (mean; 0 with no positives). */
export function maskLoss(logits: Tensor, pos: PositiveRois, t: GpuTargets, rule: MaskHeadConfig['targetRule']): Tensor {
  if (!t.masks || !t.maskIndex) throw new Error('mask head: training needs GT masks in the batch (the dataset has no segmentations?)');
  const M = logits.shape[2];
  const R = pos.rois.shape[0];
  const target = E.noGrad(() => {
    // project_masks_on_boxes: roi_align(gt_masks, (row, proposal), M, spatial_scale 1, sampling -1)
    const row = E.cast(E.indexSelect(t.maskIndex!, 0, pos.gtIndex), 'f32');
    const rois = E.concat([E.unsqueeze(row, 1), E.narrow(pos.rois, 1, 1, 4)], 1);
    const soft = roiAlign(t.masks!, rois, { outputSize: M, spatialScale: 1, samplingRatio: -1, aligned: false });
    return rule === 'soft' ? soft : E.cast(E.ge(soft, 0.5), 'f32');
  });
  const sel = selectClassChannel(logits, pos.labels);
  const l = E.where(E.reshape(pos.valid, [R, 1, 1, 1]), E.bceWithLogits(sel, target, 'none'), E.full([], 0));
  return E.div(E.sum(l), E.clamp(E.mul(E.sum(pos.valid), M * M), 1));
}

export function maskHeadFlops(channels: number, c: MaskHeadConfig, numClasses: number, rois: number): number {
  let f = 0, inC = channels;
  const P = c.poolSize;
  for (const out of c.convChannels) { f += 2 * 9 * inC * out * P * P; inC = out; }
  f += 2 * 4 * inC * c.predictorChannels * P * P + 2 * c.predictorChannels * numClasses * 4 * P * P;
  return f * rois;
}

