// RoI Align backward (the per-tile gather, kernels/roi-align-bwd.ts) on maps of several 16×16
// tiles, against the float64 adjoint: RoIs crossing tile borders, partly outside the map, tiny,
// covering the map, out-of-range batch indices, an image with no RoI; bitwise reproducibility.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { multiScaleRoiAlign, roiAlign } from '../engine/ops-detect.ts';
import { refLevels } from '../kernels/roi-align.ts';
import { refRoiAlignBackward } from '../kernels/roi-align-bwd.ts';
import { assertClose, mulberry32, randArray } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

/** rois [R, 5] in image px over maps [H, W] at `scale`: mixed sizes, some outside, tiny, whole-map, bad batch ids. */
function rois(R: number, N: number, H: number, W: number, scale: number, seed: number, nImagesWithRois = N): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(R * 5);
  for (let i = 0; i < R; i++) {
    const kind = i % 6;
    const [iw, ih] = [W / scale, H / scale];
    let x1 = (r() * 1.2 - 0.15) * iw, y1 = (r() * 1.2 - 0.15) * ih;
    let w = (0.05 + r() * 0.5) * iw, h = (0.05 + r() * 0.5) * ih;
    if (kind === 3) { w = r() * 0.8 / scale; h = r() * 0.8 / scale; } // under one map pixel
    if (kind === 4) { x1 = -r() * 4; y1 = -r() * 4; w = iw + r() * 8; h = ih + r() * 8; } // the whole map
    const b = kind === 5 && i % 12 === 5 ? (i % 24 === 5 ? -1 : N) : Math.floor(r() * nImagesWithRois);
    out.set([b, x1, y1, x1 + w, y1 + h], i * 5);
  }
  return out;
}

async function gradOf(xShape: number[], rr: Float64Array, g: Float64Array, o: { outputSize: [number, number]; spatialScale: number; samplingRatio: number; aligned: boolean }): Promise<Float32Array> {
  const x = E.zeros(xShape);
  x.requiresGrad = true;
  const rt = E.fromArray(rr, [rr.length / 5, 5]);
  const y = roiAlign(x, rt, o);
  E.backward(y, E.fromArray(g, y.shape));
  const gx = (await E.toArray(x.grad!)) as Float32Array;
  [x, rt, y].forEach((t) => t.dispose());
  return gx;
}

for (const aligned of [false, true]) {
  for (const sr of [1, 2, 3, 0]) {
    test(`roiAlign backward (aligned=${aligned}, sr ${sr}): 3 images × 37 ch (two 32-channel chunks) × 37×45 (3×3 tiles) vs float64 adjoint`, async () => {
      const xShape = [3, 37, 37, 45];
      const R = 30;
      // image 2 gets no RoI: its gradient must be written as exact zeros (gx is NaN-poisoned)
      const rr = rois(R, 3, 37, 45, 0.5, 40 + sr + (aligned ? 10 : 0), 2);
      for (const [PH, PW] of [[3, 5], [7, 7]]) {
        const g = randArray(R * 37 * PH * PW, 7 + PH);
        const o = { outputSize: [PH, PW] as [number, number], spatialScale: 0.5, samplingRatio: sr, aligned };
        const got = await gradOf(xShape, rr, g, o);
        const want = refRoiAlignBackward(g, xShape, rr, R, { PH, PW, spatialScale: 0.5, samplingRatio: sr, aligned });
        assertClose(got, want, `roiAlign bwd a=${aligned} sr=${sr} ${PH}×${PW}`, 1e-5, 1e-4);
        assert.ok(got.subarray(2 * 37 * 37 * 45).every((v) => v === 0), 'image without RoIs: gradient exactly 0');
        const again = await gradOf(xShape, rr, g, o);
        assert.ok(got.every((v, i) => Object.is(v, again[i])), 'backward is bitwise reproducible');
      }
    });
  }
}

test('roiAlign backward: adaptive grid of a large RoI (~45 samples per bin and axis) and 1×1 output', async () => {
  const xShape = [1, 3, 50, 60];
  const rr = Float64Array.from([0, -3, 2, 58, 49, 0, 10.3, 4.7, 11.1, 5.2]);
  const g = randArray(2 * 3, 5);
  const got = await gradOf(xShape, rr, g, { outputSize: [1, 1], spatialScale: 1, samplingRatio: 0, aligned: true });
  const want = refRoiAlignBackward(g, xShape, rr, 2, { PH: 1, PW: 1, spatialScale: 1, samplingRatio: 0, aligned: true });
  assertClose(got, want, 'roiAlign bwd adaptive 1×1', 1e-6, 1e-4);
});

test('multiScaleRoiAlign backward: 4 levels of several tiles, 2 images, vs per-level float64 adjoints', async () => {
  const C = 5;
  const shapes = [[2, C, 40, 56], [2, C, 20, 28], [2, C, 10, 14], [2, C, 5, 7]];
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const R = 40;
  const r = mulberry32(77);
  const boxes = new Float64Array(R * 5);
  for (let i = 0; i < R; i++) {
    // sqrt(area) ~40 / 150 / 300 / 600 px: LevelMapper levels 2..5 in turn (a 160×224 image)
    const side = [40, 150, 300, 600][i % 4];
    const w = side * (0.8 + 0.4 * r()), h = side * (0.8 + 0.4 * r());
    const x1 = r() * (224 - w * 0.8), y1 = r() * (160 - h * 0.8);
    boxes.set([i % 2, x1, y1, x1 + w, y1 + h], i * 5);
  }
  const lv = refLevels(boxes, R, 4);
  assert.equal(new Set(lv).size, 4, 'every level has RoIs');
  const g = randArray(R * C * 49, 9);
  for (const aligned of [false, true]) {
    const feats = shapes.map((s) => { const f = E.zeros(s); f.requiresGrad = true; return f; });
    const rt = E.fromArray(boxes, [R, 5]);
    const y = multiScaleRoiAlign(feats, rt, { outputSize: 7, scales, aligned });
    E.backward(y, E.fromArray(g, y.shape));
    for (let l = 0; l < 4; l++) {
      const idx = lv.flatMap((v, i) => (v === l ? [i] : []));
      const rl = new Float64Array(idx.length * 5), gl = new Float64Array(idx.length * C * 49);
      idx.forEach((i, k) => { rl.set(boxes.subarray(i * 5, i * 5 + 5), k * 5); gl.set(g.subarray(i * C * 49, (i + 1) * C * 49), k * C * 49); });
      const want = refRoiAlignBackward(gl, shapes[l], rl, idx.length, { PH: 7, PW: 7, spatialScale: scales[l], samplingRatio: 2, aligned });
      assertClose(await E.toArray(feats[l].grad!), want, `multiScaleRoiAlign bwd level ${l} aligned ${aligned}`, 1e-5, 1e-4);
    }
    [...feats, rt, y].forEach((t) => t.dispose());
  }
});

test.run();
