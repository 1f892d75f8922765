// Mask paste (pasteMasks, kernels/paste.ts): GPU vs the float64 reference vs torchvision 0.14
// paste_masks_in_image > 0.5 (fixture from test/fixtures/gen_paste_fixtures.py), outputs poisoned;
// and rleFromPackedRows against the existing row-major RLE encoder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { pasteMasks } from '../engine/ops-detect.ts';
import { pasteWordsPerRow, refPasteIntBoxes, refPasteMasks, refPasteSoft } from '../kernels/paste.ts';
import { rleEncodeRowMajor, rleFromPackedRows, rleToCompressed } from '../data/rle.ts';
import { mulberry32 } from './util.ts';

interface PasteCase { M: number; R: number; probs: number[]; boxes: number[]; sizes: number[]; intBoxes: number[]; hmax: number; wmax: number; bits: number[]; nearHalf: { r: number; y: number; x: number; soft: number }[]; torchErrors: { r: number }[] }
const fixture = JSON.parse(readFileSync(new URL('./fixtures/paste-keypoints.json', import.meta.url), 'utf8')) as { paste: PasteCase[] };

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const bitAt = (bits: ArrayLike<number>, words: number, r: number, hmax: number, y: number, x: number) => (bits[(r * hmax + y) * words + (x >> 5)] >>> (x & 31)) & 1;

/**
 * Pixels where got and want differ; each must sit where the soft value is within 1e-6 of 0.5
 * (float32 rounding can land either side), else the assertion names the first bad pixel.
 */
function diffPixels(got: ArrayLike<number>, want: ArrayLike<number>, soft: ArrayLike<number>, R: number, hmax: number, wmax: number, what: string): number {
  const words = pasteWordsPerRow(wmax);
  assert.is(got.length, R * hmax * words, `${what}: ${got.length} words, want ${R * hmax * words}`);
  let n = 0;
  const tail = wmax % 32;
  for (let i = 0; i < got.length; i++) {
    if (tail && i % words === words - 1 && got[i] >>> tail) assert.unreachable(`${what}: word ${i} has bits set past wmax ${wmax}: 0x${(got[i] >>> 0).toString(16)}`);
    if (got[i] === want[i]) continue;
    const r = Math.floor(i / (hmax * words)), y = Math.floor(i / words) % hmax;
    for (let x = (i % words) * 32; x < Math.min((i % words) * 32 + 32, wmax); x++) {
      if (bitAt(got, words, r, hmax, y, x) === bitAt(want, words, r, hmax, y, x)) continue;
      const s = soft[(r * hmax + y) * wmax + x];
      if (!(Math.abs(s - 0.5) < 1e-6)) assert.unreachable(`${what}: detection ${r} pixel (y ${y}, x ${x}) got ${bitAt(got, words, r, hmax, y, x)}, want ${bitAt(want, words, r, hmax, y, x)}, soft ${s} (word ${i}: 0x${(got[i] >>> 0).toString(16)} vs 0x${(want[i] >>> 0).toString(16)})`);
      n++;
    }
  }
  return n;
}

async function gpuPaste(probs: ArrayLike<number>, boxes: ArrayLike<number>, sizes: ArrayLike<number>, R: number, M: number, hmax: number, wmax: number): Promise<Uint32Array> {
  const syncs = E.runtime().stats.hostSyncs;
  const out = pasteMasks(E.fromArray(probs, [R, M, M]), E.fromArray(boxes, [R, 4]), E.fromArray(sizes, [R, 2], 'i32'), [hmax, wmax]);
  assert.is(E.runtime().stats.hostSyncs, syncs, 'pasteMasks must not read back');
  assert.equal(out.shape, [R, hmax, pasteWordsPerRow(wmax)]);
  assert.is(out.dtype, 'u32');
  return (await E.toArray(out)) as Uint32Array;
}

test('refPasteIntBoxes: expand_boxes(scale (M+2)/M) in float32 + .to(int64) equals torchvision', () => {
  for (const c of fixture.paste) assert.equal([...refPasteIntBoxes(c.boxes, c.R, c.M)], c.intBoxes, `M=${c.M}`);
});

test('refPasteMasks equals torchvision paste_masks_in_image > 0.5 (two image sizes, M 28 and 14, boxes outside / sub-pixel / negative)', () => {
  for (const c of fixture.paste) {
    const soft = refPasteSoft(c.probs, c.boxes, c.sizes, c.R, c.M, c.hmax, c.wmax);
    const got = refPasteMasks(c.probs, c.boxes, c.sizes, c.R, c.M, c.hmax, c.wmax);
    const n = diffPixels(got, c.bits, soft, c.R, c.hmax, c.wmax, `ref M=${c.M}`);
    assert.ok(n <= c.nearHalf.length, `ref M=${c.M}: ${n} near-0.5 differences, torchvision has ${c.nearHalf.length} soft values within 1e-6 of 0.5`);
    assert.is(n, 0, `ref M=${c.M}: ${n} pixels differ from torchvision`);
    // the boxes torchvision raised on are entirely outside their image: empty masks
    for (const { r } of c.torchErrors) assert.ok(c.bits.slice(r * c.hmax * pasteWordsPerRow(c.wmax), (r + 1) * c.hmax * pasteWordsPerRow(c.wmax)).every((v) => v === 0));
  }
});

test('pasteMasks (GPU) equals torchvision bit for bit on the fixtures', async () => {
  for (const c of fixture.paste) {
    const got = await gpuPaste(c.probs, c.boxes, c.sizes, c.R, c.M, c.hmax, c.wmax);
    const soft = refPasteSoft(c.probs, c.boxes, c.sizes, c.R, c.M, c.hmax, c.wmax);
    const n = diffPixels(got, c.bits, soft, c.R, c.hmax, c.wmax, `GPU M=${c.M}`);
    assert.is(n, 0, `GPU M=${c.M}: ${n} pixels within 1e-6 of 0.5 differ from torchvision`);
  }
});

/** Random detections over several image sizes: boxes inside, partly outside, tiny, huge. */
function randomCase(R: number, M: number, seed: number, images: [number, number][]) {
  const rnd = mulberry32(seed);
  const probs = Float32Array.from({ length: R * M * M }, () => 1 / (1 + Math.exp(-6 * (rnd() - 0.5))));
  const boxes = new Float32Array(R * 4), sizes = new Int32Array(R * 2);
  for (let r = 0; r < R; r++) {
    const [H, W] = images[r % images.length];
    const kind = r % 5;
    const bw = kind === 0 ? rnd() * 0.9 : kind === 1 ? W * (1 + rnd()) : rnd() * W * 0.6;
    const bh = kind === 0 ? rnd() * 0.9 : kind === 1 ? H * (1 + rnd()) : rnd() * H * 0.6;
    const x1 = kind === 1 ? -rnd() * W * 0.5 : rnd() * W * 1.2 - 0.1 * W, y1 = kind === 1 ? -rnd() * H * 0.5 : rnd() * H * 1.2 - 0.1 * H;
    boxes.set([x1, y1, x1 + bw, y1 + bh], 4 * r);
    sizes.set([H, W], 2 * r);
  }
  return { probs, boxes, sizes };
}

test('pasteMasks (GPU) vs float64 reference: 45 detections over 3 image sizes, M=28; 7 detections M=5 into 64-px-wide rows; 6 into 3 rows', async () => {
  let near = 0;
  for (const [R, M, seed, images] of [[45, 28, 3, [[101, 150], [64, 33], [120, 96]]], [7, 5, 4, [[40, 64], [9, 1]]], [6, 28, 6, [[3, 200], [2, 7]]]] as [number, number, number, [number, number][]][]) {
    const hmax = Math.max(...images.map((s) => s[0])), wmax = Math.max(...images.map((s) => s[1]));
    const { probs, boxes, sizes } = randomCase(R, M, seed, images);
    const got = await gpuPaste(probs, boxes, sizes, R, M, hmax, wmax);
    const soft = refPasteSoft(probs, boxes, sizes, R, M, hmax, wmax);
    near += diffPixels(got, refPasteMasks(probs, boxes, sizes, R, M, hmax, wmax), soft, R, hmax, wmax, `random M=${M}`);
    const on = got.reduce((s, v) => s + (v ? 1 : 0), 0);
    assert.ok(on > R, `random M=${M}: only ${on} non-zero words: the case tests nothing`);
  }
  console.log(`    pasteMasks random cases: ${near} pixels within 1e-6 of 0.5 differ from the float64 reference`);
});

test('pasteMasks: zero detections, wrong shapes name the op and the shapes', async () => {
  const out = pasteMasks(E.zeros([0, 28, 28]), E.zeros([0, 4]), E.zeros([0, 2], 'i32'), [10, 40]);
  assert.equal(out.shape, [0, 10, 2]);
  assert.throws(() => pasteMasks(E.zeros([2, 28, 27]), E.zeros([2, 4]), E.zeros([2, 2], 'i32'), [10, 40]), /pasteMasks: probs must be f32 \[R, M, M\]/);
  assert.throws(() => pasteMasks(E.zeros([2, 28, 28]), E.zeros([3, 4]), E.zeros([2, 2], 'i32'), [10, 40]), /pasteMasks: boxesXyxy \[3,4\]/);
  assert.throws(() => pasteMasks(E.zeros([2, 28, 28]), E.zeros([2, 4]), E.zeros([2, 2]), [10, 40]), /pasteMasks: sizes must be i32 \[2, 2\]/);
  assert.throws(() => pasteMasks(E.zeros([2, 28, 28]), E.zeros([2, 4]), E.zeros([2, 2], 'i32'), [10, 0]), /pasteMasks: maxSize/);
});

test('rleFromPackedRows equals rleEncodeRowMajor (compressed strings) on pasted masks and edge cases', async () => {
  // pasted masks, each RLE'd at its own image size out of the [R, hmax, words] block
  const images: [number, number][] = [[101, 150], [64, 33], [37, 64]];
  const R = 12, M = 28, hmax = 101, wmax = 150, words = pasteWordsPerRow(wmax);
  const { probs, boxes, sizes } = randomCase(R, M, 9, images);
  const bits = await gpuPaste(probs, boxes, sizes, R, M, hmax, wmax);
  let nonEmpty = 0;
  for (let r = 0; r < R; r++) {
    const [H, W] = [sizes[2 * r], sizes[2 * r + 1]];
    const bytes = new Uint8Array(H * W);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) bytes[y * W + x] = bitAt(bits, words, r, hmax, y, x);
    const want = rleToCompressed(rleEncodeRowMajor(bytes, H, W));
    assert.equal(rleToCompressed(rleFromPackedRows(bits, r * hmax * words, H, W, words)), want, `detection ${r}`);
    if (bytes.some((v) => v)) nonEmpty++;
  }
  assert.ok(nonEmpty >= R / 2, `only ${nonEmpty} of ${R} pasted masks are non-empty`);
  // edge cases: empty, full, 1 px wide, exactly 32 / 64 px wide, pixel 31 and 32 set, zero height
  const rnd = mulberry32(5);
  for (const [H, W, fill] of [[5, 7, 'empty'], [6, 32, 'full'], [9, 1, 'random'], [4, 64, 'random'], [3, 33, 'edges'], [0, 40, 'empty'], [7, 0, 'empty']] as [number, number, string][]) {
    const wpr = pasteWordsPerRow(W) + 1; // a padded row stride
    const packed = new Uint32Array(3 + Math.max(H, 1) * wpr).fill(0xffffffff); // everything outside the mask is set
    const bytes = new Uint8Array(H * W);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) packed[3 + y * wpr + (x >> 5)] &= ~(1 << (x & 31));
      for (let x = 0; x < W; x++) {
        const v = fill === 'full' ? 1 : fill === 'random' ? (rnd() < 0.5 ? 1 : 0) : fill === 'edges' ? (x === 31 || x === 32 || x === 0 ? 1 : 0) : 0;
        bytes[y * W + x] = v;
        if (v) packed[3 + y * wpr + (x >> 5)] |= 1 << (x & 31);
      }
    }
    assert.equal(rleToCompressed(rleFromPackedRows(packed, 3, H, W, wpr)), rleToCompressed(rleEncodeRowMajor(bytes, H, W)), `${H}x${W} ${fill}`);
  }
  assert.throws(() => rleFromPackedRows(new Uint32Array(4), 0, 2, 70, 2), /rleFromPackedRows: 2 words per row hold 64 px < width 70/);
  assert.throws(() => rleFromPackedRows(new Uint32Array(4), 1, 2, 40, 2), /runs past 4 words/);
});

test.run();
