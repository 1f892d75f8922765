// GroupNorm rows (conv → GN → ReLU as the GN models call it, so the ReLU is fused in every row) at
// the C2 shape of the batch-norm row ([2,256,50,76], G 32, Detectron's GN setting) and at a
// small-model shape. tfjs has no group norm: no peer column.
// Napkin bytes: forward reads x twice (stats, normalize) and writes y: 3n floats; backward reads
// dy and x twice (row sums, dx) and writes dx: 5n more.
import type { BenchCase } from './harness.ts';
import type { BenchSize } from './run.ts';
import { Tensor } from '../engine/tensor.ts';
import { rand } from '../engine/ops-nn.ts';
import { backward, full, zeros } from '../engine/ops.ts';
import { groupNorm } from '../engine/ops-norm.ts';

function gnCase(shape: number[], G: number, withBackward: boolean): BenchCase {
  const n = shape.reduce((a, b) => a * b, 1);
  const C = shape[1];
  return {
    family: 'norm-pool',
    name: withBackward ? 'groupNorm fwd+bwd' : 'groupNorm fwd',
    shape: `[${shape}] G=${G}, ReLU`,
    bytes: (withBackward ? 8 : 3) * n * 4,
    setup: () => {
      const x = rand(shape, -1, 1).keep(), gamma = full([C], 1).keep(), beta = zeros([C]).keep();
      const dy = rand(shape, -1, 1).keep();
      const ts: Tensor[] = [x, gamma, beta, dy];
      if (!withBackward) return { record: () => void groupNorm(x, G, gamma, beta, { relu: true }), dispose: () => ts.forEach((t) => t.dispose()) };
      for (const t of [x, gamma, beta]) t.requiresGrad = true;
      return {
        record: () => {
          backward(groupNorm(x, G, gamma, beta, { relu: true }), dy);
          for (const t of [x, gamma, beta]) { t.grad?.dispose(); t.grad = null; }
        },
        dispose: () => ts.forEach((t) => t.dispose()),
      };
    },
  };
}

export function cases(size: BenchSize): BenchCase[] {
  const f = size === 'full' ? 4 : 1;
  const c2 = [2, 256, 50 * f, 76 * f];
  const small = [4, 64, 64, 96];
  return [gnCase(c2, 32, false), gnCase(c2, 32, true), gnCase(small, 16, false), gnCase(small, 16, true)];
}
