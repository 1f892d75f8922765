// BN / pool / resample rows and a bottleneck forward+backward end to end (imported by conv.bench.ts).
import type { BenchCase } from './harness.ts';
import { Tensor } from '../engine/tensor.ts';
import { rand } from '../engine/ops-nn.ts';
import { backward, full, sum, zeros } from '../engine/ops.ts';
import { batchNorm, frozenBatchNorm, maxPool2d, upsampleBilinear, upsampleNearest } from '../engine/ops-norm.ts';
import { Bottleneck } from '../engine/nn-conv.ts';
import { run } from '../engine/ops.ts';
import { empty } from '../engine/tensor.ts';
import { resampleLaunch } from '../kernels/resample.ts';
import { maxPoolBackwardLaunch, maxPoolLaunch, poolOutSize, type PoolGeom } from '../kernels/pool.ts';

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
    // keypoint head: [R·17, 28, 28] logits → 56×56 (R = 32 RoIs at shapes_small batch 8)
    ...[false, true].map((bwd) => {
      const P = (size === 'full' ? 512 : 32) * 17;
      return mk(`upsampleBilinear ×2 ${bwd ? 'bwd' : 'fwd'} (keypoint head)`, `[${P},28,28] ↔ 56x56`, P * (28 * 28 + 56 * 56) * 4, () => {
        const src = rand(bwd ? [P, 56, 56] : [P, 28, 28]).keep(), dst = empty(bwd ? [P, 28, 28] : [P, 56, 56]).keep();
        return { rec: () => run(resampleLaunch('bilinear', P, 28, 28, 56, 56, bwd), [src, dst]), ts: [src, dst] };
      });
    }),
    // stem max pool 3x3/2 pad 1 backward: shapes_small batch 8 (16 channels, 144×216); full: ResNet-50 stem at 800×1216
    (() => {
      const [N, C, H, W] = size === 'full' ? [2, 64, 400, 608] : [8, 16, 144, 216];
      const g: PoolGeom = { planes: N * C, H, W, Ho: poolOutSize(H, 3, 2, 1, false), Wo: poolOutSize(W, 3, 2, 1, false), kH: 3, kW: 3, sH: 2, sW: 2, pH: 1, pW: 1 };
      return mk('maxPool2d 3x3/2 pad 1 bwd (stem)', `[${N},${C},${H},${W}] ← ${g.Ho}x${g.Wo}`, N * C * (g.Ho * g.Wo * 8 + H * W * 4), () => {
        const x = rand([N, C, H, W]).keep(), y = empty([N, C, g.Ho, g.Wo]).keep(), arg = empty([N, C, g.Ho, g.Wo], 'i32').keep();
        const dy = rand([N, C, g.Ho, g.Wo]).keep(), dx = empty([N, C, H, W]).keep();
        run(maxPoolLaunch(g), [x, y, arg]);
        return { rec: () => run(maxPoolBackwardLaunch(g), [dy, arg, dx]), ts: [x, y, arg, dy, dx] };
      });
    })(),
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
