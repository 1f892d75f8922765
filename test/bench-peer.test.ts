// The bench compares roiAlign with tfjs-backend-webgpu "for the same output": this checks that the
// tfjs peer (cropAndResize on RoI Align's sample grid + avgPool, bench/detect.bench.ts) really
// returns roiAlign's output, on the same adapter, for RoIs whose samples lie inside the map.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { create } from 'webgpu';
import * as E from '../engine/index.ts';
import { roiAlign } from '../engine/ops-detect.ts';
import { cropBoxesForRoiAlign, tfjsRoiAlign } from '../bench/detect.bench.ts';
import type { Tf } from '../bench/harness.ts';
import { assertClose, mulberry32, randArray } from './util.ts';

let tf: Tf;

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
  // tfjs-backend-webgpu finds its adapter through navigator.gpu, as in bench/run.ts
  (globalThis as any).navigator ??= { gpu: create([]), userAgent: 'node' };
  tf = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
  await import('@tensorflow/tfjs-backend-webgpu');
  assert.ok(await tf.setBackend('webgpu'), 'tfjs: setBackend(webgpu)');
  await tf.ready();
});

test('bench peer: tfjs cropAndResize on the sample grid + avgPool == roiAlign (sr 1, 2, 3; 2 images)', async () => {
  const [N, C, H, W] = [2, 5, 13, 17];
  const scale = 0.5;
  const x = randArray(N * C * H * W, 3);
  const r = mulberry32(8);
  const R = 12;
  for (const [P, sr] of [[3, 1], [3, 2], [2, 3], [4, 2]]) {
    // RoIs whose first and last samples stay in [0, H−1]×[0, W−1]; every 4th under 1 px (clamped)
    const rois = new Float64Array(R * 5);
    for (let i = 0; i < R; i++) {
      const w = i % 4 === 3 ? r() * 1.5 : 2 + r() * 20, h = i % 4 === 3 ? r() * 1.5 : 2 + r() * 16;
      const x1 = 1 + r() * ((W - 1) / scale - w - 2), y1 = 1 + r() * ((H - 1) / scale - h - 2);
      rois.set([i % N, x1, y1, x1 + w, y1 + h], i * 5);
    }
    const boxes = cropBoxesForRoiAlign(rois, { P, sr, spatialScale: scale, H, W });
    for (const b of boxes) assert.ok(b.every((v) => v >= 0 && v <= 1), `test rois must stay inside the map: ${b}`);

    const xt = E.fromArray(x, [N, C, H, W]);
    const rt = E.fromArray(rois, [R, 5]);
    const ours = await E.toArray(roiAlign(xt, rt, { outputSize: P, spatialScale: scale, samplingRatio: sr }));
    xt.dispose(); rt.dispose();

    const nhwc = new Float32Array(N * H * W * C);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) nhwc[(n * H * W + i) * C + c] = x[(n * C + c) * H * W + i];
    const img = tf.tensor4d(nhwc, [N, H, W, C]);
    const bt = tf.tensor2d(boxes, [R, 4]);
    const ind = tf.tensor1d(Array.from({ length: R }, (_, i) => i % N), 'int32');
    // a crop budget of 5 RoIs exercises the chunking the full bench shape needs
    const outs = tfjsRoiAlign(tf, img, bt, ind, P, sr, 5 * (sr * P) ** 2 * C * 4);
    assert.equal(outs.map((o) => o.shape[0]), [5, 5, 2], 'tfjs peer chunks');
    const out = tf.concat(outs);
    assert.equal(out.shape, [R, P, P, C], 'tfjs peer shape');
    const nhwcOut = await out.data();
    tf.dispose([img, bt, ind, out, ...outs]);
    const theirs = new Float64Array(R * C * P * P);
    for (let k = 0; k < R; k++) for (let c = 0; c < C; c++) for (let p = 0; p < P * P; p++) theirs[(k * C + c) * P * P + p] = nhwcOut[(k * P * P + p) * C + c];
    // f32 on both sides; cropAndResize rebuilds sample positions from normalised boxes (~1e-6 px)
    assertClose(ours, theirs, `roiAlign P=${P} sr=${sr} vs tfjs peer`, 1e-5, 1e-4);
  }
});

test.run();
