// Module tree with named parameters and buffers (torch state_dict names, for weight loading),
// parameter init, and Linear. A Module owns its parameters' GPU lifetime (dispose()).
import { Tensor, fromArray } from './tensor.ts';
import { noGrad } from './autograd.ts';
import { add, assignInto, full, transpose, zeros } from './ops.ts';
import { matmul, randn, rand } from './ops-nn.ts';

export type InitKind = 'kaimingUniform' | 'kaimingNormal' | 'normal' | 'zeros' | 'ones';

/** fan_in / fan_out as torch: dims 0/1 times the receptive field (dims 2..). */
export function fans(shape: number[]): { fanIn: number; fanOut: number } {
  const rf = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: (shape[1] ?? 1) * rf, fanOut: shape[0] * rf };
}

/**
 * New parameter tensor. kaimingUniform with a = sqrt(5) is torch's Linear/Conv default
 * (bound = 1/sqrt(fan_in)); kaimingNormal is fan_out/relu (torchvision ResNet convs).
 */
export function initTensor(shape: number[], kind: InitKind, opts: { std?: number; fanIn?: number } = {}): Tensor {
  return noGrad(() => {
    switch (kind) {
      case 'zeros': return zeros(shape);
      case 'ones': return full(shape, 1);
      case 'normal': return randn(shape, 0, opts.std ?? 0.01);
      case 'kaimingUniform': {
        const bound = 1 / Math.sqrt(opts.fanIn ?? fans(shape).fanIn);
        return rand(shape, -bound, bound);
      }
      case 'kaimingNormal': return randn(shape, 0, Math.sqrt(2 / fans(shape).fanOut));
    }
  });
}

export class Module {
  training = true;
  private readonly paramMap = new Map<string, Tensor>();
  private readonly bufferMap = new Map<string, Tensor>();
  private readonly childMap = new Map<string, Module>();

  /** Registers a trainable parameter (kept out of tidy scopes, requiresGrad). */
  param(name: string, t: Tensor): Tensor {
    t.keep();
    t.requiresGrad = true;
    this.paramMap.set(name, t);
    return t;
  }
  /** Registers non-trainable state saved in the state dict (e.g. running_mean). */
  buffer(name: string, t: Tensor): Tensor {
    t.keep();
    this.bufferMap.set(name, t);
    return t;
  }
  /** Replaces a buffer's tensor (running stats updates); disposes the old one. */
  setBuffer(name: string, t: Tensor): void {
    const old = this.bufferMap.get(name);
    t.keep();
    this.bufferMap.set(name, t);
    if (old && old !== t) old.dispose();
  }
  getBuffer(name: string): Tensor {
    const t = this.bufferMap.get(name);
    if (!t) throw new Error(`module: no buffer ${name}`);
    return t;
  }
  child<M extends Module>(name: string, m: M): M {
    this.childMap.set(name, m);
    return m;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.paramMap) out.push([prefix + n, t]);
    for (const [n, c] of this.childMap) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.bufferMap) out.push([prefix + n, t]);
    for (const [n, c] of this.childMap) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }
  /** Parameters and buffers by torch-style dotted names. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values in by name. `strict` requires every own key to be present; unknown keys and
   * shape mismatches are errors naming the key and both shapes.
   */
  loadStateDict(entries: Map<string, { shape: number[]; data: ArrayLike<number> }>, strict = true): void {
    const own = this.stateDict();
    for (const [k, v] of entries) {
      const t = own.get(k);
      if (!t) throw new Error(`loadStateDict: unexpected key ${k} [${v.shape}]`);
      if (t.shape.join() !== v.shape.join()) throw new Error(`loadStateDict: ${k}: checkpoint shape [${v.shape}] != model shape [${t.shape}]`);
    }
    if (strict) {
      const missing = [...own.keys()].filter((k) => !entries.has(k));
      if (missing.length) throw new Error(`loadStateDict: missing keys: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` (+${missing.length - 8})` : ''}`);
    }
    for (const [k, v] of entries) {
      const t = own.get(k)!;
      const src = fromArray(v.data, v.shape, t.dtype);
      // Writes into the parameter's own storage, so optimizers holding it see the new values.
      noGrad(() => assignInto(t, src));
      src.dispose();
    }
  }

  train(on = true): this {
    this.training = on;
    for (const c of this.childMap.values()) c.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  dispose(): void {
    for (const t of this.paramMap.values()) t.dispose();
    for (const t of this.bufferMap.values()) t.dispose();
    for (const c of this.childMap.values()) c.dispose();
  }
}


export class Linear extends Module {
  readonly weight: Tensor; // [out, in]
  readonly bias: Tensor | null; // [out]
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true, init: InitKind = 'kaimingUniform') {
    super();
    this.weight = this.param('weight', initTensor([outFeatures, inFeatures], init));
    this.bias = bias ? this.param('bias', init === 'kaimingUniform' ? initTensor([outFeatures], 'kaimingUniform', { fanIn: inFeatures }) : initTensor([outFeatures], 'zeros')) : null;
  }
  /** x: [..., in] → [..., out] (transposed weight is a strided view, no copy). */
  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) throw new Error(`Linear: input [${x.shape}] last dim != in_features ${this.inFeatures}`);
    const y = matmul(x, transpose(this.weight));
    return this.bias ? add(y, this.bias) : y;
  }
}
