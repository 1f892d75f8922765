// The pruned keypoint argmax (model/keypoint-decode.ts argmaxPruned, the default of
// heatmapsToKeypoints) against the whole-map resize it replaces (fullMaps: bicubicResize + first
// maximum), bit for bit: same index, same float32 score. Maps chosen where pruning could go wrong:
// peaked (most cells skipped), flat and near-flat (ties, argmax decided by float32 rounding), two
// equal peaks (first one wins), plateaus, large magnitudes, negative maps, non-finite logits (full
// path), boxes under 1 px, equal to S, far larger than S, very wide or tall.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { KP_TILE, axisTiles, argmaxPruned, heatmapsToKeypoints } from '../model/keypoint-decode.ts';
import { mulberry32 } from './util.ts';

type MapKind = 'random' | 'peaked' | 'flat' | 'nearFlat' | 'twoPeaks' | 'plateau' | 'large' | 'negative' | 'quantized';
const KINDS: MapKind[] = ['random', 'peaked', 'flat', 'nearFlat', 'twoPeaks', 'plateau', 'large', 'negative', 'quantized'];

function makeMap(kind: MapKind, S: number, rnd: () => number): Float32Array {
  const m = new Float32Array(S * S);
  const cx = rnd() * S, cy = rnd() * S, sig = 0.7 + rnd() * 3;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const g = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sig * sig));
      const i = y * S + x;
      switch (kind) {
        case 'random': m[i] = rnd() * 4 - 2; break;
        case 'peaked': m[i] = 12 * g - 3 + 0.3 * rnd(); break;
        case 'flat': m[i] = 0.375; break;
        case 'nearFlat': m[i] = 1 + (rnd() < 0.2 ? 2 ** -22 : 0); break;
        case 'twoPeaks': m[i] = 0; break;
        case 'plateau': m[i] = Math.min(5, 20 * g); break;
        case 'large': m[i] = 3e4 * g + 1e4 * (rnd() - 0.5); break;
        case 'negative': m[i] = -50 + 10 * g + rnd(); break;
        case 'quantized': m[i] = Math.round(rnd() * 3) * 0.25; break;
      }
    }
  }
  if (kind === 'twoPeaks') {
    // the same peak twice, so the two maxima are equal; the first in row-major order must win
    const px = Math.floor(rnd() * (S / 2)), py = Math.floor(rnd() * S), dx = 1 + Math.floor(S / 2);
    m[py * S + px] = 4; m[py * S + Math.min(px + dx, S - 1)] = 4;
  }
  return m;
}

function boxFor(S: number, rnd: () => number, i: number): Float32Array {
  const shapes: [number, number][] = [[0.4, 0.7], [1, 1], [S, S], [S + 0.5, S - 0.25], [3 * S + 7.3, 2.5 * S], [5.5, 200], [180, 4], [23.7, 41.2], [1.6, 2.2]];
  const [w, h] = shapes[i % shapes.length];
  const x1 = Math.fround(rnd() * 50), y1 = Math.fround(rnd() * 50);
  return Float32Array.from([x1, y1, x1 + w, y1 + h]);
}

test('pruned argmax equals the whole-map resize bit for bit (index and float32 score)', () => {
  const rnd = mulberry32(7);
  let maps = 0;
  for (const S of [5, 14, 56]) {
    for (let trial = 0; trial < (S === 56 ? 3 : 6); trial++) {
      for (let kind = 0; kind < KINDS.length; kind++) {
        const K = 2;
        const boxes: Float32Array[] = Array.from({ length: 9 }, (_, i) => boxFor(S, rnd, i + trial));
        const R = boxes.length;
        const logits = new Float32Array(R * K * S * S);
        for (let o = 0; o < R * K; o++) logits.set(makeMap(KINDS[kind], S, rnd), o * S * S);
        const bx = new Float32Array(R * 4);
        boxes.forEach((b, r) => bx.set(b, 4 * r));
        const fast = heatmapsToKeypoints(logits, R, K, S, bx);
        const full = heatmapsToKeypoints(logits, R, K, S, bx, { fullMaps: true });
        for (let o = 0; o < R * K; o++, maps++) {
          const what = `S=${S} ${KINDS[kind]} trial ${trial} RoI ${Math.floor(o / K)} box [${[...boxes[Math.floor(o / K)]]}]`;
          assert.is(fast.scores[o], full.scores[o], `${what}: score`);
          assert.equal([...fast.keypoints.subarray(3 * o, 3 * o + 3)], [...full.keypoints.subarray(3 * o, 3 * o + 3)], `${what}: keypoint`);
        }
      }
    }
  }
  console.log(`    ${maps} maps equal`);
});

test('torchvision fixture: pruned and whole-map decodes agree', () => {
  const fx = JSON.parse(readFileSync(new URL('./fixtures/paste-keypoints.json', import.meta.url), 'utf8')) as { keypoints: { S: number; R: number; K: number; logits: number[]; boxes: number[] }[] };
  for (const c of fx.keypoints) {
    const a = heatmapsToKeypoints(Float32Array.from(c.logits), c.R, c.K, c.S, Float32Array.from(c.boxes));
    const b = heatmapsToKeypoints(Float32Array.from(c.logits), c.R, c.K, c.S, Float32Array.from(c.boxes), { fullMaps: true });
    assert.equal([...a.keypoints], [...b.keypoints], `S=${c.S} keypoints`);
    assert.equal([...a.scores], [...b.scores], `S=${c.S} scores`);
  }
});

test('non-finite logits take the whole-map path (NaN first pixel: index 0, as the first-maximum loop)', () => {
  const S = 8, best = { index: -7, value: 0 };
  const ax = axisTiles(S, 19), ay = axisTiles(S, 13);
  const m = makeMap('peaked', S, mulberry32(3));
  m[0] = NaN;
  argmaxPruned(m, 0, S, ay, ax, best);
  assert.is(best.index, 0);
  assert.ok(Number.isNaN(best.value));
  const m2 = makeMap('peaked', S, mulberry32(4));
  m2[5 * S + 2] = Infinity;
  argmaxPruned(m2, 0, S, ay, ax, best);
  const full = heatmapsToKeypoints(m2, 1, 1, S, Float32Array.from([0, 0, 19, 13]), { fullMaps: true });
  assert.is(best.value, full.scores[0]);
});

test('axisTiles: every output of a tile reads taps inside the tile window', () => {
  for (const [S, out] of [[56, 1], [56, 40], [56, 56], [56, 301], [7, 2], [7, 9]]) {
    const a = axisTiles(S, out);
    assert.is(a.tiles, Math.ceil(out / KP_TILE));
    for (let i = 0; i < out; i++) {
      const q = Math.floor(i / KP_TILE);
      for (const t of a.taps.subarray(4 * i, 4 * i + 4)) assert.ok(t >= a.lo[q] && t <= a.hi[q], `S=${S} out=${out} output ${i} tap ${t} outside tile ${q} window [${a.lo[q]}, ${a.hi[q]}]`);
    }
    assert.ok(a.nMax < 0.25 && a.pMax < 1.25 && a.sumErr < 1e-6, `S=${S} out=${out}: P ${a.pMax}, N ${a.nMax}, |Σw−1| ${a.sumErr}`);
  }
});

test.run();
