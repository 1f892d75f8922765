// Keypoint branch (He et al. 2017 §5; torchvision keypoint_rcnn.py): MultiScaleRoIAlign 14×14 →
// n × (conv3×3 + ReLU) → ConvTranspose 4×4/2 (pad 1) to K maps at 28×28 → bilinear ×2 → 56×56.
// Loss = torchvision keypointrcnn_loss: per visible keypoint one integer target (the 56×56 cell
// that keypoints_to_heatmap assigns) and cross-entropy over the 3136 positions — no heatmaps.
import * as E from '../engine/index.ts';
import { ConvTranspose2d } from '../engine/nn-conv.ts';
import { upsampleBilinear } from '../engine/ops-conv.ts';
import { multiScaleRoiAlign } from '../engine/ops-detect.ts';
import { initParam } from './init.ts';
import { ConvStack, type PositiveRois } from './mask-head.ts';
import { chunkedOverRois, POOL_SCALES } from './roi-heads.ts';
import type { KeypointHeadConfig } from './config.ts';
import type { GpuTargets } from './transform.ts';

type Tensor = E.Tensor;

export class KeypointHead extends E.Module {
  readonly convs: ConvStack;
  readonly deconv: ConvTranspose2d;
  constructor(channels: number, readonly cfg: KeypointHeadConfig, parent: E.Module) {
    super();
    this.convs = new ConvStack(channels, cfg.convChannels, cfg.norm, parent, 'keypoint_head', 'sequentialRelu');
    const pred = parent.child('keypoint_predictor', new E.Module());
    const last = cfg.convChannels[cfg.convChannels.length - 1] ?? channels;
    this.deconv = pred.child('kps_score_lowres', new ConvTranspose2d(last, cfg.numKeypoints, 4, { stride: 2, padding: 1 }));
    initParam(this.deconv.weight, 'kaimingNormalFanOut');
    initParam(this.deconv.bias!, 'zeros');
  }
  /** feats, rois [R, 5] → logits [R, K, 4P, 4P] (56×56 for P = 14). */
  forward(feats: Tensor[], rois: Tensor): Tensor {
    const P = this.cfg.poolSize;
    const widest = Math.max(...this.cfg.convChannels, feats[0].shape[1], this.cfg.numKeypoints * 16);
    return chunkedOverRois(rois, widest * P * P * 4, (r) => {
      const x = multiScaleRoiAlign(feats.slice(0, 4), r, { outputSize: P, scales: POOL_SCALES, samplingRatio: this.cfg.samplingRatio, aligned: this.cfg.aligned });
      const low = this.deconv.forward(this.convs.forward(x));
      // torchvision KeypointRCNNPredictor: interpolate(scale_factor=2, bilinear, align_corners=False)
      return upsampleBilinear(low, null, 2, false);
    });
  }
}

/**
 * torchvision keypoints_to_heatmap on the GPU: for RoI r = (x1, y1, x2, y2) and keypoint (x, y, v),
 * cell = floor((x - x1) · S / (x2 - x1)) (x == x2 → S - 1), valid when 0 <= cell < S on both axes
 * and v > 0. Returns target i32 [R·K] (y·S + x, or -100 where invalid or on padding rows).
 */
export function keypointTargets(pos: PositiveRois, t: GpuTargets, S: number, K: number): Tensor {
  if (!t.keypoints) throw new Error('keypoint head: training needs GT keypoints in the batch (a keypoints dataset)');
  return E.noGrad(() => {
    const R = pos.rois.shape[0];
    const kp = E.indexSelect(E.reshape(t.keypoints!, [t.keypoints!.shape[0] * t.keypoints!.shape[1], K, 3]), 0, pos.gtIndex); // [R, K, 3]
    const col = (i: number) => E.reshape(E.narrow(pos.rois, 1, i, 1), [R, 1]);
    const [x1, y1, x2, y2] = [col(1), col(2), col(3), col(4)];
    const kx = E.reshape(E.narrow(kp, 2, 0, 1), [R, K]);
    const ky = E.reshape(E.narrow(kp, 2, 1, 1), [R, K]);
    const kv = E.reshape(E.narrow(kp, 2, 2, 1), [R, K]);
    const cell = (k: Tensor, lo: Tensor, hi: Tensor) => {
      const f = E.mul(E.sub(k, lo), E.div(E.full([], S), E.sub(hi, lo)));
      // floor for f >= 0 equals truncation; f < 0 is invalid below either way
      const i = E.where(E.eq(k, hi), E.full([], S - 1, 'i32'), E.cast(E.clamp(f, 0, S), 'i32'));
      const ok = E.mul(E.cast(E.ge(f, 0), 'f32'), E.cast(E.lt(i, S), 'f32'));
      return { i, ok };
    };
    const cx = cell(kx, x1, x2), cy = cell(ky, y1, y2);
    const valid = E.mul(E.mul(E.mul(cx.ok, cy.ok), E.cast(E.gt(kv, 0), 'f32')), E.unsqueeze(pos.valid, 1));
    const lin = E.add(E.mul(cy.i, E.full([], S, 'i32')), cx.i);
    return E.reshape(E.where(valid, lin, E.full([], -100, 'i32')), [R * K]);
  });
}

/** f32 [B·S]: 1 where the sampled row's matched GT has a visible keypoint (v > 0). */
export function rowsWithKeypoints(gtIndex: Tensor, t: GpuTargets, K: number): Tensor {
  return E.noGrad(() => {
    const kp = t.keypoints!;
    const vis = E.reshape(E.narrow(E.reshape(kp, [kp.shape[0] * kp.shape[1], K, 3]), 2, 2, 1), [kp.shape[0] * kp.shape[1], K]);
    const any = E.cast(E.gt(E.sum(E.cast(E.gt(vis, 0), 'f32'), 1), 0), 'f32'); // [B·G]
    return E.indexSelect(any, 0, gtIndex);
  });
}

/** torchvision keypointrcnn_loss: cross-entropy over S² positions, mean over valid keypoints (0 if none). */
export function keypointLoss(logits: Tensor, target: Tensor): Tensor {
  const [R, K, S] = logits.shape;
  const flat = E.reshape(logits, [R * K, S * S]);
  const n = E.sum(E.cast(E.ge(target, 0), 'f32'));
  return E.div(E.crossEntropy(flat, target, { ignoreIndex: -100, reduction: 'sum' }), E.clamp(n, 1));
}

export function keypointHeadFlops(channels: number, c: KeypointHeadConfig, rois: number): number {
  let f = 0, inC = channels;
  const P = c.poolSize;
  for (const out of c.convChannels) { f += 2 * 9 * inC * out * P * P; inC = out; }
  f += 2 * 16 * inC * c.numKeypoints * P * P;
  return f * rois;
}
