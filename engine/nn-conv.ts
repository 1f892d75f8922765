// Conv modules on ./nn.ts's Module (torch state_dict names): Conv2d, ConvTranspose2d, BatchNorm2d,
// FrozenBatchNorm2d, GroupNorm, MaxPool2d, Sequential, and torchvision's ResNet BasicBlock and
// Bottleneck.
import { Tensor } from './tensor.ts';
import { Module, initTensor, fans } from './nn.ts';
import { full, zeros, relu } from './ops.ts';
import { conv2d, convTranspose2d, type ConvOpts, type ConvTOpts } from './ops-conv.ts';
import { addRelu, batchNorm, frozenBatchNorm, groupNorm, maxPool2d, type PoolOpts } from './ops-norm.ts';

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

/** torch nn.GroupNorm (weight 1, bias 0); forwardRelu fuses the ReLU of conv → GN → ReLU. */
export class GroupNorm extends Module implements Layer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5, affine = true) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || numChannels % numGroups !== 0) throw new Error(`GroupNorm: numGroups ${numGroups} must divide numChannels ${numChannels}`);
    this.weight = affine ? this.param('weight', full([numChannels], 1)) : null;
    this.bias = affine ? this.param('bias', zeros([numChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    return this.forwardRelu(x, false);
  }
  forwardRelu(x: Tensor, relu = true): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, { eps: this.eps, relu });
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

export type NormKind = 'batch' | 'frozen' | 'group';

/** The norm layer of a ResNet block; `groups` is GroupNorm's group count (Detectron's GN models: 32). */
function makeNorm(kind: NormKind, channels: number, eps: number, groups: number): Module & Layer {
  switch (kind) {
    case 'batch': return new BatchNorm2d(channels, eps);
    case 'frozen': return new FrozenBatchNorm2d(channels, eps);
    case 'group': return new GroupNorm(groups, channels, eps);
  }
}

/** norm(x) then ReLU; GroupNorm and FrozenBN do both in one pass. */
const normRelu = (n: Module & Layer, x: Tensor) => {
  if (n instanceof GroupNorm) return n.forwardRelu(x);
  if (n instanceof FrozenBatchNorm2d) {
    const b = (k: string) => n.getBuffer(k);
    return frozenBatchNorm(x, b('weight'), b('bias'), b('running_mean'), b('running_var'), n.eps, true);
  }
  return relu(n.forward(x));
};

/** `downsample` = Sequential(1×1 stride conv, norm), torchvision's child names "0", "1". */
const shortcut = (inplanes: number, outplanes: number, stride: number, norm: (c: number) => Module & Layer) =>
  stride !== 1 || inplanes !== outplanes ? new Sequential(new Conv2d(inplanes, outplanes, 1, { stride, bias: false }), norm(outplanes)) : null;

/**
 * torchvision BasicBlock (ResNet-18/34): conv1 3×3 (stride) → bn → relu → conv2 3×3 → bn, + identity
 * (or downsample: 1×1 stride conv + bn) → relu.
 */
export class BasicBlock extends Module implements Layer {
  readonly conv1: Conv2d; readonly bn1: Module & Layer;
  readonly conv2: Conv2d; readonly bn2: Module & Layer;
  readonly downsample: Sequential | null;
  constructor(inplanes: number, planes: number, stride = 1, norm: NormKind = 'batch', eps = 1e-5, groups = 32) {
    super();
    const bn = (c: number) => makeNorm(norm, c, eps, groups);
    this.conv1 = this.child('conv1', new Conv2d(inplanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.child('bn1', bn(planes));
    this.conv2 = this.child('conv2', new Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    this.bn2 = this.child('bn2', bn(planes));
    const ds = shortcut(inplanes, planes, stride, bn);
    this.downsample = ds && this.child('downsample', ds);
  }
  forward(x: Tensor): Tensor {
    const h = normRelu(this.bn1, this.conv1.forward(x));
    const y = this.bn2.forward(this.conv2.forward(h));
    return addRelu(y, this.downsample ? this.downsample.forward(x) : x);
  }
}

/**
 * torchvision Bottleneck (stride on the 3×3, "ResNet v1.5"): conv1 1×1 → bn → relu → conv2 3×3 →
 * bn → relu → conv3 1×1 (×4) → bn, + identity (or downsample: 1×1 stride conv + bn) → relu.
 */
export class Bottleneck extends Module implements Layer {
  readonly conv1: Conv2d; readonly bn1: Module & Layer;
  readonly conv2: Conv2d; readonly bn2: Module & Layer;
  readonly conv3: Conv2d; readonly bn3: Module & Layer;
  readonly downsample: Sequential | null;
  constructor(inplanes: number, planes: number, stride = 1, norm: NormKind = 'batch', eps = 1e-5, groups = 32) {
    super();
    const bn = (c: number) => makeNorm(norm, c, eps, groups);
    this.conv1 = this.child('conv1', new Conv2d(inplanes, planes, 1, { bias: false }));
    this.bn1 = this.child('bn1', bn(planes));
    this.conv2 = this.child('conv2', new Conv2d(planes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.child('bn2', bn(planes));
    this.conv3 = this.child('conv3', new Conv2d(planes, planes * 4, 1, { bias: false }));
    this.bn3 = this.child('bn3', bn(planes * 4));
    const ds = shortcut(inplanes, planes * 4, stride, bn);
    this.downsample = ds && this.child('downsample', ds);
  }
  forward(x: Tensor): Tensor {
    const h1 = normRelu(this.bn1, this.conv1.forward(x));
    const h2 = normRelu(this.bn2, this.conv2.forward(h1));
    const h3 = this.bn3.forward(this.conv3.forward(h2));
    return addRelu(h3, this.downsample ? this.downsample.forward(x) : x);
  }
}
