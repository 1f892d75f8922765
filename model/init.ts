// Parameter initialisation rules of torchvision's detection modules, applied in place (the
// optimizer and the module keep the same tensor).
import * as E from '../engine/index.ts';
import { fans } from '../engine/nn.ts';

/**
 * kaimingUniformA1: torchvision FPN/RPN-less convs, kaiming_uniform_(a=1): bound = sqrt(3 / fan_in).
 * kaimingNormalFanOut: kaiming_normal_(mode="fan_out", nonlinearity="relu") (mask / keypoint heads).
 * normal001: normal(std=0.01) (RPN head, box classifier in Detectron). normal0001: std 0.001 (box regressor).
 */
export type InitRule = 'kaimingUniformA1' | 'kaimingNormalFanOut' | 'normal001' | 'normal0001' | 'zeros';

export function initParam(t: E.Tensor, rule: InitRule): void {
  E.noGrad(() => {
    const v = makeInit(t.shape, rule);
    E.assignInto(t, v);
    v.dispose();
  });
}

function makeInit(shape: number[], rule: InitRule): E.Tensor {
  switch (rule) {
    case 'kaimingUniformA1': {
      const b = Math.sqrt(3 / fans(shape).fanIn);
      return E.rand(shape, -b, b);
    }
    case 'kaimingNormalFanOut': return E.randn(shape, 0, Math.sqrt(2 / fans(shape).fanOut));
    case 'normal001': return E.randn(shape, 0, 0.01);
    case 'normal0001': return E.randn(shape, 0, 0.001);
    case 'zeros': return E.zeros(shape);
  }
}
