// Batched matching ops (leading image dim, one dispatch or a fixed few for all images): boxIou
// [B, M, 4] × [N, 4] (shared anchors) and × [B, N, 4], encodeBoxes with shared or per-image
// proposals, matcher on [B, M, N], sampler on [B, N] with one seed per image, compact per row.
// Each equals the per-image loop the model ran before, bit for bit, and the float64 / host
// references per row; padded GT rows (valid = 0), all-negative images, B = 1 and seed-slot edges
// (B = 4, 5, 9) included. Outputs are poisoned, so unwritten elements show up as NaN / garbage.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { boxIou, compact, encodeBoxes, matcher, sampler } from '../engine/ops-detect.ts';
import { refBoxIou, refEncode, refMatcher } from '../kernels/boxes.ts';
import { refSampler } from '../kernels/sampler.ts';
import { assertClose, mulberry32 } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));
const row = (t: E.Tensor, b: number) => E.reshape(E.narrow(t, 0, b, 1), t.shape.slice(1));

/** n random xyxy boxes in a W×H image, sides 2..maxSide; a fraction copied from `copyFrom` (exact ties). */
function randBoxes(n: number, r: () => number, W = 200, H = 160, maxSide = 90, copyFrom?: Float32Array, copyFrac = 0): Float32Array {
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    if (copyFrom && r() < copyFrac) {
      const j = Math.floor(r() * (copyFrom.length / 4));
      out.set(copyFrom.subarray(4 * j, 4 * j + 4), 4 * i);
      continue;
    }
    const w = 2 + r() * maxSide, h = 2 + r() * maxSide;
    const x = r() * (W - w), y = r() * (H - h);
    out.set([x, y, x + w, y + h], 4 * i);
  }
  return out;
}

interface Scene { B: number; G: number; N: number; gt: Float32Array; valid: Float32Array; anchors: Float32Array; what: string }

/** Images with padded GT rows, one image whose GT are all padding, one whose GT lie off the anchors (all negative). */
function scenes(): Scene[] {
  const r = mulberry32(5);
  const out: Scene[] = [];
  for (const [B, G, N] of [[1, 3, 700], [4, 5, 1000], [5, 7, 513], [9, 2, 300], [8, 12, 2049]]) {
    const anchors = randBoxes(N, r);
    const gt = new Float32Array(B * G * 4), valid = new Float32Array(B * G);
    for (let b = 0; b < B; b++) {
      gt.set(randBoxes(G, r, 200, 160, 90, anchors, 0.3), b * G * 4);
      for (let g = 0; g < G; g++) valid[b * G + g] = r() < 0.75 ? 1 : 0;
      if (b === 0) valid[0] = 1;
    }
    if (B > 1) valid.fill(0, G, 2 * G); // image 1: padding only
    if (B > 2) gt.set(Float32Array.from({ length: G * 4 }, (_, k) => [1000, 1000, 1010, 1012][k % 4]), 2 * G * 4); // image 2: far off
    out.push({ B, G, N, gt, valid, anchors, what: `B ${B} G ${G} N ${N}` });
  }
  return out;
}

test('boxIou batched: [B, M, 4] × [N, 4], × [B, N, 4] and [M, 4] × [B, N, 4] equal the per-image loop bit for bit and the float64 reference', async () => {
  for (const s of scenes()) {
    const gt = E.fromArray(s.gt, [s.B, s.G, 4]);
    const an = E.fromArray(s.anchors, [s.N, 4]);
    const r = mulberry32(s.N);
    const per = randBoxes(s.B * s.N, r); // per-image "proposals"
    const pr = E.fromArray(per, [s.B, s.N, 4]);
    const syncs = E.runtime().stats.hostSyncs;
    const shared = boxIou(gt, an), both = boxIou(gt, pr), left = boxIou(an, gt);
    const loops = Array.from({ length: s.B }, (_, b) => [boxIou(row(gt, b), an), boxIou(row(gt, b), row(pr, b)), boxIou(an, row(gt, b))]);
    assert.is(E.runtime().stats.hostSyncs, syncs, `${s.what}: host syncs`);
    assert.equal(shared.shape, [s.B, s.G, s.N]);
    assert.equal(left.shape, [s.B, s.N, s.G]);
    const [a1, a2, a3] = await E.toArrays([shared, both, left]);
    const loopArr = await E.toArrays(loops.flat());
    for (let b = 0; b < s.B; b++) {
      const g = s.gt.subarray(b * s.G * 4, (b + 1) * s.G * 4);
      const GN = s.G * s.N;
      assert.equal(bits(a1.subarray(b * GN, (b + 1) * GN)), bits(loopArr[3 * b]), `${s.what} image ${b}: shared anchors vs loop`);
      assert.equal(bits(a2.subarray(b * GN, (b + 1) * GN)), bits(loopArr[3 * b + 1]), `${s.what} image ${b}: per-image vs loop`);
      assert.equal(bits(a3.subarray(b * GN, (b + 1) * GN)), bits(loopArr[3 * b + 2]), `${s.what} image ${b}: shared left operand vs loop`);
      assertClose(a1.subarray(b * GN, (b + 1) * GN), refBoxIou(g, s.anchors), `${s.what} image ${b}: vs float64`, 1e-6, 1e-5);
      assertClose(a2.subarray(b * GN, (b + 1) * GN), refBoxIou(g, per.subarray(b * s.N * 4, (b + 1) * s.N * 4)), `${s.what} image ${b}: per-image vs float64`, 1e-6, 1e-5);
    }
  }
  assert.throws(() => boxIou(E.zeros([2, 3, 4]), E.zeros([3, 5, 4])), /boxIou: batch sizes differ, a \[2,3,4\] vs b \[3,5,4\]/);
  assert.throws(() => boxIou(E.zeros([2, 3, 5]), E.zeros([5, 4])), /boxIou: boxes must be f32 \[N, 4\] or \[B, N, 4\], got f32 \[2,3,5\]/);
  assert.equal(boxIou(E.zeros([3, 0, 4]), E.zeros([5, 4])).shape, [3, 0, 5]);
});

test('encodeBoxes batched: gt [B, N, 4] with shared [N, 4] or per-image proposals equals the per-image loop bit for bit and the float64 reference', async () => {
  const r = mulberry32(9);
  for (const [B, N] of [[1, 10], [3, 257], [8, 1000]]) {
    const props = randBoxes(N, r), gts = randBoxes(B * N, r), perProps = randBoxes(B * N, r);
    const an = E.fromArray(props, [N, 4]), gt = E.fromArray(gts, [B, N, 4]), pp = E.fromArray(perProps, [B, N, 4]);
    const w: [number, number, number, number] = [10, 10, 5, 5];
    const shared = encodeBoxes(gt, an, w), both = encodeBoxes(gt, pp, w);
    const loops = Array.from({ length: B }, (_, b) => [encodeBoxes(row(gt, b), an, w), encodeBoxes(row(gt, b), row(pp, b), w)]);
    const [a1, a2] = (await E.toArrays([shared, both])) as Float32Array[];
    const la = await E.toArrays(loops.flat());
    for (let b = 0; b < B; b++) {
      const sl = (a: Float32Array) => a.subarray(b * N * 4, (b + 1) * N * 4);
      assert.equal(bits(sl(a1)), bits(la[2 * b]), `B ${B} N ${N} image ${b}: shared vs loop`);
      assert.equal(bits(sl(a2)), bits(la[2 * b + 1]), `B ${B} N ${N} image ${b}: per-image vs loop`);
      assertClose(sl(a1), refEncode(gts.subarray(b * N * 4, (b + 1) * N * 4), props, w), `B ${B} image ${b}: vs float64`, 1e-4, 1e-4);
    }
  }
  assert.throws(() => encodeBoxes(E.zeros([2, 3, 4]), E.zeros([4, 4])), /encodeBoxes: proposals \[4,4\] must be \[3,4\] for gt \[2,3,4\]/);
});

test('matcher batched on iou [B, M, N]: = per-image matcher and host reference, padded GT rows, all-negative images, both low-quality modes, no host syncs', async () => {
  let fgTotal = 0, lowQuality = 0;
  for (const s of scenes()) {
    const gt = E.fromArray(s.gt, [s.B, s.G, 4]);
    const gv = E.fromArray(s.valid, [s.B, s.G, 1]);
    const an = E.fromArray(s.anchors, [s.N, 4]);
    const iou = E.where(gv, boxIou(gt, an), E.full([], -1)); // as model/rpn.ts: padding rows -1
    for (const [high, low, allowLow] of [[0.7, 0.3, true], [0.5, 0.5, false], [0.5, 0.4, true]] as [number, number, boolean][]) {
      const syncs = E.runtime().stats.hostSyncs;
      const m = matcher(iou, { high, low, allowLowQualityMatches: allowLow });
      const loops = Array.from({ length: s.B }, (_, b) => matcher(row(iou, b), { high, low, allowLowQualityMatches: allowLow }));
      assert.is(E.runtime().stats.hostSyncs, syncs);
      assert.equal(m.matches.shape, [s.B, s.N]);
      const [mm, ml, q] = await E.toArrays([m.matches, m.labels, iou]);
      const la = await E.toArrays(loops.flatMap((x) => [x.matches, x.labels]));
      for (let b = 0; b < s.B; b++) {
        const tag = `${s.what} image ${b} (${high}/${low}/${allowLow})`;
        const sl = (a: ArrayLike<number> & { subarray(s: number, e: number): ArrayLike<number> }) => Array.from(a.subarray(b * s.N, (b + 1) * s.N));
        assert.equal(sl(mm), Array.from(la[2 * b]), `${tag}: matches vs loop`);
        assert.equal(sl(ml), Array.from(la[2 * b + 1]), `${tag}: labels vs loop`);
        const ref = refMatcher(q.subarray(b * s.G * s.N, (b + 1) * s.G * s.N), s.G, s.N, high, low, allowLow);
        assert.equal(sl(mm), Array.from(ref.matches), `${tag}: matches vs host reference`);
        assert.equal(sl(ml), Array.from(ref.labels), `${tag}: labels vs host reference`);
        const fg = sl(ml).filter((v) => v === 1).length;
        if (s.B > 1 && b === 1) assert.ok(sl(ml).every((v) => v === 0), `${tag}: padding-only image all background`);
        // off the anchors every IoU is 0: all background, unless the low-quality rule (torchvision
        // too) matches every anchor tied at the GT's best IoU of 0
        if (s.B > 2 && b === 2 && !allowLow) assert.ok(sl(ml).every((v) => v === 0), `${tag}: off-anchor image all background`);
        fgTotal += fg;
        if (allowLow) {
          const plain = refMatcher(q.subarray(b * s.G * s.N, (b + 1) * s.G * s.N), s.G, s.N, high, low, false);
          lowQuality += sl(mm).filter((v, n) => v !== plain.matches[n]).length;
        }
      }
    }
  }
  assert.ok(fgTotal > 50 && lowQuality > 10, `the scenes exercise matches (${fgTotal} fg) and the low-quality rule (${lowQuality})`);
  const none = matcher(E.zeros([3, 0, 5]), { high: 0.7, low: 0.3 });
  assert.equal(none.matches.shape, [3, 5]);
  assert.equal(Array.from(await E.toArray(none.matches)), new Array(15).fill(-1));
  assert.throws(() => matcher(E.zeros([2, 2, 3, 4]), { high: 0.7, low: 0.3 }), /matcher: iou must be f32 \[M, N\] or \[B, M, N\], got f32 \[2,2,3,4\]/);
});

test('sampler batched on [B, N], one seed per image: = 1-D sampler per row with that seed and the host rule, bit for bit (B = 1, 4, 5, 9; all-negative, all-ignored rows; both modes)', async () => {
  const r = mulberry32(31);
  const gen = (N: number, pPos: number, pIgn: number) => Array.from({ length: N }, () => { const u = r(); return u < pPos ? 1 + Math.floor(r() * 3) : u < pPos + pIgn ? -1 : 0; });
  let partial = 0;
  for (const [B, N] of [[1, 1000], [4, 257], [5, 3001], [9, 700], [8, 14007]]) {
    const lab = new Int32Array(B * N);
    for (let b = 0; b < B; b++) {
      const kind = b % 4;
      lab.set(kind === 0 ? gen(N, 0.05, 0.2) : kind === 1 ? gen(N, 0, 0) : kind === 2 ? gen(N, 0.5, 0.1) : gen(N, 0, 1), b * N);
    }
    const labels = E.fromArray(lab, [B, N], 'i32');
    for (const cfg of [{ batchSizePerImage: 256, positiveFraction: 0.5 }, { batchSizePerImage: 512, positiveFraction: 0.25 }]) {
      for (const random of [true, false]) {
        const seeds = Array.from({ length: B }, (_, b) => (0x9e3779b1 * (b + 3) + N) >>> 0);
        const mode = random ? 'random' : 'firstK';
        const syncs = E.runtime().stats.hostSyncs;
        const s = sampler(labels, { ...cfg, seed: seeds, mode });
        const loops = Array.from({ length: B }, (_, b) => sampler(row(labels, b), { ...cfg, seed: seeds[b], mode }));
        assert.is(E.runtime().stats.hostSyncs, syncs);
        const [sp, sn] = await E.toArrays([s.pos, s.neg]);
        const la = await E.toArrays(loops.flatMap((x) => [x.pos, x.neg]));
        for (let b = 0; b < B; b++) {
          const tag = `B ${B} N ${N} image ${b}, batch ${cfg.batchSizePerImage}, ${mode}`;
          const sl = (a: ArrayLike<number> & { subarray(s: number, e: number): ArrayLike<number> }) => Array.from(a.subarray(b * N, (b + 1) * N));
          assert.equal(sl(sp), Array.from(la[2 * b]), `${tag}: pos vs 1-D`);
          assert.equal(sl(sn), Array.from(la[2 * b + 1]), `${tag}: neg vs 1-D`);
          const ref = refSampler(lab.subarray(b * N, (b + 1) * N), { ...cfg, seed: seeds[b], random });
          assert.equal(sl(sp), Array.from(ref.pos), `${tag}: pos vs host rule`);
          assert.equal(sl(sn), Array.from(ref.neg), `${tag}: neg vs host rule`);
          const kNeg = ref.neg.reduce((x, y) => x + y, 0);
          if (kNeg > 0 && kNeg < lab.subarray(b * N, (b + 1) * N).filter((v) => v === 0).length) partial++;
        }
      }
    }
  }
  assert.ok(partial > 20, `${partial} partial selections`);
  const l2 = E.zeros([3, 10], 'i32');
  assert.throws(() => sampler(l2, { batchSizePerImage: 4, positiveFraction: 0.5, seed: 1 }), /sampler: labels \[3,10\] need an array of 3 seeds \(one per image\), got a number/);
  assert.throws(() => sampler(l2, { batchSizePerImage: 4, positiveFraction: 0.5, seed: [1, 2] }), /got 2 seeds/);
  assert.throws(() => sampler(E.zeros([10], 'i32'), { batchSizePerImage: 4, positiveFraction: 0.5, seed: [1] }), /sampler: labels \[10\] need one seed number, got 1 seeds/);
});

test('compact batched per row of [B, N]: = per-row compact and the host rule (empty, full, sparse rows)', async () => {
  const r = mulberry32(17);
  for (const [B, N] of [[1, 300], [3, 1], [6, 257], [8, 5000]]) {
    const mask = new Int32Array(B * N);
    for (let b = 0; b < B; b++) {
      const p = [0.1, 0, 1, 0.5, 0.01, 0.9][b % 6];
      for (let i = 0; i < N; i++) mask[b * N + i] = r() < p ? 1 + Math.floor(r() * 3) : 0;
    }
    const m = E.fromArray(mask, [B, N], 'i32');
    const got = compact(m);
    const loops = Array.from({ length: B }, (_, b) => compact(row(m, b)));
    assert.equal(got.indices.shape, [B, N]);
    assert.equal(got.count.shape, [B]);
    const [gi, gc] = await E.toArrays([got.indices, got.count]);
    const la = await E.toArrays(loops.flatMap((x) => [x.indices, x.count]));
    for (let b = 0; b < B; b++) {
      const set = Array.from({ length: N }, (_, i) => i).filter((i) => mask[b * N + i] !== 0);
      const want = [...set, ...new Array(N - set.length).fill(-1)];
      const tag = `B ${B} N ${N} row ${b}`;
      assert.equal(Array.from(gi.subarray(b * N, (b + 1) * N)), want, `${tag}: indices`);
      assert.is(gc[b], set.length, `${tag}: count`);
      assert.equal(Array.from(la[2 * b]), want, `${tag}: 1-D indices`);
      assert.is(la[2 * b + 1][0], set.length, `${tag}: 1-D count`);
    }
  }
  assert.throws(() => compact(E.zeros([2, 2, 2], 'i32')), /compact: mask must be i32 \[N\] or \[B, N\], got i32 \[2,2,2\]/);
});

test.run();
