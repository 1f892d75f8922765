// VOC AP (py-faster-rcnn voc_eval semantics) on a hand-computed case.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { vocAp, vocEvalClass, vocEvalMap, type VocGtObject } from '../data/eval/voc.ts';

const gt = new Map<string, VocGtObject[]>([
  ['A', [{ boxXyxy: [0, 0, 9, 9], difficult: false }, { boxXyxy: [20, 20, 29, 29], difficult: true }]],
  ['B', [{ boxXyxy: [0, 0, 9, 9], difficult: false }]],
  ['C', []],
]);
const dets = [
  { imageId: 'A', score: 0.9, boxXyxy: [0, 0, 9, 9] as [number, number, number, number] },   // TP
  { imageId: 'A', score: 0.8, boxXyxy: [20, 20, 29, 29] as [number, number, number, number] }, // on difficult: ignored
  { imageId: 'A', score: 0.7, boxXyxy: [0, 0, 9, 9] as [number, number, number, number] },   // duplicate: FP
  { imageId: 'B', score: 0.6, boxXyxy: [50, 50, 60, 60] as [number, number, number, number] }, // FP
  { imageId: 'B', score: 0.5, boxXyxy: [0, 0, 9, 9] as [number, number, number, number] },   // TP
];

test('all-points and VOC07 11-point AP, difficult ignored', () => {
  const r = vocEvalClass(gt, dets);
  assert.is(r.npos, 2);
  assert.equal(Array.from(r.rec), [0.5, 0.5, 0.5, 0.5, 1]);
  assert.equal(Array.from(r.prec), [1, 1, 0.5, 1 / 3, 0.5]);
  assert.ok(Math.abs(r.ap - 0.75) < 1e-15);
  const r07 = vocEvalClass(gt, dets, { use07Metric: true });
  assert.ok(Math.abs(r07.ap - 8.5 / 11) < 1e-15);
});

test('+1 pixel IoU: [0,0,9,9] vs [5,0,14,9] is 1/3, below 0.5', () => {
  const g = new Map([['X', [{ boxXyxy: [0, 0, 9, 9] as [number, number, number, number], difficult: false }]]]);
  const r = vocEvalClass(g, [{ imageId: 'X', score: 1, boxXyxy: [5, 0, 14, 9] }], { ovThresh: 0.3 });
  assert.is(r.ap, 1);
  assert.is(vocEvalClass(g, [{ imageId: 'X', score: 1, boxXyxy: [5, 0, 14, 9] }]).ap, 0);
});

test('vocAp edge: 07 thresholds follow np.arange (0.30000000000000004)', () => {
  assert.ok(Math.abs(vocAp([0.3], [1], true) - 3 / 11) < 1e-15); // rec 0.3 < 0.30000000000000004
  const m = vocEvalMap([{ name: 'a', gtByImage: gt, dets }, { name: 'b', gtByImage: gt, dets: [] }]);
  assert.ok(Math.abs(m.mAP - 0.375) < 1e-15);
  assert.throws(() => vocEvalClass(gt, [{ imageId: 'Z', score: 1, boxXyxy: [0, 0, 1, 1] }]), /imageId Z, which has no GT entry/);
});

test.run();
