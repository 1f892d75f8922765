import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetFromFiles, loadCoco, type LoadedCoco } from '../data/coco.ts';
import { COCO_KEYPOINT_FLIP_MAP, flipTargets, resizedSize, RESIZE_PRESETS, scaleTargets, toPlanarResized, type InstanceTargets } from '../data/images.ts';
import { createLoader, planEpoch, type Batch, type LoaderOptions } from '../data/loader.ts';
import { rleDecodeColMajor, rleEncodeRowMajor, rleFromCoco, rleToCompressed } from '../data/rle.ts';
import { ensureShapes } from '../data/shapes.ts';

const cacheDir = mkdtempSync(join(tmpdir(), 'loader-test-'));
let inst: LoadedCoco;
let kp: LoadedCoco;
const SMALL = { shortSidePx: 96, maxLongSidePx: 160 };

test.before(async () => {
  const p = await ensureShapes({ cacheDir, seed: 3, numTrain: 24, numVal: 2, minSidePx: 64, maxSidePx: 112 });
  inst = loadCoco(datasetFromFiles(p.instances.train, join(p.imagesDir, 'train')), { log: null });
  kp = loadCoco(datasetFromFiles(p.keypoints.train, join(p.imagesDir, 'train')), { log: null, minKeypointsPerImage: 1 });
});

function batchHash(b: Batch): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([b.epoch, b.iteration, b.imageIds, b.sizes, b.heightPadPx, b.widthPadPx]));
  h.update(new Uint8Array(b.images.buffer));
  for (const t of b.targets) { h.update(new Uint8Array(t.boxesXyxy.buffer)); h.update(JSON.stringify(t.masks)); if (t.keypoints) h.update(new Uint8Array(t.keypoints.buffer)); }
  return h.digest('hex');
}

async function run(data: LoadedCoco, opts: LoaderOptions, n: number): Promise<Batch[]> {
  const L = createLoader(data, { resize: SMALL, log: null, ...opts });
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) out.push(await L.next());
  await L.close();
  return out;
}

test('loader: same seed -> same batches across an epoch boundary; other seed differs', async () => {
  const a = await run(inst, { batchSize: 4, seed: 11 }, 8);
  const b = await run(inst, { batchSize: 4, seed: 11 }, 8);
  assert.equal(a.map(batchHash), b.map(batchHash));
  assert.ok(a.some((x) => x.epoch === 1), 'crossed into epoch 1');
  const c = await run(inst, { batchSize: 4, seed: 12 }, 2);
  assert.is.not(batchHash(c[0]), batchHash(a[0]));
});

test('loader: resume from a saved state gives the same subsequent batches', async () => {
  const full = await run(inst, { batchSize: 3, seed: 5 }, 9);
  const state = full[3].stateAfter;
  const resumed = await run(inst, { batchSize: 3, state }, 5);
  assert.equal(resumed.map(batchHash), full.slice(4).map(batchHash));
});

test('loader: worker threads produce the same batches as in-process', async () => {
  const a = await run(kp, { batchSize: 2, seed: 1 }, 3);
  const b = await run(kp, { batchSize: 2, seed: 1, numWorkers: 2 }, 3);
  assert.equal(b.map(batchHash), a.map(batchHash));
});

test('loader: a worker that dies is replaced and its jobs re-sent; past the replacement budget the batch fails naming the worker', async () => {
  const want = await run(kp, { batchSize: 2, seed: 1 }, 4);
  const logs: string[] = [];
  const L = createLoader(kp, { resize: SMALL, batchSize: 2, seed: 1, numWorkers: 2, prefetchBatches: 3, log: (m) => logs.push(m) });
  type PoolView = { workers: ({ terminate(): Promise<number> } | null)[]; restarts: number };
  // a timer holds the event loop: a terminating worker does not (see WorkerPool.close)
  const killAll = async () => {
    const hold = setInterval(() => undefined, 1000);
    await Promise.all(pool.workers.map((w) => w!.terminate()));
    clearInterval(hold);
  };
  const pool = (L as unknown as { pool: PoolView }).pool;
  const got = [await L.next()];
  // kill both workers with prefetched jobs in flight (terminate() exits them as a crash would)
  await killAll();
  for (let i = 1; i < 4; i++) got.push(await L.next());
  assert.equal(got.map(batchHash), want.map(batchHash));
  assert.ok(logs.some((m) => /worker \d exited with code \d+; replacing it/.test(m)), `replacement logged: ${logs.join(' | ')}`);
  pool.restarts = 1e9;
  await killAll();
  let err = '';
  try { for (let i = 0; i < 4; i++) await L.next(); } catch (e) { err = (e as Error).message; }
  assert.match(err, /loader: (worker \d exited with code \d+ while preparing image \d+|all 2 worker threads died)/);
  await L.close();
});

test('loader: padding to a multiple of 32 with zeros, per-image sizes recorded, aspect groups', async () => {
  const batches = await run(inst, { batchSize: 3, seed: 2, norm: 'caffe' }, 6);
  for (const b of batches) {
    assert.is(b.heightPadPx % 32, 0); assert.is(b.widthPadPx % 32, 0);
    assert.is(b.images.length, b.batchSize * 3 * b.heightPadPx * b.widthPadPx);
    const portrait = b.sizes.map((s) => s.origHeightPx > s.origWidthPx);
    assert.ok(portrait.every((p) => p === portrait[0]), 'one aspect group per batch');
    b.sizes.forEach((s, i) => {
      assert.ok(Math.min(s.heightPx, s.widthPx) <= 96 && Math.max(s.heightPx, s.widthPx) <= 160);
      assert.ok(Math.abs(s.scaleX - s.widthPx / s.origWidthPx) < 1e-12);
      const plane = b.heightPadPx * b.widthPadPx;
      if (s.widthPx < b.widthPadPx) assert.is(b.images[(i * 3) * plane + s.widthPx], 0, 'right padding is 0');
      if (s.heightPx < b.heightPadPx) assert.is(b.images[(i * 3 + 2) * plane + s.heightPx * b.widthPadPx], 0, 'bottom padding is 0');
    });
  }
  const b64 = await run(inst, { batchSize: 2, seed: 2, padMultiple: 64 }, 1);
  assert.is(b64[0].heightPadPx % 64, 0);
});

test('loader: batch targets are the record targets flipped then scaled', async () => {
  const batches = await run(kp, { batchSize: 2, seed: 9, flipProb: 0.5 }, 6);
  let flipped = 0;
  for (const b of batches) {
    b.recordIndices.forEach((r, i) => {
      const s = b.sizes[i];
      let t = kp.records[r].targets;
      if (s.flipped) { flipped++; t = flipTargets(t, s.origWidthPx); }
      t = scaleTargets(t, s.scaleX, s.scaleY);
      assert.equal(Array.from(b.targets[i].boxesXyxy), Array.from(t.boxesXyxy));
      assert.equal(Array.from(b.targets[i].keypoints!), Array.from(t.keypoints!));
    });
  }
  assert.ok(flipped > 0);
});

test('loader: eval subset visits every eval image exactly once, unflipped', async () => {
  const L = createLoader(inst, { batchSize: 5, subset: 'eval', resize: SMALL, log: null });
  const seen: number[] = [];
  for await (const b of L.epoch()) { seen.push(...b.recordIndices); assert.ok(b.sizes.every((s) => !s.flipped)); }
  await L.close();
  assert.equal(seen.slice().sort((a, b) => a - b), inst.evalIndices);
  assert.is(seen.length, inst.records.length);
});

test('planEpoch: every image once per epoch (dropLast false), grouping respected', () => {
  const idx = Array.from({ length: 11 }, (_, i) => i);
  const plan = planEpoch(idx, (r) => r % 3 === 0, { batchSize: 2, seed: 1, epoch: 0, shuffle: true, flipProb: 0.5, groupByAspect: true, dropLast: false });
  assert.equal(plan.flatMap((b) => b.recordIndices).sort((a, b) => a - b), idx);
  for (const b of plan) assert.ok(b.recordIndices.every((r) => (r % 3 === 0) === (b.recordIndices[0] % 3 === 0)));
  const dropped = planEpoch(idx, (r) => r % 3 === 0, { batchSize: 2, seed: 1, epoch: 0, shuffle: true, flipProb: 0.5, groupByAspect: true, dropLast: true });
  assert.is(dropped.length, 5, '4 portrait -> 2 full batches, 7 landscape -> 3 full batches');
});

test('resize: torchvision / seed sizes, boxes polygons keypoints scale per axis', () => {
  assert.equal(resizedSize(480, 640, RESIZE_PRESETS.torchvision), { heightPx: 800, widthPx: 1066, scaleY: 800 / 480, scaleX: 1066 / 640 });
  const long = resizedSize(200, 1000, RESIZE_PRESETS.seed); // max side binds: scale 1
  assert.equal([long.heightPx, long.widthPx], [200, 1000]);
  const t: InstanceTargets = {
    boxesXyxy: new Float32Array([10, 20, 30, 40]), labels: new Int32Array([1]), annIds: new Int32Array([1]),
    masks: [{ kind: 'polygons', polygons: [[10, 20, 30, 20, 30, 40]] }], keypoints: new Float32Array([10, 20, 2, 0, 0, 0]),
  };
  const s = scaleTargets(t, 2, 0.5);
  assert.equal(Array.from(s.boxesXyxy), [20, 10, 60, 20]);
  assert.equal(s.masks![0], { kind: 'polygons', polygons: [[20, 10, 60, 10, 60, 20]] });
  assert.equal(Array.from(s.keypoints!), [20, 10, 2, 0, 0, 0]);
});

test('resize: bilinear with half-pixel centres equals torch interpolate(align_corners=False)', () => {
  const rgb = new Uint8Array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]); // 2x2, values 0 1 / 2 3
  const up = toPlanarResized({ rgbHwc: rgb, heightPx: 2, widthPx: 2 }, 4, 4, 'rgb255', false);
  assert.equal(Array.from(up.subarray(0, 16)), [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  const row = new Uint8Array([0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30]); // 1x4
  assert.equal(Array.from(toPlanarResized({ rgbHwc: row, heightPx: 1, widthPx: 4 }, 1, 2, 'rgb255', false).subarray(0, 2)), [5, 25]);
  assert.equal(Array.from(toPlanarResized({ rgbHwc: row, heightPx: 1, widthPx: 4 }, 1, 4, 'rgb255', true).subarray(0, 4)), [30, 20, 10, 0]);
});

test('normalisation: caffe BGR minus mean; torchvision RGB/255 ImageNet mean/std', () => {
  const px = { rgbHwc: new Uint8Array([10, 20, 30]), heightPx: 1, widthPx: 1 };
  const caffe = toPlanarResized(px, 1, 1, 'caffe', false);
  [30 - 102.9801, 20 - 115.9465, 10 - 122.7717].forEach((v, c) => assert.ok(Math.abs(caffe[c] - v) < 1e-4));
  const tv = toPlanarResized(px, 1, 1, 'torchvision', false);
  [(10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225].forEach((v, c) => assert.ok(Math.abs(tv[c] - v) < 1e-5));
});

test('flip: boxes, polygons, RLE and keypoints with the COCO flip map', () => {
  const W = 5, H = 3;
  const dense = new Uint8Array(H * W); dense[0 * W + 0] = 1; dense[1 * W + 1] = 1; dense[2 * W + 1] = 1; // row-major
  const kps = new Float32Array(51);
  kps.set([1, 1, 2], 1 * 3); // left_eye at x=1
  kps.set([4, 1, 1], 2 * 3); // right_eye at x=4
  kps.set([3, 2, 0], 5 * 3); // v=0 -> zeroed
  const t: InstanceTargets = {
    boxesXyxy: new Float32Array([0, 0, 2, 3]), labels: new Int32Array([1]), annIds: new Int32Array([7]),
    masks: [{ kind: 'rle', rle: rleToCompressed(rleEncodeRowMajor(dense, H, W)), scaleX: 1, scaleY: 1 }],
    keypoints: kps,
  };
  const f = flipTargets(t, W);
  assert.equal(Array.from(f.boxesXyxy), [3, 0, 5, 3]);
  const m = f.masks![0];
  assert.is(m.kind, 'rle');
  if (m.kind !== 'rle') return;
  const cm = rleDecodeColMajor(rleFromCoco(m.rle));
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.is(cm[x * H + y], dense[y * W + (W - 1 - x)], `pixel ${x},${y}`);
  assert.equal(Array.from(f.keypoints!.subarray(3, 9)), [5 - 4, 1, 1, 5 - 1, 1, 2], 'left_eye <- mirrored right_eye and vice versa');
  assert.equal(Array.from(f.keypoints!.subarray(18, 21)), [0, 0, 0]);
  assert.is(COCO_KEYPOINT_FLIP_MAP[COCO_KEYPOINT_FLIP_MAP[5]], 5);
  const p = flipTargets({ ...t, masks: [{ kind: 'polygons', polygons: [[0, 0, 2, 0, 2, 3]] }] }, W);
  assert.equal(p.masks![0], { kind: 'polygons', polygons: [[5, 0, 3, 0, 3, 3]] });
  const twice = flipTargets(f, W);
  assert.equal(Array.from(twice.boxesXyxy), Array.from(t.boxesXyxy));
  assert.equal(Array.from(twice.keypoints!), Array.from(kps.map((v, i) => (i >= 15 && i < 18 ? 0 : v))));
});

test.after(() => rmSync(cacheDir, { recursive: true, force: true }));
test.run();
