// Conv modules on ./nn.ts's Module (torch state_dict names): Conv2d, ConvTranspose2d, BatchNorm2d,
// FrozenBatchNorm2d, MaxPool2d, Sequential, and torchvision's ResNet Bottleneck.
import { Tensor } from './tensor.ts';
import { Module, initTensor, fans } from './nn.ts';
import { full, zeros, relu } from './ops.ts';
import { conv2d, convTranspose2d, type ConvOpts, type ConvTOpts } from './ops-conv.ts';
import { addRelu, batchNorm, frozenBatchNorm, maxPool2d, type PoolOpts } from './ops-norm.ts';

export interface Layer { forward(x: Tensor): Tensor }

export class Conv2d extends Module implements Layer {
  readonly weight: Tensor; // [out, in/groups, k, k]
  readonly bias: Tensor | null;
  constructor(readonly inChannels: number, readonly outChannels: number, kernel: number | [number, number], readonly opts: ConvOpts & { bias?: boolean } = {}) {
    super();
    const [kh, kw] = typeof kernel === 'number' ? [kernel, kernel] : kernel;
    const shape = [outChannels, inChannels / (opts.groups ?? 1), kh, kw];
    this.weight = this.param('weight', initTensor(shape, 'kaimingUniform'));
    this.bias = opts.bias === false ? null : this.param('bias', initTensor([outChannels], 'kaimingUniform', { fanIn: fans(shape).fanIn }));
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.opts);
  }
}

export class ConvTranspose2d extends Module implements Layer {
  readonly weight: Tensor; // [in, out/groups, k, k]
  readonly bias: Tensor | null;
  constructor(readonly inChannels: number, readonly outChannels: number, kernel: number, readonly opts: ConvTOpts & { bias?: boolean } = {}) {
    super();
    const shape = [inChannels, outChannels / (opts.groups ?? 1), kernel, kernel];
    // torch computes fan_in of a transposed conv's weight from dim 1 (out/groups · k²).
    this.weight = this.param('weight', initTensor(shape, 'kaimingUniform', { fanIn: shape[1] * kernel * kernel }));
    this.bias = opts.bias === false ? null : this.param('bias', initTensor([outChannels], 'kaimingUniform', { fanIn: shape[1] * kernel * kernel }));
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, this.opts);
  }
}

export class BatchNorm2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly channels: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.param('weight', full([channels], 1));
    this.bias = this.param('bias', zeros([channels]));
    this.buffer('running_mean', zeros([channels]));
    this.buffer('running_var', full([channels], 1));
  }
  forward(x: Tensor): Tensor {
    return batchNorm(x, this.weight, this.bias, this.getBuffer('running_mean'), this.getBuffer('running_var'), { training: this.training, eps: this.eps, momentum: this.momentum });
  }
}

/** torchvision FrozenBatchNorm2d: all four tensors are buffers; eps 0 for the legacy COCO weights. */
export class FrozenBatchNorm2d extends Module implements Layer {
  constructor(readonly channels: number, readonly eps = 1e-5, readonly fusedRelu = false) {
    super();
    this.buffer('weight', full([channels], 1));
    this.buffer('bias', zeros([channels]));
    this.buffer('running_mean', zeros([channels]));
    this.buffer('running_var', full([channels], 1));
  }
  forward(x: Tensor): Tensor {
    const b = (n: string) => this.getBuffer(n);
    return frozenBatchNorm(x, b('weight'), b('bias'), b('running_mean'), b('running_var'), this.eps, this.fusedRelu);
  }
}

export class MaxPool2d extends Module implements Layer {
  constructor(readonly opts: PoolOpts) {
    super();
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.opts);
  }
}

export class ReLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** Children named "0", "1", ... as torch nn.Sequential. */
export class Sequential extends Module implements Layer {
  readonly layers: (Module & Layer)[];
  constructor(...layers: (Module & Layer)[]) {
    super();
    this.layers = layers.map((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, l) => l.forward(h), x);
  }
}

export type NormKind = 'batch' | 'frozen';

/**
 * torchvision Bottleneck (stride on the 3×3, "ResNet v1.5"): conv1 1×1 → bn → relu → conv2 3×3 →
 * bn → relu → conv3 1×1 (×4) → bn, + identity (or downsample: 1×1 stride conv + bn) → relu.
 */
export class Bottleneck extends Module implements Layer {
  readonly conv1: Conv2d; readonly bn1: Module & Layer;
  readonly conv2: Conv2d; readonly bn2: Module & Layer;
  readonly conv3: Conv2d; readonly bn3: Module & Layer;
  readonly downsample: Sequential | null;
  constructor(inplanes: number, planes: number, stride = 1, norm: NormKind = 'batch', eps = 1e-5) {
    super();
    const bn = (c: number) => (norm === 'batch' ? new BatchNorm2d(c, eps) : new FrozenBatchNorm2d(c, eps));
    this.conv1 = this.child('conv1', new Conv2d(inplanes, planes, 1, { bias: false }));
    this.bn1 = this.child('bn1', bn(planes));
    this.conv2 = this.child('conv2', new Conv2d(planes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.child('bn2', bn(planes));
    this.conv3 = this.child('conv3', new Conv2d(planes, planes * 4, 1, { bias: false }));
    this.bn3 = this.child('bn3', bn(planes * 4));
    this.downsample = stride !== 1 || inplanes !== planes * 4
      ? this.child('downsample', new Sequential(new Conv2d(inplanes, planes * 4, 1, { stride, bias: false }), bn(planes * 4)))
      : null;
  }
  forward(x: Tensor): Tensor {
    const h1 = relu(this.bn1.forward(this.conv1.forward(x)));
    const h2 = relu(this.bn2.forward(this.conv2.forward(h1)));
    const h3 = this.bn3.forward(this.conv3.forward(h2));
    return addRelu(h3, this.downsample ? this.downsample.forward(x) : x);
  }
}
