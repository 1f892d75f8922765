// Model training-step properties on a tiny configuration: zero host syncs through forward, losses,
// backward and SGD for box-only, box+mask, box+keypoint and box+mask+keypoint models; the buffer
// pool returns to its baseline; images without annotations train (all-negative, mask/keypoint
// losses zero); capacity and bad-input errors name the limit; the small preset memorises a few
// synthetic images (loss falls well below its start).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { gpuBatch, disposeGpuBatch, type HostTargets } from '../model/transform.ts';
import { scene, tinyConfig } from './model-scene.ts';
import { makeOptimizer, trainStep } from '../model/train-step.ts';
import { predict } from '../model/postprocess.ts';
import { chunkedOverRois } from '../model/roi-heads.ts';
import { roiAlign } from '../engine/ops-detect.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
  E.manualSeed(3);
});

for (const [mask, kp] of [[false, false], [true, false], [false, true], [true, true]] as const) {
  test(`train step (box${mask ? '+mask' : ''}${kp ? '+keypoint' : ''}): zero host syncs, pool back to baseline, finite losses; empty image valid`, async () => {
    const cfg = tinyConfig(mask, kp);
    const model = new MaskRCNN(cfg);
    const opt = makeOptimizer(model, { lr: 0.01 });
    const batch = scene(cfg);
    // warm-up step: momentum buffers and cached anchors/constants are allocated once
    const w = trainStep(model, opt, batch);
    await E.toArrays([w.values]);
    w.values.dispose();
    const rt = E.runtime();
    const syncs = rt.stats.hostSyncs;
    const before = rt.pool.memoryStats().buffersInUse;
    const out = trainStep(model, opt, batch);
    assert.is(rt.stats.hostSyncs, syncs, 'host syncs inside the training step');
    const [v] = await E.toArrays([out.values]);
    out.values.dispose();
    assert.is(rt.pool.memoryStats().buffersInUse, before, 'buffers in use after the step equal the baseline');
    const names = out.names;
    assert.ok(names.includes('loss_classifier') && names.includes('loss_objectness'));
    assert.is(names.includes('loss_mask'), mask);
    assert.is(names.includes('loss_keypoint'), kp);
    for (let i = 0; i < names.length; i++) assert.ok(Number.isFinite(v[i]) && v[i] >= 0, `${names[i]} = ${v[i]}`);
    disposeGpuBatch(batch);
    opt.dispose();
    model.dispose();
  });
}

test('images without annotations only: all-negative, mask/keypoint losses exactly 0', async () => {
  const cfg = tinyConfig(true, true);
  const model = new MaskRCNN(cfg);
  const opt = makeOptimizer(model, { lr: 0.01 });
  const H = 64, W = 64;
  const img = Float32Array.from({ length: 3 * H * W }, (_, i) => Math.sin(i * 0.01));
  const b = gpuBatch(img, 1, H, W, [{ heightPx: H, widthPx: W, origHeightPx: H, origWidthPx: W }], [{ boxesXyxy: new Float32Array(0), labels: new Int32Array(0), masks: [], keypoints: new Float32Array(0) }], cfg);
  const out = trainStep(model, opt, b);
  const [v] = await E.toArrays([out.values]);
  const get = (n: string) => v[out.names.indexOf(n as never)];
  assert.is(get('loss_mask'), 0);
  assert.is(get('loss_keypoint'), 0);
  assert.is(get('loss_rpn_box_reg'), 0);
  assert.is(get('loss_box_reg'), 0);
  assert.ok(get('loss_objectness') > 0 && get('loss_classifier') > 0);
  out.values.dispose(); disposeGpuBatch(b); opt.dispose(); model.dispose();
});

test('bad input: capacity, degenerate boxes, NaN images, wrong shapes are named errors', () => {
  const cfg = tinyConfig(false, false);
  const H = 64, W = 64;
  const img = new Float32Array(3 * H * W);
  const size = [{ heightPx: H, widthPx: W, origHeightPx: H, origWidthPx: W }];
  const t = (boxes: number[], labels: number[]): HostTargets[] => [{ boxesXyxy: Float32Array.from(boxes), labels: Int32Array.from(labels), masks: null, keypoints: null }];
  assert.throws(() => gpuBatch(img, 1, H, W, size, t([0, 0, 5, 5, 0, 0, 6, 6, 1, 1, 7, 7, 2, 2, 9, 9], [1, 1, 1, 1]), cfg), /4 GT instances, over the capacity maxGtPerImage = 3/);
  assert.throws(() => gpuBatch(img, 1, H, W, size, t([5, 5, 5, 9], [1]), cfg), /zero, negative or non-finite size/);
  assert.throws(() => gpuBatch(img, 1, H, W, size, t([0, 0, 5, 5], [7]), cfg), /label 7 of instance 0 outside 1\.\.2/);
  const nan = img.slice(); nan[5000] = NaN;
  assert.throws(() => gpuBatch(nan, 1, H, W, size, null, cfg), /image 0 .*non-finite value \(NaN\) at channel 1/);
  assert.throws(() => gpuBatch(img, 1, H, 60, size, null, cfg), /expected \[1, 3, 64, 60\]/);
  assert.throws(() => gpuBatch(new Float32Array(0), 0, H, W, [], null, cfg), /empty batch/);
});

test('overfit: the small preset memorises two synthetic images (loss falls well below its start; the square is detected)', async () => {
  // Seeded: the outcome must not depend on which tests ran before. 150 steps sufficed only while SGD
  // updated GroupNorm weights with the bias gradient (an offset-view bug, fixed in engine/optim.ts):
  // with correct updates 2 of 4 inits still mislabel the square at 150 steps; 250 passes for inits 0-4.
  E.manualSeed(0);
  const cfg = tinyConfig(true, false);
  cfg.backbone = { ...cfg.backbone, baseWidth: 16, groups: 8 };
  cfg.fpn = { ...cfg.fpn, outChannels: 32 };
  const model = new MaskRCNN(cfg);
  const opt = makeOptimizer(model, { lr: 0.02, warmupIters: 10, milestones: [183] });
  const batch = scene(cfg);
  let first = 0, last = 0;
  for (let i = 0; i < 250; i++) {
    const out = trainStep(model, opt, batch);
    const [v] = await E.toArrays([out.values]);
    out.values.dispose();
    const total = v[out.names.indexOf('loss')];
    if (i === 0) first = total;
    last = total;
  }
  assert.ok(last < first * 0.35, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  const dets = await predict(model, batch);
  const d = dets[0];
  const iouWith = (g: number[], i: number) => {
    const [x1, y1, x2, y2] = d.boxesXyxy.subarray(i * 4, i * 4 + 4);
    const inter = Math.max(0, Math.min(x2, g[2]) - Math.max(x1, g[0])) * Math.max(0, Math.min(y2, g[3]) - Math.max(y1, g[1]));
    return inter / ((x2 - x1) * (y2 - y1) + (g[2] - g[0]) * (g[3] - g[1]) - inter);
  };
  // "detections correct": for each GT, the best-scoring detection that overlaps it (IoU > 0.5) has its label
  const gts: [number[], number][] = [[[8, 10, 30, 34], 1], [[36, 34, 56, 54], 2]];
  const shown = `labels ${Array.from(d.labels)} scores ${Array.from(d.scores).map((s) => s.toFixed(2))} boxes ${Array.from(d.boxesXyxy).map((s) => s.toFixed(0))}`;
  for (const [g, label] of gts) {
    let best = -1;
    for (let i = 0; i < d.scores.length; i++) if (iouWith(g, i) > 0.5 && (best < 0 || d.scores[i] > d.scores[best])) best = i;
    assert.ok(best >= 0, `no detection overlaps GT [${g}] (loss ${first.toFixed(3)} → ${last.toFixed(3)}): ${shown}`);
    assert.is(d.labels[best], label, `GT [${g}] label ${label}: best overlapping detection has label ${d.labels[best]}: ${shown}`);
  }
  assert.is(dets[1].scores.filter((s) => s > 0.5).length, 0, 'the image without objects has no confident detection');
  disposeGpuBatch(batch); opt.dispose(); model.dispose();
});

test('chunkedOverRois: a head run in RoI chunks (device buffer limit) equals one call, forward and feature grads', async () => {
  const x = E.randn([2, 4, 16, 16]);
  x.requiresGrad = true;
  const rois = E.fromArray([0, 1, 1, 9, 9, 1, 2, 3, 14, 12, 0, 0, 0, 15, 15, 1, 4, 4, 8, 12, 0, 3, 5, 6, 7], [5, 5]);
  const head = (r: E.Tensor) => E.relu(roiAlign(x, r, { outputSize: 3, spatialScale: 1, samplingRatio: 2 }));
  const one = E.sum(E.mul(head(rois), 1.5));
  E.backward(one);
  const g1 = x.grad!; x.grad = null;
  const bytes = 4 * 9 * 4;
  const chunked = E.sum(E.mul(chunkedOverRois(rois, bytes, head, 2 * 1.25 * bytes), 1.5)); // 2 RoIs per chunk
  E.backward(chunked);
  const [a, b, ga, gb] = await E.toArrays([one, chunked, g1, x.grad!]);
  assert.ok(Math.abs(a[0] - b[0]) <= 1e-5 * Math.abs(a[0]), `${a[0]} vs ${b[0]}`);
  for (let i = 0; i < ga.length; i++) assert.ok(Math.abs(ga[i] - gb[i]) <= 1e-6, `grad ${i}: ${ga[i]} vs ${gb[i]}`);
  [x, rois, one, chunked, g1].forEach((t) => t.dispose());
});

test.run();
