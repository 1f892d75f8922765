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

export function makeOptimizer(model: MaskRCNN, o: { lr: number; momentum?: number; weightDecay?: number; warmupIters?: number; warmupFactor?: number; milestones?: number[]; gamma?: number; decay?: 'step' | 'cosine'; totalIters?: number; maxGradNorm?: number }): E.SGD {
  const groups = E.defaultGroups(model.trainableParameters(), o.weightDecay ?? 1e-4);
  return new E.SGD(groups, { baseLr: o.lr, warmupIters: o.warmupIters ?? 0, warmupFactor: o.warmupFactor ?? 1 / 1000, milestones: o.milestones ?? [], gamma: o.gamma ?? 0.1, decay: o.decay ?? 'step', totalIters: o.totalIters }, { momentum: o.momentum ?? 0.9, maxGradNorm: o.maxGradNorm ?? 0 });
}

export function trainStep(model: MaskRCNN, opt: E.SGD, batch: GpuBatch): StepOutput {
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
