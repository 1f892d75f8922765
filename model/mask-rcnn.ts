// Mask R-CNN / Keypoint R-CNN (GeneralizedRCNN): backbone + FPN → RPN → RoI heads (box, and
// optionally mask and keypoint branches, which may all be present together as in Detectron).
// Module tree = torchvision's state-dict names (backbone.body.*, backbone.fpn.*, rpn.head.*,
// roi_heads.box_head.*, roi_heads.mask_head.*, roi_heads.keypoint_head.*), so its weights load.
import * as E from '../engine/index.ts';
import { ResNetBody, resnetFlops } from './backbone.ts';
import { FPN, fpnFlops } from './fpn.ts';
import { RPN, rpnFlops, type Proposals } from './rpn.ts';
import { BoxHead, boxHeadFlops, fastrcnnLoss, initBoxHead, postprocessDetections, selectTrainingSamples, toRois, type Detections } from './roi-heads.ts';
import { MaskHead, maskHeadFlops, maskLoss, selectClassChannel, selectPositives } from './mask-head.ts';
import { KeypointHead, keypointHeadFlops, keypointLoss, keypointTargets, rowsWithKeypoints } from './keypoint-head.ts';
import { validateConfig, type ModelConfig } from './config.ts';
import type { GpuBatch } from './transform.ts';

type Tensor = E.Tensor;

/** torchvision's loss names. */
export type LossName = 'loss_objectness' | 'loss_rpn_box_reg' | 'loss_classifier' | 'loss_box_reg' | 'loss_mask' | 'loss_keypoint';
export type Losses = Partial<Record<LossName, Tensor>>;

/** Phases timed by the benchmark (in execution order). */
export type Phase = 'backbone' | 'fpn' | 'rpn' | 'roi_box' | 'roi_mask' | 'roi_keypoint';

/** GPU outputs of inference before the single readback (postprocess.ts reads them). */
export interface RawDetections extends Detections {
  /** [B·D, 28, 28] sigmoid probabilities of the predicted class, or null without a mask head. */
  maskProbs: Tensor | null;
  /** [B·D, K, 56, 56] keypoint logits, or null without a keypoint head. */
  keypointLogits: Tensor | null;
}

export class MaskRCNN extends E.Module {
  readonly body: ResNetBody;
  readonly fpn: FPN;
  readonly rpn: RPN;
  readonly boxHead: BoxHead;
  readonly maskHead: MaskHead | null;
  readonly keypointHead: KeypointHead | null;
  /** Optional per-phase hook (bench: GPU timestamps between phases); never reads back. */
  onPhase: ((p: Phase) => void) | null = null;

  constructor(readonly cfg: ModelConfig) {
    super();
    validateConfig(cfg);
    const backbone = this.child('backbone', new E.Module());
    this.body = backbone.child('body', new ResNetBody(cfg.backbone));
    this.fpn = backbone.child('fpn', new FPN(this.body.outChannels, cfg.fpn));
    const C = cfg.fpn.outChannels;
    this.rpn = this.child('rpn', new RPN(C, cfg.rpn, cfg));
    const roi = this.child('roi_heads', new E.Module());
    this.boxHead = new BoxHead(C, cfg.box, cfg.numClasses, roi);
    initBoxHead(this.boxHead);
    this.maskHead = cfg.mask ? new MaskHead(C, cfg.mask, cfg.numClasses, roi) : null;
    this.keypointHead = cfg.keypoint ? new KeypointHead(C, cfg.keypoint, roi) : null;
  }

  /** Parameters that train (frozen backbone layers and FrozenBN buffers excluded). */
  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  /** Marks the start of a phase: dispatches (and, through autograd, their backward) are tagged with it. */
  private phase(p: Phase): void {
    E.setTag(p);
    this.onPhase?.(p);
  }

  features(images: Tensor): Tensor[] {
    this.phase('backbone');
    const cs = this.body.forward(images);
    this.phase('fpn');
    return this.fpn.forward(cs);
  }

  /** Training forward: the named losses (scalars on the GPU). `step` seeds the samplers. */
  forwardTrain(batch: GpuBatch, step: number): Losses {
    if (!batch.targets) throw new Error('MaskRCNN.forwardTrain: the batch has no targets');
    const feats = this.features(batch.images);
    this.phase('rpn');
    this.rpn.step = step;
    const { proposals, losses: rpnL } = this.rpn.forward(feats, batch, true);
    this.phase('roi_box');
    const s = selectTrainingSamples(proposals, batch, this.cfg.box, this.cfg, step);
    const { logits, deltas } = this.boxHead.forward(feats, s.rois);
    const box = fastrcnnLoss(logits, deltas, s, this.cfg.box.smoothL1Beta);
    const out: Losses = { loss_objectness: rpnL!.objectness, loss_rpn_box_reg: rpnL!.boxReg, loss_classifier: box.classifier, loss_box_reg: box.boxReg };
    const frac = this.cfg.box.positiveFraction;
    if (this.maskHead) {
      this.phase('roi_mask');
      const pos = selectPositives(s, batch.B, frac, this.cfg.mask!.roisPerImage ?? 0);
      out.loss_mask = maskLoss(this.maskHead.forward(feats, pos.rois), pos, batch.targets, this.cfg.mask!.targetRule);
    }
    if (this.keypointHead) {
      this.phase('roi_keypoint');
      const K = this.cfg.keypoint!.numKeypoints;
      const pos = selectPositives(s, batch.B, frac, this.cfg.keypoint!.roisPerImage ?? 0, rowsWithKeypoints(s.gtIndex, batch.targets, K));
      const kl = this.keypointHead.forward(feats, pos.rois);
      out.loss_keypoint = keypointLoss(kl, keypointTargets(pos, batch.targets, kl.shape[2], K));
    }
    return out;
  }

  /** Inference up to the GPU outputs (no readback): detections [B, D] plus mask probs / keypoint logits. */
  forwardInfer(batch: GpuBatch): RawDetections & { proposals: Proposals } {
    return E.noGrad(() => {
      const feats = this.features(batch.images);
      this.phase('rpn');
      const { proposals } = this.rpn.forward(feats, batch, false);
      this.phase('roi_box');
      const P = proposals.boxes.shape[1];
      const { logits, deltas } = this.boxHead.forward(feats, toRois(proposals.boxes, batch.B, P));
      const det = postprocessDetections(logits, deltas, proposals, batch, this.cfg.box);
      const rois = toRois(det.boxes, batch.B, det.D);
      let maskProbs: Tensor | null = null;
      let keypointLogits: Tensor | null = null;
      if (this.maskHead) {
        this.phase('roi_mask');
        const ml = this.maskHead.forward(feats, rois);
        const lab = E.reshape(det.labels, [batch.B * det.D]);
        const M = ml.shape[2];
        maskProbs = E.reshape(E.sigmoid(selectClassChannel(ml, lab)), [batch.B * det.D, M, M]);
      }
      if (this.keypointHead) {
        this.phase('roi_keypoint');
        keypointLogits = this.keypointHead.forward(feats, rois);
      }
      return { ...det, maskProbs, keypointLogits, proposals };
    });
  }

  /** FLOPs per image of each part for an Hp×Wp input (forward; backward ≈ 2×): the README's budget table. */
  flopsPerImage(Hp: number, Wp: number): Record<'backbone' | 'fpn' | 'rpn' | 'box_head' | 'mask_head' | 'keypoint_head', number> {
    const c = this.cfg;
    const sizes: [number, number][] = [4, 8, 16, 32].map((s) => [Math.ceil(Hp / s), Math.ceil(Wp / s)]);
    const all: [number, number][] = [...sizes, [Math.ceil(Hp / 64), Math.ceil(Wp / 64)]];
    const C = c.fpn.outChannels;
    const S = c.box.batchSizePerImage;
    const quota = Math.floor(S * c.box.positiveFraction);
    const cap = (n: number | undefined) => (n ? Math.min(n, quota) : quota);
    return {
      backbone: resnetFlops(c.backbone, Hp, Wp),
      fpn: fpnFlops(this.body.outChannels, C, sizes),
      rpn: rpnFlops(C, this.rpn.head.anchorsPerLoc, c.rpn.headConvs, all),
      box_head: boxHeadFlops(C, c.box, c.numClasses, S),
      mask_head: c.mask ? maskHeadFlops(C, c.mask, c.numClasses, cap(c.mask.roisPerImage)) : 0,
      keypoint_head: c.keypoint ? keypointHeadFlops(C, c.keypoint, cap(c.keypoint.roisPerImage)) : 0,
    };
  }
}

/** Sum of the losses, each × its `lossWeights` entry (1 when absent). */
export function totalLoss(l: Losses, weights: ModelConfig['lossWeights'] = {}): Tensor {
  const parts = (Object.entries(l) as [LossName, Tensor | undefined][]).filter((e): e is [LossName, Tensor] => !!e[1])
    .map(([name, t]) => (weights[name] === undefined || weights[name] === 1 ? t : E.mul(t, weights[name]!)));
  return parts.reduce((a, b) => E.add(a, b));
}
