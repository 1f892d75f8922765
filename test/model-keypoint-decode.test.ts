// Keypoint decoding (model/keypoint-decode.ts) against torchvision 0.14 heatmaps_to_keypoints
// (fixture from test/fixtures/gen_paste_fixtures.py): clear maxima, exactly flat and near-flat maps
// (argmax decided by float32 rounding), boxes under 1 px, 1 px, the heatmap's own size, larger.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { bicubicResize, bicubicTaps, fmaf, heatmapsToKeypoints } from '../model/keypoint-decode.ts';
import { assertClose } from './util.ts';

interface KpCase { S: number; R: number; K: number; logits: number[]; boxes: number[]; keypoints: number[]; scores: number[]; argmax: number[] }
const fixture = JSON.parse(readFileSync(new URL('./fixtures/paste-keypoints.json', import.meta.url), 'utf8')) as { keypoints: KpCase[] };

const outW = (c: KpCase, r: number) => Math.ceil(Math.max(Math.fround(c.boxes[4 * r + 2] - c.boxes[4 * r]), 1));

test('heatmapsToKeypoints equals torchvision: keypoints within 1e-3 px, scores within 1e-4, every argmax', () => {
  for (const c of fixture.keypoints) {
    const { keypoints, scores } = heatmapsToKeypoints(Float32Array.from(c.logits), c.R, c.K, c.S, Float32Array.from(c.boxes));
    assertClose(keypoints, c.keypoints, `keypoints S=${c.S}`, 1e-3, 0);
    assertClose(scores, c.scores, `scores S=${c.S}`, 1e-4, 0);
    // the emulation is bit-exact: same float32 scores, same argmax on flat and near-flat maps
    assert.equal([...scores], c.scores, `scores S=${c.S} bit for bit`);
    for (let o = 0; o < c.R * c.K; o++) {
      const r = Math.floor(o / c.K);
      const h = Math.ceil(Math.max(Math.fround(c.boxes[4 * r + 3] - c.boxes[4 * r + 1]), 1));
      const map = bicubicResize(Float32Array.from(c.logits), o * c.S * c.S, c.S, h, outW(c, r));
      let best = 0;
      for (let i = 1; i < map.length; i++) if (map[i] > map[best]) best = i;
      assert.is(best, c.argmax[o], `S=${c.S} RoI ${r} keypoint ${o % c.K}: argmax ${best} vs torchvision ${c.argmax[o]} on a ${h}x${outW(c, r)} map`);
    }
  }
});

test('float64 sums of the same weights pick other maxima on flat maps (what the float32 emulation buys)', () => {
  let differ = 0, total = 0;
  for (const c of fixture.keypoints) {
    const { keypoints } = heatmapsToKeypoints(Float32Array.from(c.logits), c.R, c.K, c.S, Float32Array.from(c.boxes), { arith: 'f64' });
    for (let o = 0; o < c.R * c.K; o++, total++) {
      if (Math.abs(keypoints[3 * o] - c.keypoints[3 * o]) > 1e-3 || Math.abs(keypoints[3 * o + 1] - c.keypoints[3 * o + 1]) > 1e-3) differ++;
    }
  }
  console.log(`    float64 accumulation: ${differ} of ${total} fixture keypoints land elsewhere than torchvision's`);
  assert.ok(differ > 0, 'the fixture has no map where float32 rounding decides the argmax');
});

test('bicubic taps: identity at equal sizes, weights sum to ~1, borders clamp', () => {
  const same = bicubicTaps(7, 7);
  for (let i = 0; i < 7; i++) assert.equal([...same.weights.subarray(4 * i, 4 * i + 4)], [0, 1, 0, 0]);
  const up = bicubicTaps(14, 31);
  for (let i = 0; i < 31; i++) {
    const s = up.weights.subarray(4 * i, 4 * i + 4).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(s - 1) < 1e-6, `weights of output ${i} sum to ${s}`);
    for (const t of up.taps.subarray(4 * i, 4 * i + 4)) assert.ok(t >= 0 && t < 14);
  }
  const src = Float32Array.from({ length: 25 }, (_, i) => i * 0.37 - 2);
  assert.equal([...bicubicResize(src, 0, 5, 5, 5)], [...src], 'same size copies');
});

test('fmaf rounds once: a double sum that lands on a float32 midpoint goes the exact sum\'s way', () => {
  const a = 1 + 2 ** -12; // a·a = 1 + 2^-11 + 2^-24: halfway between two float32s
  assert.is(fmaf(a, a, 2 ** -80), 1 + 2 ** -11 + 2 ** -23);
  assert.is(fmaf(a, a, -(2 ** -80)), 1 + 2 ** -11);
  assert.is(Math.fround(a * a + 2 ** -80), 1 + 2 ** -11, 'double then float32 rounds this tie to even');
  assert.is(fmaf(3, 5, -0.25), 14.75);
  assert.is(fmaf(Math.fround(0.1), 3, 0), Math.fround(Math.fround(0.1) * 3));
});

test('heatmapsToKeypoints: lengths that do not match [R, K, S, S] / [R, 4] are errors', () => {
  assert.throws(() => heatmapsToKeypoints(new Float32Array(10), 1, 2, 3, new Float32Array(4)), /heatmapsToKeypoints: logits has 10 values, \[R, K, S, S\] = \[1, 2, 3, 3\] needs 18/);
  assert.throws(() => heatmapsToKeypoints(new Float32Array(18), 1, 2, 3, new Float32Array(5)), /boxesXyxy has 5 values, R = 1 needs 4/);
  const none = heatmapsToKeypoints(new Float32Array(0), 0, 17, 56, new Float32Array(0));
  assert.is(none.keypoints.length, 0);
});

test.run();
