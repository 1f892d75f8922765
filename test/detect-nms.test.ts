// Bitonic argsort / top-k and GPU NMS: torchvision fixtures (score ties, IoU exactly at the
// threshold, identical boxes, 0/1 boxes, batched), float64 references on random sets, and the
// host-sync counter (NMS and top-k never read back).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { argsort, batchedNms, nms, segmentedTopk, splitKeepByImage, topk } from '../engine/ops-detect.ts';
import { refArgsortDesc } from '../kernels/sort.ts';
import { refNms, f32ThreshBelow } from '../kernels/nms.ts';
import { mulberry32, randArray } from './util.ts';

const fx = JSON.parse(readFileSync(new URL('./fixtures/detect-nms.json', import.meta.url), 'utf8'));

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

async function runNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, thr: number, cats?: ArrayLike<number>, maskBytes?: number): Promise<number[]> {
  const N = scores.length;
  const b = E.fromArray(Float32Array.from(boxes), [N, 4]);
  const s = E.fromArray(Float32Array.from(scores), [N]);
  const c = cats ? E.fromArray(Int32Array.from(cats), [N], 'i32') : null;
  const syncs = E.runtime().stats.hostSyncs;
  const { keep, count } = c ? batchedNms(b, s, c, thr, { maskBytes }) : nms(b, s, thr, { maskBytes });
  assert.is(E.runtime().stats.hostSyncs, syncs, 'nms: zero host syncs');
  const [k, n] = await E.toArrays([keep, count]);
  [b, s, keep, count, ...(c ? [c] : [])].forEach((t) => t.dispose());
  const kept = [...k.slice(0, n[0])];
  assert.ok([...k.slice(n[0])].every((v) => v === -1), 'entries after count are -1');
  return kept;
}

test('nms matches torchvision fixtures (ties, IoU exactly at thresh, identical boxes, 0 and 1 box)', async () => {
  for (const [i, cs] of fx.cases.entries()) {
    const got = await runNms(cs.boxes, cs.scores, cs.iouThresh);
    assert.equal(got, cs.keep, `nms fixture ${i} (N=${cs.scores.length}, thr=${cs.iouThresh})`);
  }
});

test('batchedNms matches torchvision fixtures', async () => {
  for (const [i, cs] of fx.batched.entries()) {
    assert.equal(await runNms(cs.boxes, cs.scores, cs.iouThresh, cs.idxs), cs.keep, `batched fixture ${i}`);
  }
});

function randomBoxes(n: number, seed: number, size = 200): { boxes: Float32Array; scores: Float32Array; cats: Int32Array } {
  const r = mulberry32(seed);
  const boxes = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const x = r() * size, y = r() * size, w = 2 + r() * size * 0.2, h = 2 + r() * size * 0.2;
    boxes.set([x, y, x + w, y + h], 4 * i);
  }
  // quantised scores: plenty of exact ties
  return { boxes, scores: Float32Array.from({ length: n }, () => Math.round(r() * 1000) / 1000), cats: Int32Array.from({ length: n }, () => Math.floor(r() * 3)) };
}

test('nms vs float64 reference on random sets of 1 … 5000 boxes (incl. a multi-chunk mask)', async () => {
  for (const [n, thr] of [[1, 0.5], [2, 0.5], [31, 0.3], [33, 0.5], [257, 0.6], [1000, 0.7], [5000, 0.5]] as const) {
    const { boxes, scores } = randomBoxes(n, n * 7 + 1);
    const want = refNms(boxes, scores, f32ThreshBelow(thr));
    assert.equal(await runNms(boxes, scores, thr), want, `nms N=${n}`);
  }
});

test('batchedNms vs float64 reference (3 categories, 2000 boxes)', async () => {
  const { boxes, scores, cats } = randomBoxes(2000, 99);
  assert.equal(await runNms(boxes, scores, 0.5, cats), refNms(boxes, scores, 0.5, cats));
});

test('batched NMS over 2 images × 4 levels in one chain, split per image (post-NMS top-N)', async () => {
  const N = 1500, levels = 4, topN = 150;
  const { boxes, scores } = randomBoxes(N, 17, 120);
  const r = mulberry32(3);
  const img = Int32Array.from({ length: N }, () => (r() < 0.4 ? 1 : 0));
  const lvl = Int32Array.from({ length: N }, () => Math.floor(r() * levels));
  const cats = Int32Array.from({ length: N }, (_, i) => img[i] * levels + lvl[i]);
  const b = E.fromArray(boxes, [N, 4]), s = E.fromArray(scores, [N]);
  const ct = E.fromArray(cats, [N], 'i32'), it = E.fromArray(img, [N], 'i32');
  const syncs = E.runtime().stats.hostSyncs;
  const per = splitKeepByImage(batchedNms(b, s, ct, 0.7), it, 2, topN);
  assert.is(E.runtime().stats.hostSyncs, syncs);
  const [k, c] = await E.toArrays([per.keep, per.count]);
  for (let im = 0; im < 2; im++) {
    const sel = Array.from({ length: N }, (_, i) => i).filter((i) => img[i] === im);
    const kept = refNms(sel.flatMap((i) => [...boxes.slice(4 * i, 4 * i + 4)]), sel.map((i) => scores[i]), 0.7, sel.map((i) => lvl[i])).map((j) => sel[j]);
    const want = kept.slice(0, topN);
    assert.is(c[im], want.length, `image ${im} count`);
    assert.equal([...k.slice(im * topN, im * topN + want.length)], want, `image ${im} kept`);
    assert.ok([...k.slice(im * topN + want.length, (im + 1) * topN)].every((v) => v === -1));
  }
});

test('nms with a small chunk budget (many greedy chunks) equals the single-chunk result', async () => {
  const { nmsChunkRows } = await import('../kernels/nms.ts');
  assert.is(nmsChunkRows(3000, 32 * 94 * 4 * 3), 96);
  // dense boxes so suppression crosses chunk boundaries; 3000 boxes in 32 chunks of 96 rows
  const { boxes, scores, cats } = randomBoxes(3000, 3, 60);
  const want = refNms(boxes, scores, 0.4);
  assert.equal(await runNms(boxes, scores, 0.4, undefined, 32 * 94 * 4 * 3), want, 'nms 3000 boxes, 32 chunks');
  assert.equal(await runNms(boxes, scores, 0.4, cats, 32 * 94 * 4 * 5), refNms(boxes, scores, 0.4, cats), 'batched, 19 chunks');
  assert.ok(nmsChunkRows(250_000) * Math.ceil(250_000 / 32) * 4 <= 64 << 20, '250k boxes: mask chunk within 64 MiB');
});

test('nms on 250k boxes (RPN scale: 5 levels × 2 images; clustered so the CPU reference stays fast)', async () => {
  const N = 250_000;
  const r = mulberry32(250);
  const boxes = new Float32Array(4 * N);
  const centers = Array.from({ length: 60 }, () => [r() * 1100 + 50, r() * 700 + 50, 20 + r() * 200]);
  for (let i = 0; i < N; i++) {
    const [cx, cy, s] = centers[i % centers.length];
    const w = s * (0.8 + 0.4 * r()), h = s * (0.8 + 0.4 * r());
    const x = cx + (r() - 0.5) * s * 0.3, y = cy + (r() - 0.5) * s * 0.3;
    boxes.set([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 4 * i);
  }
  const scores = Float32Array.from({ length: N }, () => r());
  const t0 = performance.now();
  const got = await runNms(boxes, scores, 0.5);
  const want = refNms(boxes, scores, 0.5);
  assert.equal(got, want, `nms 250k: kept ${got.length} vs ${want.length} (${(performance.now() - t0).toFixed(0)} ms)`);
});

test('argsort: descending, stable by index, any length (1 … 3000, rows)', async () => {
  for (const [B, n] of [[1, 1], [1, 2], [3, 5], [2, 511], [1, 513], [2, 1000], [1, 3000]]) {
    const d = Float32Array.from(randArray(B * n, n + B), (v) => Math.round(v * 20) / 20);
    const x = E.fromArray(d, [B, n]);
    const { values, indices } = argsort(x);
    const want = refArgsortDesc(d, B, n);
    const got = await E.toArray(indices);
    assert.equal([...got], [...want], `argsort [${B}, ${n}] indices`);
    const v = await E.toArray(values);
    assert.equal([...v], [...want].map((j, i) => d[Math.floor(i / n) * n + j]), `argsort [${B}, ${n}] values`);
    [x, values, indices].forEach((t) => t.dispose());
  }
});

test('topk for k ≪ n (bitonic prune path) and k near n (full sort)', async () => {
  for (const [B, n, k] of [[1, 5000, 1], [2, 5000, 5], [1, 5000, 37], [1, 5000, 300], [3, 4097, 1024], [1, 3000, 2000], [1, 2048, 1024]]) {
    const d = Float32Array.from(randArray(B * n, k + n), (v) => Math.round(v * 300) / 300);
    const x = E.fromArray(d, [B, n]);
    const t = topk(x, k);
    assert.equal([...(await E.toArray(t.indices))], [...refArgsortDesc(d, B, n, k)], `topk [${B}, ${n}] k=${k}`);
    [x, t.values, t.indices].forEach((q) => q.dispose());
  }
});

test('topk over the last dim and per segment (per image, per level); zero host syncs', async () => {
  const B = 2, lens = [700, 300, 50, 13];
  const n = lens.reduce((a, b) => a + b);
  const d = Float32Array.from(randArray(B * n, 5), (v) => Math.round(v * 100) / 100);
  const x = E.fromArray(d, [B, n]);
  const syncs = E.runtime().stats.hostSyncs;
  const t = topk(x, 37);
  const seg = segmentedTopk(x, lens, 100);
  assert.is(E.runtime().stats.hostSyncs, syncs, 'topk: zero host syncs');
  assert.equal([...(await E.toArray(t.indices))], [...refArgsortDesc(d, B, n, 37)]);
  const want: number[] = [];
  for (let b = 0; b < B; b++) {
    let at = 0;
    for (const len of lens) {
      const k = Math.min(100, len);
      const part = d.slice(b * n + at, b * n + at + len);
      want.push(...[...refArgsortDesc(part, 1, len, k)].map((j) => j + at));
      at += len;
    }
  }
  assert.equal([...(await E.toArray(seg))], want);
  [x, t.values, t.indices, seg].forEach((q) => q.dispose());
});

test.run();
