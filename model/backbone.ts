// ResNet body in torchvision's convention (He et al. 2016; "v1.5": the stride sits on the 3×3,
// torchvision/models/resnet.py), with the norm selectable (frozen BN / train BN / GroupNorm) and
// torchvision's trainable_backbone_layers freezing. Module names equal torchvision's state-dict
// keys (`backbone.body.layer1.0.conv1.weight`), so its weights load by name.
import * as E from '../engine/index.ts';
import { BasicBlock, Bottleneck, Conv2d, FrozenBatchNorm2d, BatchNorm2d, GroupNorm, MaxPool2d } from '../engine/nn-conv.ts';
import { frozenBatchNorm } from '../engine/ops-conv.ts';
import { DEFAULT_BLOCKS, isBottleneck, type BackboneConfig, type NormKind } from './config.ts';

type Tensor = E.Tensor;

/** A norm layer that can fuse the following ReLU (FrozenBN and GroupNorm do it in one kernel). */
export interface NormLayer extends E.Module { forwardAct(x: Tensor, relu: boolean): Tensor }

class FrozenNorm extends FrozenBatchNorm2d implements NormLayer {
  forwardAct(x: Tensor, relu: boolean): Tensor {
    const b = (n: string) => this.getBuffer(n);
    return frozenBatchNorm(x, b('weight'), b('bias'), b('running_mean'), b('running_var'), this.eps, relu);
  }
}

class BatchNormAct extends BatchNorm2d implements NormLayer {
  forwardAct(x: Tensor, relu: boolean): Tensor {
    const y = this.forward(x);
    return relu ? E.relu(y) : y;
  }
}

class GroupNormAct extends GroupNorm implements NormLayer {
  forwardAct(x: Tensor, relu: boolean): Tensor {
    return this.forwardRelu(x, relu);
  }
}

export function makeNorm(kind: NormKind, channels: number, eps: number, groups: number): NormLayer {
  switch (kind) {
    case 'frozen': return new FrozenNorm(channels, eps);
    case 'batch': return new BatchNormAct(channels, eps);
    case 'group': {
      // the largest group count <= `groups` that divides the channels (e.g. 48 channels, 32 → 24)
      let g = Math.min(groups, channels);
      while (channels % g) g--;
      return new GroupNormAct(g, channels, eps);
    }
  }
}

/**
 * ResNet body returning C2..C5 (torchvision IntermediateLayerGetter over layer1..layer4).
 * x: [N, 3, H, W] → [C2 /4, C3 /8, C4 /16, C5 /32].
 */
export class ResNetBody extends E.Module {
  readonly conv1: Conv2d;
  readonly bn1: NormLayer;
  readonly layers: (BasicBlock | Bottleneck)[][] = [];
  /** Channels of C2..C5. */
  readonly outChannels: number[];
  private readonly pool = new MaxPool2d({ kernel: 3, stride: 2, padding: 1 });

  constructor(readonly cfg: BackboneConfig) {
    super();
    const w = cfg.baseWidth;
    const norm = (c: number) => makeNorm(cfg.norm, c, cfg.normEps, cfg.groups);
    this.conv1 = this.child('conv1', new Conv2d(3, w, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.child('bn1', norm(w));
    const bottleneck = isBottleneck(cfg.depth);
    const expansion = bottleneck ? 4 : 1;
    const blocks = cfg.blocks ?? DEFAULT_BLOCKS[cfg.depth];
    let inC = w;
    this.outChannels = [];
    for (let s = 0; s < 4; s++) {
      const planes = w * 2 ** s;
      const layer = this.child(`layer${s + 1}`, new E.Module());
      const list: (BasicBlock | Bottleneck)[] = [];
      for (let b = 0; b < blocks[s]; b++) {
        const stride = b === 0 && s > 0 ? 2 : 1;
        // engine/nn-conv.ts blocks: torchvision's layout and child names (conv1, bn1, …, downsample.0/1)
        const blk = bottleneck ? new Bottleneck(inC, planes, stride, cfg.norm, cfg.normEps, cfg.groups) : new BasicBlock(inC, planes, stride, cfg.norm, cfg.normEps, cfg.groups);
        list.push(layer.child(String(b), blk));
        inC = planes * expansion;
      }
      this.layers.push(list);
      this.outChannels.push(inC);
    }
    this.freeze(cfg.trainableLayers);
  }

  /** torchvision resnet_fpn_backbone: layers_to_train = [layer4, layer3, layer2, layer1, conv1][:k] (+ bn1 when k = 5). */
  private freeze(k: number): void {
    const train = ['layer4', 'layer3', 'layer2', 'layer1', 'conv1'].slice(0, k);
    if (k === 5) train.push('bn1');
    for (const [name, t] of this.namedParameters()) {
      if (!train.some((p) => name.startsWith(p))) t.requiresGrad = false;
    }
  }

  forward(x: Tensor): Tensor[] {
    if (x.rank !== 4 || x.shape[1] !== 3) throw new Error(`backbone: images must be [N, 3, H, W], got [${x.shape}]`);
    let h = this.bn1.forwardAct(this.conv1.forward(x), true);
    h = this.pool.forward(h);
    const outs: Tensor[] = [];
    for (const layer of this.layers) {
      for (const b of layer) h = b.forward(h);
      outs.push(h);
    }
    return outs;
  }
}

/** FLOPs (multiply-adds × 2) of the body's convs for an H×W input: the model README's budget table. */
export function resnetFlops(cfg: BackboneConfig, H: number, W: number): number {
  const conv = (cin: number, cout: number, k: number, ho: number, wo: number) => 2 * cin * cout * k * k * ho * wo;
  const w = cfg.baseWidth;
  let h = Math.ceil(H / 2), ww = Math.ceil(W / 2);
  let f = conv(3, w, 7, h, ww);
  h = Math.ceil(h / 2); ww = Math.ceil(ww / 2);
  const bottleneck = isBottleneck(cfg.depth);
  const blocks = cfg.blocks ?? DEFAULT_BLOCKS[cfg.depth];
  let inC = w;
  for (let s = 0; s < 4; s++) {
    const planes = w * 2 ** s;
    for (let b = 0; b < blocks[s]; b++) {
      const stride = b === 0 && s > 0 ? 2 : 1;
      const ho = Math.ceil(h / stride), wo = Math.ceil(ww / stride);
      if (bottleneck) f += conv(inC, planes, 1, h, ww) + conv(planes, planes, 3, ho, wo) + conv(planes, planes * 4, 1, ho, wo);
      else f += conv(inC, planes, 3, ho, wo) + conv(planes, planes, 3, ho, wo);
      const outC = planes * (bottleneck ? 4 : 1);
      if (stride !== 1 || inC !== outC) f += conv(inC, outC, 1, ho, wo);
      inC = outC; h = ho; ww = wo;
    }
  }
  return f;
}
