// SGD with momentum, per-group weight decay (no decay on bias/norm by default), learning-rate
// schedules (linear warmup + multi-step decay, as torchvision's detection recipe) and gradient
// clipping by total norm, all on the GPU: the clip norm never comes back to the CPU.
import { empty, fromArray, Tensor } from './tensor.ts';
import { runtime } from './runtime.ts';
import { zeros } from './ops.ts';
import { clipCoefLaunch, sgdLaunch, sumSquaresLaunch } from '../kernels/optim.ts';
import { cdiv } from '../kernels/common.ts';

export interface ParamGroup {
  params: [string, Tensor][];
  weightDecay: number;
  /** Multiplies the scheduled learning rate (e.g. 2 for biases as Detectron's BIAS_LR_FACTOR). */
  lrScale?: number;
}

/** Default split: 1-D params (biases, norm weights) get no decay, as torchvision/detectron2 recipes. */
export function defaultGroups(named: [string, Tensor][], weightDecay: number): ParamGroup[] {
  const decay = named.filter(([, t]) => t.rank > 1);
  const noDecay = named.filter(([, t]) => t.rank <= 1);
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }];
}

export interface LrSchedule {
  baseLr: number;
  warmupIters?: number;
  /** torchvision: lr starts at baseLr·warmupFactor and rises linearly to baseLr over warmupIters. */
  warmupFactor?: number;
  milestones?: number[];
  gamma?: number;
}

/** Learning rate at iteration `iter` (0-based): pure function, so resume is exact. */
export function lrAt(s: LrSchedule, iter: number): number {
  let lr = s.baseLr;
  const w = s.warmupIters ?? 0;
  if (iter < w) {
    const alpha = iter / w;
    const f = s.warmupFactor ?? 1 / 1000;
    lr *= f * (1 - alpha) + alpha;
  }
  const passed = (s.milestones ?? []).filter((m) => iter >= m).length;
  return lr * Math.pow(s.gamma ?? 0.1, passed);
}

export interface SgdOptions {
  momentum?: number;
  nesterov?: boolean;
  /** Clip the total grad norm to this (torch clip_grad_norm_); 0 = off. */
  maxGradNorm?: number;
}

/** Owns momentum buffers and the clip state (GPU lifetime). */
export class SGD {
  readonly groups: ParamGroup[];
  private readonly momentumBufs = new Map<Tensor, Tensor>();
  /** [totalNorm, clipCoef] of the last step, on the GPU (read it with the step's logged scalars). */
  readonly clipState: Tensor;
  private sums: Tensor | null = null;
  iteration = 0;

  constructor(groups: ParamGroup[], readonly schedule: LrSchedule, readonly opts: SgdOptions = {}) {
    this.groups = groups;
    this.clipState = zeros([2]).keep();
    const n = groups.reduce((s, g) => s + g.params.length, 0);
    if (n === 0) throw new Error('SGD: no parameters');
  }

  get lr(): number {
    return lrAt(this.schedule, this.iteration);
  }

  /** One update from the current .grad of every parameter; parameters without grad are skipped. */
  step(): void {
    const rt = runtime();
    const all = this.groups.flatMap((g) => g.params.map(([name, p]) => ({ name, p, g })));
    const withGrad = all.filter((x) => x.p.grad);
    // Clip coefficient (and the norm, for logging) on the GPU.
    const chunksOf = (n: number) => Math.max(1, Math.min(64, cdiv(n, 16384)));
    const slots = withGrad.reduce((s, x) => s + chunksOf(x.p.size), 0);
    if (!this.sums || this.sums.size < slots) {
      this.sums?.dispose();
      this.sums = empty([Math.max(slots, 1)], 'f32', 'sgd-sumsq').keep();
    }
    let slot = 0;
    for (const { p } of withGrad) {
      const c = chunksOf(p.size);
      rt.launch(sumSquaresLaunch(p.size, slot, c), [p.grad!.buffer, this.sums.buffer]);
      slot += c;
    }
    rt.launch(clipCoefLaunch(slots, this.opts.maxGradNorm ?? 0), [this.sums.buffer, this.clipState.buffer]);
    const lr = this.lr;
    const m = this.opts.momentum ?? 0;
    for (const { name, p, g } of withGrad) {
      const grad = p.grad!;
      if (!p.isContiguous || p.offset !== 0 || grad.shape.join() !== p.shape.join()) throw new Error(`SGD: parameter ${name} [${p.shape}] must be contiguous with a same-shaped grad [${grad.shape}]`);
      let buf = this.momentumBufs.get(p);
      if (!buf) {
        buf = zeros(p.shape).keep();
        this.momentumBufs.set(p, buf);
      }
      rt.launch(sgdLaunch(p.size, lr * (g.lrScale ?? 1), m, g.weightDecay, !!this.opts.nesterov), [p.buffer, grad.buffer, buf.buffer, this.clipState.buffer]);
    }
    this.iteration++;
  }

  /** Momentum buffers by parameter name (checkpoints: exact resume needs them). */
  momentumState(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const g of this.groups) for (const [name, p] of g.params) {
      const b = this.momentumBufs.get(p);
      if (b) out.push([name, b]);
    }
    return out;
  }

  /** Restores momentum buffers saved by momentumState (same names and shapes). */
  loadMomentumState(state: Map<string, { shape: number[]; data: Float32Array }>): void {
    for (const g of this.groups) for (const [name, p] of g.params) {
      const s = state.get(name);
      if (!s) continue;
      if (s.shape.join() !== p.shape.join()) throw new Error(`SGD.loadMomentumState: ${name}: saved shape [${s.shape}] != parameter [${p.shape}]`);
      this.momentumBufs.get(p)?.dispose();
      this.momentumBufs.set(p, fromArray(s.data, p.shape).keep());
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const [, p] of g.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {
    for (const b of this.momentumBufs.values()) b.dispose();
    this.momentumBufs.clear();
    this.clipState.dispose();
    this.sums?.dispose();
  }
}
