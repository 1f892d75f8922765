// Feature Pyramid Network (Lin et al. 2017) as torchvision.ops.FeaturePyramidNetwork with
// LastLevelMaxPool: 1×1 laterals, nearest top-down upsampling to each lateral's size, 3×3 outputs,
// and `pool` = max_pool2d(P5, kernel 1, stride 2). Keys: backbone.fpn.inner_blocks.{i}.0.weight.
import * as E from '../engine/index.ts';
import { Conv2d } from '../engine/nn-conv.ts';
import { maxPool2d, upsampleNearest } from '../engine/ops-conv.ts';
import { makeNorm, type NormLayer } from './backbone.ts';
import { initParam } from './init.ts';
import type { FpnConfig } from './config.ts';

type Tensor = E.Tensor;

/** torchvision Conv2dNormActivation without activation: child "0" conv (bias only without norm), "1" norm. */
class ConvNorm extends E.Module {
  readonly conv: Conv2d;
  readonly norm: NormLayer | null;
  constructor(inC: number, outC: number, k: number, norm: FpnConfig['norm']) {
    super();
    this.conv = this.child('0', new Conv2d(inC, outC, k, { padding: (k - 1) / 2, bias: norm === 'none' }));
    // torchvision FPN: kaiming_uniform_(a=1), bias 0
    initParam(this.conv.weight, 'kaimingUniformA1');
    if (this.conv.bias) initParam(this.conv.bias, 'zeros');
    this.norm = norm === 'group' ? this.child('1', makeNorm('group', outC, 1e-5, 32)) : null;
  }
  forward(x: Tensor): Tensor {
    const y = this.conv.forward(x);
    return this.norm ? this.norm.forwardAct(y, false) : y;
  }
}

export class FPN extends E.Module {
  readonly inner: ConvNorm[];
  readonly layer: ConvNorm[];
  constructor(inChannels: number[], readonly cfg: FpnConfig) {
    super();
    const ib = this.child('inner_blocks', new E.Module());
    const lb = this.child('layer_blocks', new E.Module());
    this.inner = inChannels.map((c, i) => ib.child(String(i), new ConvNorm(c, cfg.outChannels, 1, cfg.norm)));
    this.layer = inChannels.map((_, i) => lb.child(String(i), new ConvNorm(cfg.outChannels, cfg.outChannels, 3, cfg.norm)));
  }

  /** [C2..C5] → [P2, P3, P4, P5, pool], each [N, outChannels, Hl, Wl]. */
  forward(cs: Tensor[]): Tensor[] {
    const n = cs.length;
    let last = this.inner[n - 1].forward(cs[n - 1]);
    const outs: Tensor[] = [this.layer[n - 1].forward(last)];
    for (let i = n - 2; i >= 0; i--) {
      const lateral = this.inner[i].forward(cs[i]);
      const up = upsampleNearest(last, [lateral.shape[2], lateral.shape[3]]);
      last = E.add(lateral, up);
      outs.unshift(this.layer[i].forward(last));
    }
    outs.push(maxPool2d(outs[n - 1], { kernel: 1, stride: 2 }));
    return outs;
  }
}

/** FLOPs of the FPN convs for level sizes [H_l, W_l] (l = 2..5). */
export function fpnFlops(inChannels: number[], out: number, sizes: [number, number][]): number {
  return sizes.reduce((f, [h, w], i) => f + 2 * h * w * out * (inChannels[i] + 9 * out), 0);
}


