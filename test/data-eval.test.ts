// COCO evaluator vs fixtures produced by the real pycocotools (test/fixtures/gen_coco_fixtures.py).
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CocoDataset, CocoResult } from '../data/coco-types.ts';
import { cocoEvaluate, defaultParams, type IouType } from '../data/eval/cocoeval.ts';
import { formatFixedPy, linspace } from '../data/eval/numeric.ts';

interface EvalCase { name: string; iouType: IouType; gt: CocoDataset; dts: CocoResult[]; stats: number[]; lines: string[]; perCatAP: number[] }
const fx = JSON.parse(readFileSync(new URL('./fixtures/coco-eval-fixtures.json', import.meta.url), 'utf8')) as
  { hand: EvalCase[]; random: EvalCase[]; iouThrs: number[]; recThrs: number[] };

const run = (c: EvalCase, warn: (m: string) => void = () => {}) =>
  cocoEvaluate(structuredClone(c.gt), structuredClone(c.dts), { iouType: c.iouType, log: () => {}, warn });

const numeric = suite('eval numeric');
numeric('thresholds are numpy linspace bit-for-bit', () => {
  assert.equal(Array.from(linspace(0.5, 0.95, 10)), fx.iouThrs);
  assert.equal(Array.from(linspace(0, 1, 101)), fx.recThrs);
  const p = defaultParams('bbox');
  assert.equal(Array.from(p.iouThrs), fx.iouThrs);
});
numeric('python-style {:0.3f} rounds exact ties to even', () => {
  assert.is(formatFixedPy(0.0625, 3), '0.062');
  assert.is(formatFixedPy(0.1875, 3), '0.188');
  assert.is(formatFixedPy(-1, 3), '-1.000');
  assert.is(formatFixedPy(0.5, 2), '0.50');
  assert.is(formatFixedPy(0.3725, 3), (0.3725).toFixed(3));
});
numeric.run();

const hand = suite('eval hand cases (pycocotools numbers)');
for (const c of fx.hand) {
  hand(c.name, () => {
    const warnings: string[] = [];
    const r = run(c, (m) => warnings.push(m));
    assert.equal(r.stats, c.stats, `${c.name} stats`);
    assert.equal(r.lines, c.lines, `${c.name} printed lines`);
    assert.equal(r.perCategoryAP.map((x) => x.ap), c.perCatAP);
    if (c.name === 'gt_id_zero') assert.ok(warnings.some((w) => /id 0/.test(w)), 'warns about GT id 0');
  });
}
hand('expected values of the hand cases', () => {
  const by = new Map(fx.hand.map((c) => [c.name, c]));
  // pr = tp/(tp+fp+eps) makes a perfect AP 1 - 2e-16 in pycocotools too.
  assert.ok(Math.abs(by.get('perfect')!.stats[0] - 1) < 1e-12);
  assert.ok(Math.abs(by.get('fp_at_top')!.stats[0] - 2 / 3) < 1e-2);
  assert.ok(Math.abs(by.get('crowd_absorbs')!.stats[0] - 1) < 1e-12);
  assert.is(by.get('no_gt_in_category')!.perCatAP[1], -1);
  assert.is(by.get('no_detections')!.stats[0], 0);
});
hand.run();

const random = suite('eval random sets vs pycocotools');
for (const c of fx.random) {
  random(`${c.name}: ${c.dts.length} dts`, () => {
    const r = run(c);
    assert.is(r.stats.length, c.iouType === 'keypoints' ? 10 : 12);
    // Bit-exact: same IoUs, same stable order, numpy's pairwise mean.
    assert.equal(r.stats, c.stats, `${c.name} stats`);
    assert.equal(r.lines, c.lines);
    assert.equal(r.perCategoryAP.map((x) => x.ap), c.perCatAP);
  });
}
random.run();

const errors = suite('eval bad input');
const base = fx.hand[0];
errors('results for unknown images, bad RLE, missing fields name the item', () => {
  const gt = structuredClone(base.gt);
  const q = { log: () => {}, warn: () => {} };
  assert.throws(() => cocoEvaluate(gt, [{ image_id: 99, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }], { iouType: 'bbox', ...q }),
    /result 0 has image_id 99, which is not in the GT images/);
  assert.throws(() => cocoEvaluate(gt, [{ image_id: 1, category_id: 1, segmentation: { size: [200, 100], counts: '0' }, score: 1 }], { iouType: 'segm', ...q }),
    /result 0.*RLE size \[h=200, w=100\] disagrees with image \[h=200, w=200\]/);
  assert.throws(() => cocoEvaluate(gt, [{ image_id: 1, category_id: 1, segmentation: { size: [200, 200], counts: 'zz' }, score: 1 }], { iouType: 'segm', ...q }),
    /result 0 segmentation has char "z"/);
  const badPoly = structuredClone(base.gt);
  badPoly.annotations[0].segmentation = [[1, 2, 3, 4]];
  assert.throws(() => cocoEvaluate(badPoly, [], { iouType: 'segm', ...q }), /GT annotation id 1 polygon 0: polygon has 2 points; at least 3 are required/);
  assert.throws(() => cocoEvaluate(gt, [{ image_id: 1, category_id: 1, keypoints: [1, 2, 1], score: 1 }], { iouType: 'keypoints', ...q }),
    /GT annotation id 1: no keypoints/);
});
errors('empty image set and empty results evaluate to -1 / 0 without crashing', () => {
  const r = cocoEvaluate({ images: [], annotations: [], categories: [{ id: 1, name: 'a' }] }, [], { iouType: 'bbox', log: () => {} });
  assert.equal(r.stats, new Array(12).fill(-1));
});
errors.run();
