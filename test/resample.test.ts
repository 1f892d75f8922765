// Nearest (×2 and explicit sizes, torch floor(dst·in/out)) and bilinear (align_corners false/true,
// up and down) resampling: GPU vs float64 reference, grads vs central differences.
import { test } from 'uvu';
import * as E from '../engine/index.ts';
import { upsampleBilinear, upsampleNearest } from '../engine/ops-conv.ts';
import { refResample } from '../kernels/resample.ts';
import { checkOp } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const sizes: [number[], [number, number]][] = [
  [[2, 3, 4, 5], [8, 10]], // ×2 (FPN top-down)
  [[1, 2, 7, 5], [13, 10]], // FPN odd sizes: 7 → 13
  [[3, 1, 5, 6], [7, 9]],
  [[1, 2, 6, 7], [4, 3]], // downsampling
  [[1, 1, 3, 4], [1, 5]],
];

test('upsampleNearest: explicit size and scale 2, forward + grads', async () => {
  for (const [shape, out] of sizes) {
    const [N, C, H, W] = shape;
    await checkOp(`nearest [${shape}] → ${out}`, [{ shape }], ([x]) => upsampleNearest(x, out), ([x]) => refResample('nearest', x, N * C, H, W, out[0], out[1]));
  }
  await checkOp('nearest ×2', [{ shape: [1, 2, 3, 5] }], ([x]) => upsampleNearest(x, null, 2), ([x]) => refResample('nearest', x, 2, 3, 5, 6, 10));
});

test('upsampleBilinear: align_corners false/true, forward + grads', async () => {
  for (const align of [false, true]) {
    for (const [shape, out] of sizes) {
      const [N, C, H, W] = shape;
      await checkOp(`bilinear align=${align} [${shape}] → ${out}`, [{ shape }], ([x]) => upsampleBilinear(x, out, null, align),
        ([x]) => refResample(align ? 'bilinearAligned' : 'bilinear', x, N * C, H, W, out[0], out[1]));
    }
  }
});

test.run();
