// Box ops: IoU, BoxCoder encode/decode (weights 1,1,1,1 and 10,10,5,5, dw/dh clamp), clip,
// small-box mask + compaction, anchors (torchvision AnchorGenerator, py-faster-rcnn), Matcher and
// the balanced sampler: torchvision fixtures and float64 references.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { anchorsPyFaster, anchorsTorchvision, boxIou, clipBoxes, decodeBoxes, encodeBoxes, matcher, removeSmallBoxes, sampler } from '../engine/ops-detect.ts';
import { refBoxIou, refDecode, refEncode, refMatcher, refAnchorGrid, pyFasterBaseAnchors } from '../kernels/boxes.ts';
import { assertClose, mulberry32 } from './util.ts';

const fx = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/detect-${name}.json`, import.meta.url), 'utf8'));

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

test('boxIou matches torchvision box_iou and the float64 reference', async () => {
  const f = fx('boxes');
  const a = E.fromArray(f.a, [f.a.length / 4, 4]);
  const b = E.fromArray(f.b, [f.b.length / 4, 4]);
  const got = await E.toArray(boxIou(a, b));
  assertClose(got, f.iou, 'boxIou vs torchvision', 1e-6, 1e-6);
  assertClose(refBoxIou(f.a, f.b), f.iou, 'refBoxIou vs torchvision', 1e-6, 1e-6);
});

test('encodeBoxes / decodeBoxes match torchvision BoxCoder (1,1,1,1) and (10,10,5,5), dw/dh clamp', async () => {
  for (const cs of fx('boxes').coder) {
    const n = cs.ref.length / 4;
    const ref = E.fromArray(cs.ref, [n, 4]), gt = E.fromArray(cs.gt, [n, 4]), codes = E.fromArray(cs.codes, [n, 4]);
    assertClose(await E.toArray(encodeBoxes(gt, ref, cs.weights)), cs.encoded, `encode w=${cs.weights}`, 1e-5, 1e-5);
    assertClose(await E.toArray(decodeBoxes(codes, ref, cs.weights)), cs.decoded, `decode w=${cs.weights}`, 1e-3, 1e-5);
    assertClose(refEncode(cs.gt, cs.ref, cs.weights), cs.encoded, 'refEncode', 1e-5, 1e-5);
    assertClose(refDecode(cs.codes, cs.ref, 1, cs.weights), cs.decoded, 'refDecode', 1e-3, 1e-5);
  }
});

test('decodeBoxes with K classes per row, clipBoxes, removeSmallBoxes (mask + GPU compaction)', async () => {
  const r = mulberry32(4);
  const N = 37, K = 3;
  const boxes = Float32Array.from({ length: N * 4 }, (_, i) => (i % 4 < 2 ? r() * 50 : 50 + r() * 50));
  const codes = Float32Array.from({ length: N * K * 4 }, () => (r() - 0.5) * 3);
  const dec = decodeBoxes(E.fromArray(codes, [N, 4 * K]), E.fromArray(boxes, [N, 4]), [10, 10, 5, 5]);
  const want = refDecode(codes, boxes, K, [10, 10, 5, 5]);
  assertClose(await E.toArray(dec), want, 'decode K=3', 1e-3, 1e-5);
  const flat = E.reshape(dec, [N * K, 4]);
  const clipped = clipBoxes(flat, [80, 90]);
  const wantClip = want.map((v, i) => Math.min(Math.max(v, 0), i % 2 === 0 ? 90 : 80));
  assertClose(await E.toArray(clipped), wantClip, 'clip', 1e-3, 1e-5);
  const syncs = E.runtime().stats.hostSyncs;
  const { indices, count } = removeSmallBoxes(clipped, 20);
  assert.is(E.runtime().stats.hostSyncs, syncs);
  const c = await E.toArray(clipped);
  const keepWant: number[] = [];
  for (let i = 0; i < N * K; i++) if (c[4 * i + 2] - c[4 * i] >= 20 && c[4 * i + 3] - c[4 * i + 1] >= 20) keepWant.push(i);
  const [idx, cnt] = await E.toArrays([indices, count]);
  assert.is(cnt[0], keepWant.length);
  assert.equal([...idx.slice(0, cnt[0])], keepWant);
  assert.ok([...idx.slice(cnt[0])].every((v) => v === -1));
});

test('anchors: torchvision AnchorGenerator (rounded, integer-division strides) and py-faster-rcnn', async () => {
  const f = fx('anchors');
  const a = anchorsTorchvision(f.imageSize, f.featSizes, f.sizes, f.aspectRatios);
  assert.equal([...(await E.toArray(a))], f.anchors);
  assert.equal(pyFasterBaseAnchors(16, f.pyFaster.ratios, f.pyFaster.scales), f.pyFaster.anchors);
  assert.equal(pyFasterBaseAnchors(16, f.pyFaster.ratios, f.pyFaster.scales2), f.pyFaster.anchors2);
  const p = anchorsPyFaster([5, 7], 16);
  assert.equal([...(await E.toArray(p))], [...refAnchorGrid(f.pyFaster.anchors, 5, 7, 16, 16)]);
});

test('matcher matches torchvision Matcher (thresholds, low-quality matches) and the reference', async () => {
  const f = fx('matcher');
  const M = f.gt.length / 4, N = f.pred.length / 4;
  const iou = boxIou(E.fromArray(f.gt, [M, 4]), E.fromArray(f.pred, [N, 4]));
  const q = await E.toArray(iou);
  for (const cs of f.cases) {
    const { matches, labels } = matcher(iou, { high: cs.high, low: cs.low, allowLowQualityMatches: cs.allowLowQuality });
    const [m, l] = await E.toArrays([matches, labels]);
    assert.equal([...m], cs.matches, `matches ${cs.high}/${cs.low}/${cs.allowLowQuality}`);
    const ref = refMatcher(q, M, N, cs.high, cs.low, cs.allowLowQuality);
    assert.equal([...l], [...ref.labels]);
    assert.equal([...m], [...ref.matches]);
  }
  const none = matcher(E.zeros([0, 5]), { high: 0.7, low: 0.3 });
  assert.equal([...(await E.toArray(none.labels))], [0, 0, 0, 0, 0]);
});

test('sampler: exact counts, only eligible picks, seeded and reproducible, zero host syncs', async () => {
  const r = mulberry32(8);
  const N = 3001;
  const lab = Int32Array.from({ length: N }, () => { const v = r(); return v < 0.03 ? 1 : v < 0.8 ? 0 : -1; });
  const nPos = lab.filter((v) => v === 1).length, nNeg = lab.filter((v) => v === 0).length;
  const labels = E.fromArray(lab, [N], 'i32');
  const syncs = E.runtime().stats.hostSyncs;
  const s1 = sampler(labels, { batchSizePerImage: 256, positiveFraction: 0.5, seed: 1 });
  const s2 = sampler(labels, { batchSizePerImage: 256, positiveFraction: 0.5, seed: 1 });
  const s3 = sampler(labels, { batchSizePerImage: 256, positiveFraction: 0.5, seed: 2 });
  assert.is(E.runtime().stats.hostSyncs, syncs);
  const [p1, n1, p2, n2, p3] = await E.toArrays([s1.pos, s1.neg, s2.pos, s2.neg, s3.pos]);
  const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);
  assert.is(sum(p1), Math.min(nPos, 128));
  assert.is(sum(n1), Math.min(nNeg, 256 - Math.min(nPos, 128)));
  for (let i = 0; i < N; i++) {
    if (p1[i]) assert.is(lab[i], 1);
    if (n1[i]) assert.is(lab[i], 0);
  }
  assert.equal([...p1], [...p2]);
  assert.equal([...n1], [...n2]);
  // plenty of positives: a different seed picks a different subset
  const many = E.fromArray(Int32Array.from({ length: 1000 }, (_, i) => (i % 2)), [1000], 'i32');
  const a = sampler(many, { batchSizePerImage: 64, positiveFraction: 0.25, seed: 1 });
  const b = sampler(many, { batchSizePerImage: 64, positiveFraction: 0.25, seed: 2 });
  const [ap, an, bp] = await E.toArrays([a.pos, a.neg, b.pos]);
  assert.is(sum(ap), 16);
  assert.is(sum(an), 48);
  assert.not.equal([...ap], [...bp]);
  assert.ok(sum(p3) === sum(p1));
});

test('detection ops free their temporaries (pool buffers in use return to the baseline)', async () => {
  const inUse = () => E.runtime().pool.memoryStats().buffersInUse;
  const { nms, topk, segmentedTopk, roiAlign, multiScaleRoiAlign, sampler: samp, splitKeepByImage, batchedNms } = await import('../engine/ops-detect.ts');
  const before = inUse();
  E.tidy(() => {
    const b = E.fromArray(Float32Array.from({ length: 400 }, (_, i) => (i % 4 < 2 ? i % 37 : 40 + (i % 23))), [100, 4]);
    const s = E.rand([100]);
    const c = E.fromArray(Int32Array.from({ length: 100 }, (_, i) => i % 2), [100], 'i32');
    nms(b, s, 0.5); topk(E.reshape(s, [1, 100]), 7); segmentedTopk(E.reshape(s, [1, 100]), [60, 40], 5);
    splitKeepByImage(batchedNms(b, s, c, 0.5), c, 2, 10);
    const x = E.rand([1, 3, 8, 8]); x.requiresGrad = true;
    const r = E.fromArray([0, 1, 1, 6, 6, 0, 0, 0, 3, 5], [2, 5]);
    E.backward(E.sum(roiAlign(x, r, { outputSize: 2, samplingRatio: 2 })));
    E.backward(E.sum(multiScaleRoiAlign([x], r, { outputSize: 2, scales: [0.25] })));
    x.grad?.dispose();
    samp(c, { batchSizePerImage: 10, positiveFraction: 0.5, seed: 3 });
    matcher(boxIou(b, b), { high: 0.7, low: 0.3, allowLowQualityMatches: true });
  });
  assert.is(inUse(), before, 'buffers in use after tidy');
});

test.run();
