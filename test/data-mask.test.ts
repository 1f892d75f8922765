// Mask API vs fixtures produced by the real pycocotools (test/fixtures/gen_coco_fixtures.py).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  bbIou, checkRleForImage, frPyObjects, polygonsToMaskInBox, rleArea, rleCountsFromString, rleDecodeColMajor,
  rleDecodeRowMajor, rleEncodeColMajor, rleEncodeRowMajor, rleFrBbox, rleFrPoly, rleFromCompressed, rleFromUncompressed,
  rleIou, rleMerge, rleToBbox, rleToMaskInBox, rleToString, segmentationToFullMask, segmentationToMaskInBox,
  segmentationToRle, type Rle,
} from '../data/mask.ts';

interface MaskFixtures {
  polygons: { h: number; w: number; polygons: number[][]; parts: string[]; merged: string; area: number; bbox: number[] }[];
  boxes: { h: number; w: number; box: number[]; rle: string }[];
  masks: { h: number; w: number; rowMajor: string; rle: string; area: number; bbox: number[] }[];
  uncompressed: { size: [number, number]; counts: number[]; rle: string }[];
  iou: { h: number; w: number; dts: string[]; gts: string[]; crowd: number[]; iou: number[][]; dtBoxes: number[][]; gtBoxes: number[][]; bbIou: number[][] }[];
  merge: { h: number; w: number; rles: string[]; intersect: string; union: string }[];
  tobbox: { h: number; w: number; counts: number[]; bbox: number[] }[];
  twoPointPolygonRaises: boolean;
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/coco-mask-fixtures.json', import.meta.url), 'utf8')) as MaskFixtures;
const fromStr = (h: number, w: number, s: string): Rle => rleFromCompressed({ size: [h, w], counts: s });

test('polygon -> RLE (frPyObjects parts and merged union) matches pycocotools', () => {
  assert.ok(fx.polygons.length >= 60);
  for (const [i, c] of fx.polygons.entries()) {
    const parts = frPyObjects(c.polygons, c.h, c.w) as Rle[];
    assert.equal(parts.map((r) => rleToString(r.counts)), c.parts, `case ${i} parts`);
    const merged = segmentationToRle(c.polygons, c.h, c.w);
    assert.is(rleToString(merged.counts), c.merged, `case ${i} merged`);
    assert.is(rleArea(merged), c.area, `case ${i} area`);
    assert.equal(rleToBbox(merged), c.bbox, `case ${i} bbox`);
  }
});

test('frBbox matches pycocotools; 2-point polygon list raises like pycocotools', () => {
  for (const c of fx.boxes) assert.is(rleToString(rleFrBbox(c.box, c.h, c.w).counts), c.rle);
  assert.ok(fx.twoPointPolygonRaises);
  assert.throws(() => frPyObjects([[1, 2, 5, 6]], 10, 10), /first element has 4 numbers/);
});

test('dense mask encode/decode round trip, row- and column-major, vs pycocotools strings', () => {
  for (const c of fx.masks) {
    const rowMajor = Uint8Array.from(c.rowMajor, (ch) => (ch === '1' ? 1 : 0));
    const rle = rleEncodeRowMajor(rowMajor, c.h, c.w);
    assert.is(rleToString(rle.counts), c.rle);
    assert.is(rleArea(rle), c.area);
    assert.equal(rleToBbox(rle), c.bbox);
    const back = rleDecodeRowMajor(fromStr(c.h, c.w, c.rle));
    assert.equal(Array.from(back), Array.from(rowMajor));
    const col = rleDecodeColMajor(rle);
    assert.equal(Array.from(rleEncodeColMajor(col, c.h, c.w).counts), Array.from(rle.counts));
  }
});

test('compressed string codec: large counts, negative deltas, uint32 extremes', () => {
  for (const c of fx.uncompressed) {
    const rle = rleFromUncompressed({ size: c.size, counts: c.counts });
    assert.is(rleToString(rle.counts), c.rle);
    assert.equal(Array.from(rleCountsFromString(c.rle)), c.counts);
  }
});

test('rleIou (crowd: inter/area(dt)) and bbIou match pycocotools', () => {
  for (const c of fx.iou) {
    const dts = c.dts.map((s) => fromStr(c.h, c.w, s));
    const gts = c.gts.map((s) => fromStr(c.h, c.w, s));
    const o = rleIou(dts, gts, c.crowd);
    const ob = bbIou(c.dtBoxes, c.gtBoxes, c.crowd);
    for (let d = 0; d < dts.length; d++) for (let g = 0; g < gts.length; g++) assert.is(o[d * gts.length + g], c.iou[d][g]);
    for (let d = 0; d < c.dtBoxes.length; d++) for (let g = 0; g < c.gtBoxes.length; g++) assert.is(ob[d * c.gtBoxes.length + g], c.bbIou[d][g]);
  }
  const a = rleFrPoly([0, 0, 0, 4, 4, 4, 4, 0], 8, 8);
  const b = rleFrPoly([0, 0, 0, 4, 4, 4, 4, 0], 8, 9);
  assert.is(rleIou([a], [b], [0])[0], -1, 'different sizes give -1');
});

test('merge union and intersection match pycocotools', () => {
  for (const c of fx.merge) {
    const rles = c.rles.map((s) => fromStr(c.h, c.w, s));
    assert.is(rleToString(rleMerge(rles, true).counts), c.intersect);
    assert.is(rleToString(rleMerge(rles, false).counts), c.union);
  }
});

test('toBbox on column-crossing runs and empty 1-runs matches pycocotools', () => {
  for (const c of fx.tobbox) assert.equal(rleToBbox({ h: c.h, w: c.w, counts: Uint32Array.from(c.counts) }), c.bbox, JSON.stringify(c.counts));
});

test('bad input errors name the item and the limit', () => {
  assert.throws(() => segmentationToRle([[1, 2, 3, 4, 5, 6, 7]], 10, 10, { what: 'ann 7' }), /ann 7 polygon 0: polygon has an odd coordinate count \(7\)/);
  assert.throws(() => segmentationToRle([[0, 0, 1, 1, 2, 2], [1, 2, 3, 4]], 10, 10, { what: 'ann 8' }), /ann 8 polygon 1: polygon has 2 points; at least 3/);
  assert.throws(() => segmentationToRle([], 10, 10, { what: 'ann 9' }), /ann 9: polygon list is empty/);
  assert.throws(() => segmentationToRle({ size: [10, 12], counts: [120] }, 10, 11, { what: 'ann 3' }),
    /ann 3: RLE size \[h=10, w=12\] disagrees with image \[h=10, w=11\]/);
  assert.throws(() => checkRleForImage({ h: 4, w: 4, counts: Uint32Array.from([3, 2]) }, 4, 4, 'ann 4'), /ann 4: RLE counts sum to 5, image needs h\*w = 4\*4 = 16/);
  assert.throws(() => rleCountsFromString('0a~', 'res 2'), /res 2 has char "~" \(code 126\) at 2; allowed range is 48\.\.111/);
  assert.throws(() => rleCountsFromString('0P', 'res 3'), /ends inside a value/);
  assert.throws(() => rleCountsFromString('001O', 'res 4'), /count #3 decodes to -1/);
  assert.throws(() => rleFromCompressed({ size: [3] as unknown as [number, number], counts: '0' }, 'res 5'), /res 5: RLE size must be \[height, width\]/);
  assert.throws(() => rleDecodeColMajor({ h: 2, w: 2, counts: Uint32Array.from([1, 1]) }), /rleDecode: RLE counts sum to 2 but size \[h=2, w=2\] needs h\*w = 4/);
  assert.throws(() => polygonsToMaskInBox([[0, 0, 1, 1, 2, 2]], [0, 0, 1], 28), /box must be 4 finite numbers/);
});

test('pixel-centre rule: integer square [1,3]x[1,3] covers exactly pixels 1..2', () => {
  const m = rleDecodeRowMajor(rleFrPoly([1, 1, 1, 3, 3, 3, 3, 1], 5, 5));
  const on: number[] = [];
  m.forEach((v, i) => { if (v) on.push(i); });
  assert.equal(on, [6, 7, 11, 12]);
});

test('M x M targets: polygons in box and RLE crop agree on an axis-aligned square', () => {
  const poly = [[10, 10, 10, 30, 30, 30, 30, 10]];
  const box = [10, 10, 30, 30];
  const a = polygonsToMaskInBox(poly, box, 8);
  assert.ok(a.every((v) => v === 1), 'box == polygon fills the target');
  const half = polygonsToMaskInBox(poly, [0, 10, 20, 30], 8);
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) assert.is(half[y * 8 + x], x >= 4 ? 1 : 0);
  const rle = segmentationToRle(poly, 40, 40);
  const b = rleToMaskInBox(rle, [0, 10, 20, 30], 8);
  assert.equal(Array.from(b), Array.from(half));
  const crowd = { size: [40, 40] as [number, number], counts: Array.from(rle.counts) };
  assert.equal(Array.from(segmentationToMaskInBox(crowd, 40, 40, [0, 10, 20, 30], 8)), Array.from(half));
  const full = segmentationToFullMask(poly, 40, 40);
  assert.is(full.reduce((s, v) => s + v, 0), 400);
  assert.is(full[10 * 40 + 10], 1); assert.is(full[9 * 40 + 10], 0);
});

test.run();
