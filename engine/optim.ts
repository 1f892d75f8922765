// SGD with momentum and AdamW, per-group weight decay (no decay on bias/norm by default),
// learning-rate schedules (linear warmup + multi-step decay, as torchvision's detection recipe) and
// gradient clipping by total norm, all on the GPU: the clip norm never comes back to the CPU.
import { empty, fromArray, Tensor } from './tensor.ts';
import { runtime } from './runtime.ts';
import { assignInto, zeros } from './ops.ts';
import { adamwLaunch, clipCoefLaunch, sgdLaunch, sumSquaresLaunch } from '../kernels/optim.ts';
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
  /** 'step' (default): × gamma at each milestone (torchvision MultiStepLR); 'cosine': half-cosine from
   *  baseLr after warmup to 0 at totalIters (torchvision references' CosineAnnealingLR). */
  decay?: 'step' | 'cosine';
  /** Iterations of the whole run ('cosine' only). */
  totalIters?: number;
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
  const decay = s.decay ?? 'step';
  switch (decay) {
    case 'step': {
      const passed = (s.milestones ?? []).filter((m) => iter >= m).length;
      return lr * Math.pow(s.gamma ?? 0.1, passed);
    }
    case 'cosine': {
      const T = s.totalIters ?? 0;
      if (!(T > w)) throw new Error(`lrAt: cosine decay needs totalIters (${T}) > warmupIters (${w})`);
      const t = Math.min(Math.max(iter - w, 0) / (T - w), 1);
      return lr * 0.5 * (1 + Math.cos(Math.PI * t));
    }
  }
}

/** Optimizer state read back from a checkpoint, by the names state() gave. */
export type SavedOptimizerState = Map<string, { shape: number[]; data: Float32Array }>;

/** What a trainer needs from an optimizer; SGD and AdamW implement it. */
export interface Optimizer {
  readonly kind: 'sgd' | 'adamw';
  readonly groups: ParamGroup[];
  readonly schedule: LrSchedule;
  /** [totalNorm, clipCoef] of the last step, on the GPU (read it with the step's logged scalars). */
  readonly clipState: Tensor;
  /** Steps taken. The next step uses lrAt(schedule, iteration) and (AdamW) t = iteration + 1: set it when resuming. */
  iteration: number;
  /** Scheduled learning rate of the next step (before a group's lrScale). */
  readonly lr: number;
  /** One update from the current .grad of every parameter; parameters without grad are skipped. */
  step(): void;
  zeroGrad(): void;
  /** Per-parameter state on the GPU, named `<slot>.<param>` (SGD: momentum; AdamW: exp_avg, exp_avg_sq). Owned by the optimizer. */
  state(): [string, Tensor][];
  /** Replaces the whole per-parameter state with what state() saved (parameters absent from it restart from zero state). */
  loadState(saved: SavedOptimizerState): void;
  dispose(): void;
}

/** Total gradient norm and clip coefficient on the GPU (torch clip_grad_norm_), shared by the optimizers. */
class GpuGradClip {
  /** [totalNorm, clipCoef]; coef 1 when clipping is off (the norm is still computed, for logging). */
  readonly state: Tensor;
  private sums: Tensor | null = null;

  constructor(private readonly label: string) {
    this.state = zeros([2]).keep();
  }

  record(grads: Tensor[], maxNorm: number): void {
    const rt = runtime();
    const chunksOf = (n: number) => Math.max(1, Math.min(64, cdiv(n, 16384)));
    const slots = grads.reduce((s, g) => s + chunksOf(g.size), 0);
    if (!this.sums || this.sums.size < slots) {
      this.sums?.dispose();
      this.sums = empty([Math.max(slots, 1)], 'f32', `${this.label}-sumsq`).keep();
    }
    let slot = 0;
    for (const g of grads) {
      const c = chunksOf(g.size);
      rt.launch(sumSquaresLaunch(g.size, slot, c), [g.buffer, this.sums.buffer]);
      slot += c;
    }
    rt.launch(clipCoefLaunch(slots, maxNorm), [this.sums.buffer, this.state.buffer]);
  }

  dispose(): void {
    this.state.dispose();
    this.sums?.dispose();
  }
}

interface StepItem {
  name: string;
  p: Tensor;
  grad: Tensor;
  group: ParamGroup;
  /** This parameter's state buffers, in slot order (created at zero on first use). */
  bufs: Tensor[];
}

/** Parameter groups, schedule, clipping and named per-parameter state buffers; subclasses give the update kernel. */
abstract class GpuOptimizer implements Optimizer {
  abstract readonly kind: 'sgd' | 'adamw';
  readonly groups: ParamGroup[];
  readonly clipState: Tensor;
  iteration = 0;
  private readonly clip: GpuGradClip;
  /** slot → parameter → buffer. */
  private readonly bufs: Map<string, Map<Tensor, Tensor>>;

  constructor(groups: ParamGroup[], readonly schedule: LrSchedule, private readonly title: string, private readonly slotNames: string[], private readonly maxGradNorm: number) {
    this.groups = groups;
    const n = groups.reduce((s, g) => s + g.params.length, 0);
    if (n === 0) throw new Error(`${title}: no parameters`);
    this.bufs = new Map(slotNames.map((s) => [s, new Map()]));
    this.clip = new GpuGradClip(title.toLowerCase());
    this.clipState = this.clip.state;
  }

  get lr(): number {
    return lrAt(this.schedule, this.iteration);
  }

  /** Records the update of one parameter (lr already scaled by the group's lrScale). */
  protected abstract update(it: StepItem, lr: number): void;

  step(): void {
    const items: StepItem[] = [];
    const copies: Tensor[] = [];
    for (const group of this.groups) for (const [name, p] of group.params) {
      let grad = p.grad;
      if (!grad) continue;
      if (!p.isContiguous || p.offset !== 0 || grad.shape.join() !== p.shape.join()) {
        throw new Error(`${this.title}: parameter ${name} [${p.shape}] must be contiguous at offset 0 with a same-shaped grad [${grad.shape}]`);
      }
      // The kernels index whole buffers from 0; a leaf grad is contiguous but may be an offset view
      // (e.g. the slice concat's backward hands to its second input).
      if (grad.offset !== 0 || !grad.isContiguous) {
        const c = empty(grad.shape, 'f32', `${this.title}-grad-copy`);
        assignInto(c, grad);
        copies.push(c);
        grad = c;
      }
      items.push({ name, p, grad, group, bufs: this.slotNames.map((s) => this.buffer(s, p)) });
    }
    this.clip.record(items.map((x) => x.grad), this.maxGradNorm);
    const lr = this.lr;
    for (const it of items) this.update(it, lr * (it.group.lrScale ?? 1));
    // Recorded work runs in order, so the copies' buffers may go back to the pool now.
    for (const c of copies) c.dispose();
    this.iteration++;
  }

  private buffer(slot: string, p: Tensor): Tensor {
    const m = this.bufs.get(slot)!;
    let b = m.get(p);
    if (!b) {
      b = zeros(p.shape).keep();
      m.set(p, b);
    }
    return b;
  }

  /** Sets one parameter's buffer of one slot from host data (replacing any). */
  private setBuffer(slot: string, name: string, p: Tensor, s: { shape: number[]; data: Float32Array }): void {
    if (s.shape.join() !== p.shape.join()) throw new Error(`${this.title}.loadState: ${slot}.${name}: saved shape [${s.shape}] != parameter [${p.shape}]`);
    if (s.data.length !== p.size) throw new Error(`${this.title}.loadState: ${slot}.${name}: ${s.data.length} values for shape [${s.shape}]`);
    const m = this.bufs.get(slot)!;
    m.get(p)?.dispose();
    m.set(p, fromArray(s.data, p.shape).keep());
  }

  state(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const g of this.groups) for (const [name, p] of g.params) {
      for (const slot of this.slotNames) {
        const b = this.bufs.get(slot)!.get(p);
        if (b) out.push([`${slot}.${name}`, b]);
      }
    }
    return out;
  }

  loadState(saved: SavedOptimizerState): void {
    const params = new Map<string, Tensor>();
    for (const g of this.groups) for (const [name, p] of g.params) params.set(name, p);
    // Strict: an entry this optimizer does not keep means a checkpoint of another optimizer or model.
    for (const key of saved.keys()) {
      const dot = key.indexOf('.');
      if (dot < 0 || !this.slotNames.includes(key.slice(0, dot)) || !params.has(key.slice(dot + 1))) {
        throw new Error(`${this.title}.loadState: unexpected entry '${key}' (this optimizer keeps ${this.slotNames.map((s) => `${s}.<param>`).join(', ')} for its ${params.size} parameters)`);
      }
    }
    for (const [name] of params) {
      const have = this.slotNames.filter((s) => saved.has(`${s}.${name}`));
      if (have.length !== 0 && have.length !== this.slotNames.length) {
        throw new Error(`${this.title}.loadState: parameter ${name} has ${have.join(', ')} but not ${this.slotNames.filter((s) => !have.includes(s)).join(', ')}`);
      }
    }
    for (const m of this.bufs.values()) {
      for (const b of m.values()) b.dispose();
      m.clear();
    }
    for (const [name, p] of params) for (const slot of this.slotNames) {
      const s = saved.get(`${slot}.${name}`);
      if (s) this.setBuffer(slot, name, p, s);
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const [, p] of g.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {
    for (const m of this.bufs.values()) {
      for (const b of m.values()) b.dispose();
      m.clear();
    }
    this.clip.dispose();
  }
}

export interface SgdOptions {
  momentum?: number;
  nesterov?: boolean;
  /** Clip the total grad norm to this (torch clip_grad_norm_); 0 = off. */
  maxGradNorm?: number;
}

/** torch.optim.SGD (dampening 0); owns momentum buffers and the clip state (GPU lifetime). */
export class SGD extends GpuOptimizer {
  readonly kind = 'sgd' as const;

  constructor(groups: ParamGroup[], schedule: LrSchedule, readonly opts: SgdOptions = {}) {
    super(groups, schedule, 'SGD', ['momentum'], opts.maxGradNorm ?? 0);
  }

  protected update({ p, grad, group, bufs: [buf] }: StepItem, lr: number): void {
    runtime().launch(sgdLaunch(p.size, lr, this.opts.momentum ?? 0, group.weightDecay, !!this.opts.nesterov), [p.buffer, grad.buffer, buf.buffer, this.clipState.buffer]);
  }
}

export interface AdamWOptions {
  /** (β1, β2), default (0.9, 0.999) as torch. */
  betas?: [number, number];
  /** Default 1e-8 as torch. */
  eps?: number;
  /** Clip the total grad norm to this (torch clip_grad_norm_); 0 = off. */
  maxGradNorm?: number;
}

/**
 * torch.optim.AdamW (amsgrad=False, maximize=False) with per-group decoupled weight decay.
 * The step count t is iteration + 1 for every parameter (torch counts per parameter, which differs
 * only for parameters that had no grad in some earlier step); so resume needs only the buffers and
 * `iteration`.
 */
export class AdamW extends GpuOptimizer {
  readonly kind = 'adamw' as const;
  readonly betas: [number, number];
  readonly eps: number;

  constructor(groups: ParamGroup[], schedule: LrSchedule, readonly opts: AdamWOptions = {}) {
    super(groups, schedule, 'AdamW', ['exp_avg', 'exp_avg_sq'], opts.maxGradNorm ?? 0);
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new Error(`AdamW: betas (${b1}, ${b2}) must lie in [0, 1)`);
    if (!(this.eps >= 0)) throw new Error(`AdamW: eps ${this.eps} must be >= 0`);
  }

  protected update({ p, grad, group, bufs: [m, v] }: StepItem, lr: number): void {
    const launch = adamwLaunch(p.size, { lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: group.weightDecay, step: this.iteration + 1 });
    runtime().launch(launch, [p.buffer, grad.buffer, m.buffer, v.buffer, this.clipState.buffer]);
  }
}
