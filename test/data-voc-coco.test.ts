import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCoco } from '../data/coco.ts';
import type { CocoDataset, CocoResult } from '../data/coco-types.ts';
import { parseJsonFile } from '../data/coco.ts';
import { vocEvalMap } from '../data/eval/voc.ts';
import { VOC_CLASSES, parseVocImageSet, prepareVoc, vocBoxFromCocoBbox, vocEvalInputs, vocGroundTruth, vocImageId } from '../data/voc-coco.ts';

type Obj = { name: string; box: [number, number, number, number]; difficult?: boolean };
const xml = (file: string, w: number, h: number, objs: Obj[]): string =>
  `<annotation><folder>VOC</folder><filename>${file}</filename><size><width>${w}</width><height>${h}</height><depth>3</depth></size>` +
  objs.map((o) => `<object><name>${o.name}</name><pose>Left</pose><truncated>0</truncated><difficult>${o.difficult ? 1 : 0}</difficult>` +
    `<bndbox><xmin>${o.box[0]}</xmin><ymin>${o.box[1]}</ymin><xmax>${o.box[2]}</xmax><ymax>${o.box[3]}</ymax></bndbox></object>`).join('') + '</annotation>';

// VOC2007: 000005, 000007 trainval; 000009 test. VOC2012: 2008_000002 trainval; 2008_000003 val.
const devkit: Record<'2007' | '2012', { sets: Record<string, string[]>; images: Record<string, [number, number, Obj[]]> }> = {
  '2007': {
    sets: { trainval: ['000005', '000007'], test: ['000009'] },
    images: {
      '000005': [500, 375, [
        { name: 'chair', box: [263, 211, 324, 339] },
        { name: 'Chair ', box: [5, 244, 67, 374], difficult: true },  // case/space as py-faster-rcnn's lower().strip()
        { name: 'pottedplant', box: [450, 100, 520, 375] },             // xmax 520 > 500: clamped to the image
      ]],
      '000007': [500, 333, [{ name: 'car', box: [141, 50, 500, 330] }]],
      '000009': [500, 375, [
        { name: 'horse', box: [69, 172, 270, 330] },
        { name: 'person', box: [150, 141, 229, 284] },
        { name: 'person', box: [285, 201, 327, 331], difficult: true },
        { name: 'unicorn', box: [1, 1, 10, 10] },                      // not a VOC class
      ]],
    },
  },
  '2012': {
    sets: { trainval: ['2008_000002'], val: ['2008_000003'] },
    images: {
      '2008_000002': [400, 267, [{ name: 'tvmonitor', box: [34, 11, 448, 293], difficult: true }]],  // only a difficult (and clamped) object
      '2008_000003': [500, 333, [{ name: 'train', box: [46, 11, 500, 333] }, { name: 'person', box: [62, 190, 83, 243] }]],
    },
  },
};

function writeDevkit(root: string, opts: { skipList?: string } = {}): void {
  for (const [year, y] of Object.entries(devkit)) {
    const d = join(root, `VOC${year}`);
    for (const sub of ['Annotations', 'JPEGImages', 'ImageSets/Main']) mkdirSync(join(d, sub), { recursive: true });
    for (const [set, ids] of Object.entries(y.sets)) if (`${year}/${set}` !== opts.skipList) writeFileSync(join(d, 'ImageSets/Main', `${set}.txt`), ids.join('\n') + '\n');
    for (const [id, [w, h, objs]] of Object.entries(y.images)) {
      writeFileSync(join(d, 'Annotations', `${id}.xml`), xml(`${id}.jpg`, w, h, objs));
      writeFileSync(join(d, 'JPEGImages', `${id}.jpg`), ''); // loadCoco only stats the files here
    }
  }
}

test('voc-coco: class list, image ids, set-file parsing', () => {
  assert.is(VOC_CLASSES.length, 20);
  assert.is(VOC_CLASSES[0], 'aeroplane');
  assert.is(VOC_CLASSES[14], 'person');
  assert.is(VOC_CLASSES[19], 'tvmonitor');
  assert.is(vocImageId('000005'), 5);
  assert.is(vocImageId('2008_000002'), 2008000002);
  assert.ok(vocImageId('2012_999999')! < 2 ** 31);
  assert.is(vocImageId('img_a'), null);
  assert.equal(parseVocImageSet('000005\r\n  000007 -1\n\n'), ['000005', '000007']);
  assert.equal(vocBoxFromCocoBbox([262, 210, 62, 129]), [263, 211, 324, 339]);
});

test('voc-coco: missing set list, folder or XML is an error that prints the layout; bad options named', () => {
  const root = mkdtempSync(join(tmpdir(), 'voc-'));
  try {
    const cacheDir = join(root, 'cache');
    assert.throws(() => prepareVoc('train', { root, cacheDir }), /missing .*VOC2007[/\\]Annotations.*VOC2007[/\\]JPEGImages.*trainval\.txt\nexpected layout[\s\S]*VOC2007\/ImageSets\/Main\/\{trainval,test\}\.txt/);
    writeDevkit(root, { skipList: '2012/trainval' });
    assert.not.throws(() => prepareVoc('train', { root, cacheDir, log: null }));
    let msg = '';
    try { prepareVoc('train', { root, cacheDir, years: ['2007', '2012'], log: null }); } catch (e) { msg = (e as Error).message; }
    assert.match(msg, /voc: missing \S*VOC2012[/\\]ImageSets[/\\]Main[/\\]trainval\.txt\n/);
    assert.ok(!/VOC2007[/\\]ImageSets/.test(msg.split('\n')[0]), 'only the missing file is named');
    assert.match(msg, /expected layout of a Pascal VOC root[\s\S]*\{Annotations,JPEGImages\}/);
    writeFileSync(join(root, 'VOC2012/ImageSets/Main/test.txt'), '2008_000010\n2008_000011\n');
    assert.throws(() => prepareVoc('val', { root, cacheDir, years: ['2012'], testSet: 'test', log: null }),
      /test\.txt lists 2 of 2 images without .*Annotations[/\\]<id>\.xml \(first: 2008_000010, 2008_000011\); VOC2012 test annotations are not public/);
    assert.throws(() => prepareVoc('train', { root, cacheDir, years: ['2010' as '2007'] }), /unknown year '2010'; accepted: 2007, 2012/);
    assert.throws(() => prepareVoc('train', { root, cacheDir, years: ['2007', '2007'] }), /year listed twice/);
    assert.throws(() => prepareVoc('train', { root, cacheDir, trainSet: '../x' }), /image set name '\.\.\/x'/);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('voc-coco: 07+12 trainval -> cached COCO JSON that loadCoco reads; difficult -> iscrowd; clamping counted; cache reuse', () => {
  const root = mkdtempSync(join(tmpdir(), 'voc-'));
  try {
    writeDevkit(root);
    const cacheDir = join(root, 'cache');
    const logs: string[] = [];
    const spec = prepareVoc('train', { root, cacheDir, years: ['2007', '2012'], log: (m) => logs.push(m) });
    assert.is(spec.name, 'voc_2007+2012_trainval');
    assert.is(spec.imagesDir, root);
    assert.is(logs.length, 1);
    assert.match(logs[0], /^voc: voc_2007\+2012_trainval: 3 images, 5 objects \(2 difficult -> iscrowd=1\), 20 classes\n/);
    assert.match(logs[0], /2 vocBoxClamped/);
    assert.match(logs[0], /000005\.xml: object 2 \('pottedplant'\): box \[450, 100, 520, 375\] outside 500x375/);

    const ds = parseJsonFile(spec.annPath) as CocoDataset;
    assert.equal(ds.images.map((i) => [i.id, i.file_name, i.width, i.height]), [
      [5, 'VOC2007/JPEGImages/000005.jpg', 500, 375], [7, 'VOC2007/JPEGImages/000007.jpg', 500, 333],
      [2008000002, 'VOC2012/JPEGImages/2008_000002.jpg', 400, 267],
    ]);
    assert.equal(ds.categories.map((c) => [c.id, c.name]), VOC_CLASSES.map((c, i) => [i + 1, c]));
    assert.equal(ds.annotations.map((a) => [a.id, a.image_id, a.category_id, a.bbox, a.area, a.iscrowd, a.difficult]), [
      [1, 5, 9, [262, 210, 62, 129], 62 * 129, 0, 0],
      [2, 5, 9, [4, 243, 63, 131], 63 * 131, 1, 1],
      [3, 5, 16, [449, 99, 51, 276], 51 * 276, 0, 0],
      [4, 7, 7, [140, 49, 360, 281], 360 * 281, 0, 0],
      [5, 2008000002, 20, [33, 10, 367, 257], 367 * 257, 1, 1],
    ]);

    const train = loadCoco(spec, { log: null });
    assert.equal(train.labelNames, ['__background__', ...VOC_CLASSES]);
    assert.equal(train.records.map((r) => r.filePath), ds.images.map((i) => join(root, i.file_name)));
    assert.equal(Array.from(train.records[0].targets.boxesXyxy), [262, 210, 324, 339, 449, 99, 500, 375]);
    assert.equal(Array.from(train.records[0].targets.labels), [9, 16]);
    assert.equal(Array.from(train.records[0].crowdBoxesXyxy), [4, 243, 67, 374], 'difficult chair: ignore region, not a target');
    assert.is(train.records[0].targets.masks, null);
    assert.equal(train.trainIndices, [0, 1], 'the image whose only object is difficult trains nothing');
    assert.equal(train.evalIndices, [0, 1, 2]);
    assert.equal(train.report.counts, {});

    // cache: the same inputs reuse the file without converting; a changed XML converts again
    const mtime = statSync(spec.annPath).mtimeMs;
    assert.is(prepareVoc('train', { root, cacheDir, years: ['2007', '2012'], log: (m) => logs.push(m) }).annPath, spec.annPath);
    assert.is(statSync(spec.annPath).mtimeMs, mtime);
    assert.is(logs.length, 1, 'second call reuses the cache');
    writeFileSync(join(root, 'VOC2007/Annotations/000007.xml'), xml('000007.jpg', 500, 333, [{ name: 'car', box: [141, 50, 499, 330] }]));
    const changed = prepareVoc('train', { root, cacheDir, years: ['2007', '2012'], log: (m) => logs.push(m) });
    assert.is.not(changed.annPath, spec.annPath);
    assert.is(logs.length, 2);
    assert.equal((parseJsonFile(changed.annPath) as CocoDataset).annotations[3].bbox, [140, 49, 359, 281]);
    assert.is(readdirSync(cacheDir).filter((f) => f.includes('.tmp')).length, 0);

    // useDifficult: difficult objects are training targets (different cache entry), still flagged
    const withDiff = loadCoco(prepareVoc('train', { root, cacheDir, years: ['2007', '2012'], useDifficult: true, log: null }), { log: null });
    assert.equal(Array.from(withDiff.records[0].targets.labels), [9, 9, 16]);
    assert.equal(withDiff.trainIndices, [0, 1, 2]);
    assert.ok(withDiff.dataset.annotations.every((a) => a.iscrowd === 0));
    assert.equal(withDiff.dataset.annotations.map((a) => a.difficult), [0, 1, 0, 0, 1]);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('voc-coco: val = 2007 test + 2012 val; unknown class counted; vocGroundTruth in VOC pixels; perfect detections give VOC07 mAP 1', () => {
  const root = mkdtempSync(join(tmpdir(), 'voc-'));
  try {
    writeDevkit(root);
    const cacheDir = join(root, 'cache');
    const logs: string[] = [];
    const spec = prepareVoc('val', { root, cacheDir, years: ['2007', '2012'], log: (m) => logs.push(m) });
    assert.is(spec.name, 'voc_2007_test+2012_val');
    assert.match(logs[0], /2 images, 5 objects \(1 difficult -> iscrowd=1\)[\s\S]*1 vocUnknownClass[\s\S]*'unicorn' is not one of the 20 VOC classes/);
    const val = loadCoco(spec, { log: null });
    assert.equal(val.records.map((r) => r.imageId), [9, 2008000003]);

    const gt = vocGroundTruth(spec);
    assert.equal(gt.map((g) => g.name), [...VOC_CLASSES]);
    for (const g of gt) assert.equal([...g.gtByImage.keys()], [9, 2008000003], 'every image listed for every class');
    // GT boxes come back exactly as the XML wrote them (1-based inclusive), as voc_eval reads them
    const person = gt[14].gtByImage;
    assert.equal(person.get(9), [{ boxXyxy: [150, 141, 229, 284], difficult: false }, { boxXyxy: [285, 201, 327, 331], difficult: true }]);
    assert.equal(person.get(2008000003), [{ boxXyxy: [62, 190, 83, 243], difficult: false }]);
    assert.equal(gt[18].gtByImage.get(2008000003), [{ boxXyxy: [46, 11, 500, 333], difficult: false }]);
    assert.equal(vocGroundTruth(val).map((g) => [...g.gtByImage]), gt.map((g) => [...g.gtByImage]), 'LoadedCoco gives the same');
    assert.equal(vocGroundTruth(val.dataset, { imageIds: [9] })[14].gtByImage.size, 1);
    // difficult comes from the flag, not iscrowd: useDifficult=true converts to the same GT
    const gtDiff = vocGroundTruth(prepareVoc('val', { root, cacheDir, years: ['2007', '2012'], useDifficult: true, log: null }));
    assert.equal(gtDiff.map((g) => [...g.gtByImage]), gt.map((g) => [...g.gtByImage]));

    // round trip: every non-crowd GT as a detection (COCO results form), plus one on the difficult person
    const results: CocoResult[] = val.dataset.annotations.map((a, i) => ({ image_id: a.image_id, category_id: a.category_id, bbox: a.bbox, score: 1 - i * 0.01 }));
    const perfect = vocEvalMap(vocEvalInputs(gt, results), { use07Metric: true });
    // voc_ap sums p / 11 eleven times: 1.0000000000000002 in float64, in numpy as here
    let ap07Perfect = 0;
    for (let i = 0; i < 11; i++) ap07Perfect = ap07Perfect + 1 / 11;
    const present = perfect.aps.filter((a) => ['horse', 'person', 'train'].includes(a.name));
    assert.equal(present.map((a) => a.ap), [ap07Perfect, ap07Perfect, ap07Perfect]);
    // classes absent from the split (no GT, no detections): AP 0, as voc_eval gives
    assert.ok(perfect.aps.filter((a) => !['horse', 'person', 'train'].includes(a.name)).every((a) => a.ap === 0));
    const threeClasses = gt.filter((g) => ['horse', 'person', 'train'].includes(g.name));
    assert.is(vocEvalMap(vocEvalInputs(threeClasses, results), { use07Metric: true }).mAP, (ap07Perfect + ap07Perfect + ap07Perfect) / 3);
    // both sides in VOC pixel form make voc_eval's +1 IoU the continuous IoU: the train GT (455 px
    // wide) against the same box shifted right by dx has IoU (455 - dx) / (455 + dx): 0.5017 at 151, 0.4992 at 152
    const trainGt = val.dataset.annotations.find((a) => a.category_id === 19)!;
    const shifted = (dx: number): CocoResult[] => [{ image_id: trainGt.image_id, category_id: 19, bbox: [trainGt.bbox[0] + dx, trainGt.bbox[1], trainGt.bbox[2], trainGt.bbox[3]], score: 1 }];
    const trainOnly = gt.filter((g) => g.name === 'train');
    assert.is(vocEvalMap(vocEvalInputs(trainOnly, shifted(151)), { use07Metric: true }).mAP, ap07Perfect);
    assert.is(vocEvalMap(vocEvalInputs(trainOnly, shifted(152)), { use07Metric: true }).mAP, 0);
    // missing the one train box: train AP 0, mAP 2/3 (a test that can fail)
    const noTrain = results.filter((r) => r.category_id !== 19);
    assert.is(vocEvalMap(vocEvalInputs(threeClasses, noTrain), { use07Metric: true }).mAP, (ap07Perfect + ap07Perfect + 0) / 3);
    assert.throws(() => vocEvalInputs(gt, [{ image_id: 5, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }]), /result 0 is for image 5, which is not in the ground truth/);
    assert.throws(() => vocEvalInputs(gt, [{ image_id: 9, category_id: 21, bbox: [0, 0, 1, 1], score: 1 }]), /result 0 has category_id 21/);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test.run();
