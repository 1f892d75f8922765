// One SGD training step of the model on a GPU batch: forward, losses, backward, optimizer, with
// every temporary freed by the enclosing tidy and no host sync. The named losses come back as one
// stacked tensor for the caller's single batched readback of logged scalars.
import * as E from '../engine/index.ts';
import { totalLoss, type LossName, type Losses, type MaskRCNN } from './mask-rcnn.ts';
import type { GpuBatch } from './transform.ts';

export interface StepOutput {
  /** Loss names in the order of `values`. */
  names: (LossName | 'loss' | 'grad_norm')[];
  /** f32 [names.length]: each loss, their sum, the gradient norm (kept; the caller disposes it after reading). */
  values: E.Tensor;
}

export type OptimizerKind = E.Optimizer['kind'];

export interface OptimizerOptions {
  lr: number;
  /** 'sgd' (default, torchvision's detection recipe: momentum 0.9) or 'adamw' (torch.optim.AdamW, betas 0.9/0.999). */
  kind?: OptimizerKind;
  momentum?: number; weightDecay?: number;
  warmupIters?: number; warmupFactor?: number; milestones?: number[]; gamma?: number;
  decay?: 'step' | 'cosine'; totalIters?: number;
  maxGradNorm?: number;
}

export function makeOptimizer(model: MaskRCNN, o: OptimizerOptions): E.Optimizer {
  const groups = E.defaultGroups(model.trainableParameters(), o.weightDecay ?? 1e-4);
  const schedule: E.LrSchedule = { baseLr: o.lr, warmupIters: o.warmupIters ?? 0, warmupFactor: o.warmupFactor ?? 1 / 1000, milestones: o.milestones ?? [], gamma: o.gamma ?? 0.1, decay: o.decay ?? 'step', totalIters: o.totalIters };
  const kind = o.kind ?? 'sgd';
  switch (kind) {
    case 'sgd': return new E.SGD(groups, schedule, { momentum: o.momentum ?? 0.9, maxGradNorm: o.maxGradNorm ?? 0 });
    case 'adamw': return new E.AdamW(groups, schedule, { maxGradNorm: o.maxGradNorm ?? 0 });
  }
}

export function trainStep(model: MaskRCNN, opt: E.Optimizer, batch: GpuBatch): StepOutput {
  model.train();
  return E.tidy(() => {
    opt.zeroGrad();
    const losses: Losses = model.forwardTrain(batch, opt.iteration);
    const total = totalLoss(losses, model.cfg.lossWeights);
    const names = [...(Object.keys(losses) as LossName[]), 'loss' as const, 'grad_norm' as const];
    // a detached copy of the scalars (no graph node): read back by the caller after the step
    const values = E.noGrad(() => E.concat([...Object.values(losses), total].map((t) => E.reshape(t!, [1])), 0));
    E.setTag('loss');
    E.backward(total);
    E.setTag('optimizer');
    opt.step();
    opt.zeroGrad();
    E.setTag(undefined);
    // + the total gradient norm before clipping (SGD computes it on the GPU; read with the losses)
    const out = E.noGrad(() => E.concat([values, E.narrow(opt.clipState, 0, 0, 1)], 0));
    out.keep();
    return { names, values: out };
  });
}
