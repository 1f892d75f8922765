// RoI Align / multi-level RoI Align / RoI Pool / RoI crop: torchvision fixtures, float64
// references, and GPU analytic grads vs central differences on the references.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { roiAlign, multiScaleRoiAlign, roiPool, roiCrop } from '../engine/ops-detect.ts';
import { refRoiPool, refRoiCrop } from '../kernels/roi.ts';
import { refRoiAlign, refLevels } from '../kernels/roi-align.ts';
import { assertClose, checkOp, randArray, mulberry32 } from './util.ts';

const fx = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/detect-${name}.json`, import.meta.url), 'utf8'));

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

/** Random rois [R,5] over images of size (H/scale, W/scale), some partly outside, some tiny. */
function rois(R: number, N: number, H: number, W: number, scale: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(R * 5);
  for (let i = 0; i < R; i++) {
    const x1 = (r() * 1.1 - 0.1) * (W / scale), y1 = (r() * 1.1 - 0.1) * (H / scale);
    const tiny = i % 4 === 3;
    const w = tiny ? r() * 0.7 / scale : (0.1 + r() * 0.6) * (W / scale), h = tiny ? r() * 0.7 / scale : (0.1 + r() * 0.6) * (H / scale);
    out.set([Math.floor(r() * N), x1, y1, x1 + w, y1 + h], i * 5);
  }
  return out;
}

test('roiAlign matches torchvision fixtures (aligned, sampling 0/1/2/-1, multi-image, rois outside)', async () => {
  const f = fx('roi_align');
  for (const [k, cs] of f.cases.entries()) {
    const x = E.fromArray(cs.x, cs.xShape);
    const r = E.fromArray(cs.rois, [cs.R, 5]);
    const syncs = E.runtime().stats.hostSyncs;
    const y = roiAlign(x, r, { outputSize: cs.outputSize, spatialScale: cs.spatialScale, samplingRatio: cs.samplingRatio, aligned: cs.aligned });
    assert.is(E.runtime().stats.hostSyncs, syncs, 'roiAlign: no host sync');
    assertClose(await E.toArray(y), cs.y, `roiAlign fixture ${k}`, 1e-5, 1e-4);
    const want = refRoiAlign(cs.x, cs.xShape, cs.rois, cs.R, { PH: cs.outputSize[0], PW: cs.outputSize[1], spatialScale: cs.spatialScale, samplingRatio: cs.samplingRatio, aligned: cs.aligned });
    assertClose(want, cs.y, `refRoiAlign fixture ${k}`, 1e-5, 1e-4);
    [x, r, y].forEach((t) => t.dispose());
  }
});

for (const aligned of [false, true]) {
  for (const sr of [2, 0]) {
    test(`roiAlign gradient (aligned=${aligned}, samplingRatio=${sr}): GPU vs central differences`, async () => {
      const xShape = [2, 3, 7, 9];
      const R = 7;
      const rr = rois(R, 2, 7, 9, 0.5, 11 + sr);
      const o = { PH: 3, PW: 2, spatialScale: 0.5, samplingRatio: sr, aligned };
      await checkOp(`roiAlign a=${aligned} sr=${sr}`, [{ shape: xShape }, { shape: [R, 5], data: rr, grad: false }],
        ([x, r]) => roiAlign(x, r, { outputSize: [3, 2], spatialScale: 0.5, samplingRatio: sr, aligned }),
        ([x]) => refRoiAlign(x, xShape, rr, R, o), { gatol: 1e-4, grtol: 1e-3 });
    });
  }
}

test('roiAlign with C=19 (two 16-channel chunks), static and adaptive sampling: forward + gradient', async () => {
  const xShape = [2, 19, 6, 5];
  const R = 5;
  const rr = rois(R, 2, 6, 5, 1, 31);
  for (const sr of [3, -1]) {
    const o = { PH: 2, PW: 3, spatialScale: 1, samplingRatio: sr, aligned: true };
    await checkOp(`roiAlign C=19 sr=${sr}`, [{ shape: xShape }, { shape: [R, 5], data: rr, grad: false }],
      ([x, r]) => roiAlign(x, r, { outputSize: [2, 3], spatialScale: 1, samplingRatio: sr, aligned: true }),
      ([x]) => refRoiAlign(x, xShape, rr, R, o), { seed: 3 + sr });
  }
});

test('roiAlign separable kernel (samplingRatio 1..3) vs float64 reference: ragged C, odd maps, bad batch indices, spans and candidates', async () => {
  // C = 1 / 19 / 35: partial 16-channel chunks; W = 13 and 1: not multiples of 4; 3 images plus
  // batch indices -1 and 3 (zeros); whole-map rois at 2x2 output give bins > 2·sr px (candidate
  // lines), tiny and partly outside rois give shared tap lines (span walk) and invalid samples.
  const shapes = [[3, 1, 9, 13], [3, 19, 7, 13], [2, 35, 6, 1], [1, 16, 12, 10]];
  for (const [si, xShape] of shapes.entries()) {
    const [N, C, H, W] = xShape;
    for (const aligned of [false, true]) {
      for (const sr of [1, 2, 3]) {
        for (const [PH, PW, scale] of [[3, 2, 0.5], [2, 2, 1], [5, 4, 0.25]]) {
          // f32-exact inputs, so the float64 reference sees what the GPU sees
          const rr = Float32Array.from([...rois(9, N, H, W, scale, 100 * si + 10 * sr + PH), 0, -3, -2, W / scale + 2, H / scale + 3, N, 1, 1, 3, 3, -1, 0, 0, 2, 2, N - 1, -40, -40, -20, -20]);
          const R = rr.length / 5;
          const xd = Float32Array.from(randArray(N * C * H * W, 7 + si));
          const x = E.fromArray(xd, xShape);
          const r = E.fromArray(rr, [R, 5]);
          const y = roiAlign(x, r, { outputSize: [PH, PW], spatialScale: scale, samplingRatio: sr, aligned });
          const want = refRoiAlign(xd, xShape, rr, R, { PH, PW, spatialScale: scale, samplingRatio: sr, aligned });
          assertClose(await E.toArray(y), want, `roiAlign sep [${xShape}] ${PH}x${PW} scale ${scale} sr ${sr} aligned ${aligned}`, 1e-5, 1e-4);
          [x, r, y].forEach((t) => t.dispose());
        }
      }
    }
  }
});

test('multiScaleRoiAlign matches torchvision MultiScaleRoIAlign (4 levels, one dispatch)', async () => {
  const f = fx('multiscale');
  const feats = f.feats.map((d: number[], l: number) => E.fromArray(d, f.featShapes[l]));
  const boxes: number[] = [];
  f.boxes.forEach((b: number[], img: number) => {
    for (let i = 0; i < b.length / 4; i++) boxes.push(img, ...b.slice(4 * i, 4 * i + 4));
  });
  const R = boxes.length / 5;
  const lv = refLevels(boxes, R, 4);
  assert.ok(new Set(lv).size === 4, `fixture covers all 4 levels (got ${[...new Set(lv)]})`);
  const r = E.fromArray(boxes, [R, 5]);
  const syncs = E.runtime().stats.hostSyncs;
  const disp = E.runtime().stats.dispatches;
  const y = multiScaleRoiAlign(feats, r, { outputSize: f.outputSize, scales: f.scales, samplingRatio: f.samplingRatio });
  assert.is(E.runtime().stats.hostSyncs, syncs);
  assert.ok(E.runtime().stats.dispatches - disp <= 2, 'one pooling dispatch (plus poison fill)');
  assertClose(await E.toArray(y), f.y, 'multiScaleRoiAlign', 1e-5, 1e-4);
  [...feats, r, y].forEach((t) => t.dispose());
});

test('multiScaleRoiAlign separable forward (samplingRatio 1..3) vs per-level float64 references: C=19, 2 images, bad batch indices', async () => {
  const N = 2, C = 19;
  const shapes = [[N, C, 100, 152], [N, C, 50, 76], [N, C, 25, 38], [N, C, 13, 19]];
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const r = mulberry32(11);
  const boxes: number[] = [];
  // sides 8..640 px in a 400x608 image hit all 4 levels (k = 5 needs sqrt(area) >= 448); batch
  // index -1 and N give zeros
  for (let i = 0; i < 32; i++) {
    const w = i % 8 === 7 ? 500 + 140 * r() : 8 * 80 ** r(), h = i % 8 === 7 ? 450 + 140 * r() : 8 * 80 ** r();
    const x1 = r() * 608 - 40, y1 = r() * 400 - 40;
    boxes.push(i === 5 ? -1 : i === 9 ? N : i % N, x1, y1, x1 + w, y1 + h);
  }
  // the reference sees the f32 boxes the GPU gets (rounding a 600 px coordinate moves a tap by ~1e-5 px)
  for (let i = 0; i < boxes.length; i++) boxes[i] = Math.fround(boxes[i]);
  const R = boxes.length / 5;
  const lv = refLevels(boxes, R, 4);
  assert.ok(new Set(lv).size === 4, `boxes cover all 4 levels (got ${[...new Set(lv)]})`);
  const xs = shapes.map((s, l) => randArray(s.reduce((a, b) => a * b, 1), 100 + l));
  const feats = shapes.map((s, l) => E.fromArray(xs[l], s));
  const rt = E.fromArray(boxes, [R, 5]);
  // sr 0 = adaptive (the looped kernel); aligned = Detectron2's ROIAlignV2 half-cell shift
  for (const aligned of [false, true]) for (const sr of [0, 1, 2, 3]) {
    const want = new Float64Array(R * C * 9);
    for (let i = 0; i < R; i++) {
      want.set(refRoiAlign(xs[lv[i]], shapes[lv[i]], boxes.slice(5 * i, 5 * i + 5), 1, { PH: 3, PW: 3, spatialScale: scales[lv[i]], samplingRatio: sr, aligned }), i * C * 9);
    }
    const y = multiScaleRoiAlign(feats, rt, { outputSize: 3, scales, samplingRatio: sr, aligned });
    assertClose(await E.toArray(y), want, `multiScaleRoiAlign sr ${sr} aligned ${aligned}`, 1e-5, 1e-4);
    y.dispose();
  }
  [...feats, rt].forEach((t) => t.dispose());
});

test('multiScaleRoiAlign gradient: GPU vs central differences on per-level references', async () => {
  const shapes = [[1, 2, 16, 12], [1, 2, 8, 6], [1, 2, 4, 3], [1, 2, 2, 2]];
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const boxes = [0, 3, 4, 20, 30, 0, 10, 5, 60, 62, 0, 1, 2, 47, 63, 0, 5, 5, 9, 11, 0, 0, 0, 48, 64];
  const R = 5;
  const lv = refLevels(boxes, R, 4);
  for (const aligned of [false, true]) {
    const ref = (xs: Float64Array[]) => {
      const out = new Float64Array(R * 2 * 4);
      for (let i = 0; i < R; i++) {
        const y = refRoiAlign(xs[lv[i]], shapes[lv[i]], boxes.slice(5 * i, 5 * i + 5), 1, { PH: 2, PW: 2, spatialScale: scales[lv[i]], samplingRatio: 2, aligned });
        out.set(y, i * 8);
      }
      return out;
    };
    await checkOp(`multiScaleRoiAlign aligned=${aligned}`, [...shapes.map((s) => ({ shape: s })), { shape: [R, 5], data: Float64Array.from(boxes), grad: false }],
      (ts) => multiScaleRoiAlign(ts.slice(0, 4), ts[4], { outputSize: 2, scales, aligned }), ref);
  }
});

test('roiAlign / multiScaleRoiAlign: a non-integer samplingRatio is an error naming the op', () => {
  const x = E.zeros([1, 2, 8, 8]);
  const r = E.fromArray([0, 1, 1, 6, 6], [1, 5]);
  assert.throws(() => roiAlign(x, r, { outputSize: 2, samplingRatio: 1.5 }), /roiAlign: samplingRatio must be an integer .* got 1.5/);
  assert.throws(() => multiScaleRoiAlign([x], r, { outputSize: 2, scales: [1], samplingRatio: 2.5 }), /multiScaleRoiAlign: samplingRatio must be an integer .* got 2.5/);
  [x, r].forEach((t) => t.dispose());
});

test('roiPool matches torchvision fixtures', async () => {
  const f = fx('roi_pool');
  for (const [k, cs] of f.cases.entries()) {
    const x = E.fromArray(cs.x, cs.xShape);
    const r = E.fromArray(cs.rois, [cs.R, 5]);
    const y = roiPool(x, r, { outputSize: cs.outputSize, spatialScale: cs.spatialScale });
    assertClose(await E.toArray(y), cs.y, `roiPool fixture ${k}`, 0, 0);
    assertClose(refRoiPool(cs.x, cs.xShape, cs.rois, cs.R, { PH: cs.outputSize[0], PW: cs.outputSize[1], spatialScale: cs.spatialScale }), cs.y, `refRoiPool fixture ${k}`, 1e-7, 0);
    [x, r, y].forEach((t) => t.dispose());
  }
});

test('roiPool gradient (distinct values, away from ties): GPU vs central differences', async () => {
  const xShape = [2, 2, 8, 9];
  const R = 6;
  const rr = rois(R, 2, 8, 9, 1, 5);
  // a permutation of well-separated values: no ties, and h=1e-3 never changes the argmax
  const perm = randArray(2 * 2 * 8 * 9, 3).map((_, i) => i).sort((a, b) => Math.sin(a * 12.9898) - Math.sin(b * 12.9898));
  const xd = Float64Array.from(perm, (v) => v * 0.01 - 1.4);
  await checkOp('roiPool', [{ shape: xShape, data: xd }, { shape: [R, 5], data: rr, grad: false }],
    ([x, r]) => roiPool(x, r, { outputSize: [3, 2], spatialScale: 1 }),
    ([x]) => refRoiPool(x, xShape, rr, R, { PH: 3, PW: 2, spatialScale: 1 }), { h: 1e-3, atol: 1e-6 });
});

for (const maxPool of [false, true]) {
  test(`roiCrop (maxPool=${maxPool}) vs float64 reference and gradient`, async () => {
    const xShape = [2, 3, 6, 7];
    const R = 5;
    const stride = 4;
    const rr = rois(R, 2, 6, 7, 1 / stride, 21);
    const xd = Float64Array.from({ length: 2 * 3 * 6 * 7 }, (_, i) => Math.sin(i * 1.7) + 0.001 * i);
    await checkOp(`roiCrop maxPool=${maxPool}`, [{ shape: xShape, data: xd }, { shape: [R, 5], data: rr, grad: false }],
      ([x, r]) => roiCrop(x, r, { outputSize: 3, strideInPx: stride, maxPool }),
      ([x]) => refRoiCrop(x, xShape, rr, R, { P: 3, strideInPx: stride, maxPool }), { h: 1e-4 });
  });
}

test('roiCrop honours the batch index; roiAlign/roiCrop with zero rois', async () => {
  const x = E.fromArray(Float32Array.from({ length: 2 * 1 * 4 * 4 }, (_, i) => (i < 16 ? 1 : 2)), [2, 1, 4, 4]);
  const r = E.fromArray([1, 4, 4, 8, 8, 0, 4, 4, 8, 8], [2, 5]);
  const y = await E.toArray(roiCrop(x, r, { outputSize: 2, strideInPx: 4, maxPool: false }));
  assertClose(y, [2, 2, 2, 2, 1, 1, 1, 1], 'roiCrop batch index');
  const r0 = E.fromArray([], [0, 5]);
  assert.equal([...(await E.toArray(roiAlign(x, r0, { outputSize: 2 })))], []);
});

test.run();
