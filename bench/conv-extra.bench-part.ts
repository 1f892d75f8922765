// BN / pool / resample rows and a bottleneck forward+backward end to end (imported by conv.bench.ts).
import type { BenchCase } from './harness.ts';
import { Tensor } from '../engine/tensor.ts';
import { rand } from '../engine/ops-nn.ts';
import { backward, full, sum, zeros } from '../engine/ops.ts';
import { batchNorm, frozenBatchNorm, maxPool2d, upsampleBilinear, upsampleNearest } from '../engine/ops-norm.ts';
import { Bottleneck } from '../engine/nn-conv.ts';

export function extraCases(size: 'small' | 'full'): BenchCase[] {
  const f = size === 'full' ? 4 : 1;
  const c2: [number, number, number, number] = [2, 256, 50 * f, 76 * f];
  const n = c2.reduce((a, b) => a * b, 1);
  const io = (t: Tensor[]) => ({ dispose: () => t.forEach((x) => x.dispose()) });
  const mk = (name: string, shape: string, bytes: number, make: () => { rec: () => void; ts: Tensor[] }): BenchCase => ({
    family: 'norm-pool', name, shape, bytes,
    setup: () => {
      const { rec, ts } = make();
      return { record: rec, ...io(ts) };
    },
  });
  const C = c2[1];
  return [
    mk('batchNorm train fwd (stats + affine)', `[${c2}]`, 3 * n * 4, () => {
      const x = rand(c2).keep(), g = full([C], 1).keep(), b = zeros([C]).keep(), rm = zeros([C]).keep(), rv = full([C], 1).keep();
      return { rec: () => void batchNorm(x, g, b, rm, rv, { training: true }), ts: [x, g, b, rm, rv] };
    }),
    mk('frozenBatchNorm fwd', `[${c2}]`, 2 * n * 4, () => {
      const x = rand(c2).keep(), g = full([C], 1).keep(), b = zeros([C]).keep(), rm = zeros([C]).keep(), rv = full([C], 1).keep();
      return { rec: () => void frozenBatchNorm(x, g, b, rm, rv, 0), ts: [x, g, b, rm, rv] };
    }),
    mk('maxPool2d 3x3/2 ceil (stem)', `[2,64,${100 * f},${152 * f}]`, 2 * 64 * 100 * 152 * f * f * 4 * 1.25, () => {
      const x = rand([2, 64, 100 * f, 152 * f]).keep();
      return { rec: () => void maxPool2d(x, { kernel: 3, stride: 2, ceilMode: true }), ts: [x] };
    }),
    mk('upsampleNearest ×2 (FPN)', `[2,256,${13 * f},${19 * f}] → ×2`, 5 * 2 * 256 * 13 * 19 * f * f * 4, () => {
      const x = rand([2, 256, 13 * f, 19 * f]).keep();
      return { rec: () => void upsampleNearest(x, null, 2), ts: [x] };
    }),
    mk('upsampleBilinear ×2 (keypoint)', `[${size === 'full' ? 64 : 8},17,56,56] → 112`, 5 * (size === 'full' ? 64 : 8) * 17 * 56 * 56 * 4, () => {
      const x = rand([size === 'full' ? 64 : 8, 17, 56, 56]).keep();
      return { rec: () => void upsampleBilinear(x, null, 2), ts: [x] };
    }),
    {
      family: 'bottleneck', name: 'ResNet-50 layer1 bottleneck fwd+bwd (BN train)', shape: `[2,256,${50 * f},${76 * f}] 256→64→256`,
      flops: 3 * 2 * 2 * 50 * 76 * f * f * (256 * 64 + 64 * 64 * 9 + 64 * 256),
      setup: () => {
        const blk = new Bottleneck(256, 64, 1, 'batch');
        const x = rand(c2).keep();
        x.requiresGrad = true;
        return {
          record: () => {
            backward(sum(blk.forward(x)));
            for (const p of blk.parameters()) { p.grad?.dispose(); p.grad = null; }
            x.grad?.dispose();
            x.grad = null;
          },
          dispose: () => { blk.dispose(); x.dispose(); },
        };
      },
    },
  ];
}
