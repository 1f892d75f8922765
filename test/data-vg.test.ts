import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCoco } from '../data/coco.ts';
import { IssueCounter } from '../data/report.ts';
import { parseImageIdList, parseVgVocabulary, prepareVg, vgSplitOf, vgToCoco } from '../data/vg.ts';

// Synthetic VG files: 1.4-style image 1 and 2, 1.0-style image 3 (`id`, `name`), image 9 only in objects.json.
const imageData = [
  { image_id: 1, width: 100, height: 80, url: 'https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg', coco_id: null, flickr_id: null },
  { image_id: 2, width: 50, height: 40, url: 'https://cs.stanford.edu/people/rak248/VG_100K/2.jpg' },
  { id: 3, width: 64, height: 64 },
  { image_id: 4, width: 0, height: 10 },
];
const objects = [
  { image_id: 1, objects: [
    { object_id: 11, x: 10, y: 5, w: 20, h: 30, names: ['Man '], synsets: ['man.n.01'] },
    { object_id: 12, x: 90, y: 70, w: 20, h: 20, names: ['tree'] },           // clamped to 100x80
    { object_id: 13, x: 10, y: 5, w: 20, h: 30, names: ['guy'] },             // synonym of man, same box: duplicate
    { object_id: 14, x: 0, y: 0, w: 5, h: 5, names: ['zebra-striped thing'] }, // not in vocabulary
    { object_id: 15, x: 120, y: 0, w: 5, h: 5, names: ['tree'] },             // outside: no area
    { object_id: 16, x: 1, y: 1, w: null, h: 5, names: ['tree'] },            // bad number
    { object_id: 17, x: 1, y: 1, w: 2, h: 2, names: [] },                     // no name
  ] },
  { image_id: 2, objects: [{ object_id: 21, x: 0, y: 0, w: 50, h: 40, names: ['Tree'] }] },
  { id: 3, objects: [{ id: 31, x: 3, y: 4, w: 10, h: 10, name: 'man' }, { id: 32, x: 5, y: 5, w: 3, h: 3, name: 'man' }] },
  { image_id: 9, objects: [{ object_id: 91, x: 0, y: 0, w: 1, h: 1, names: ['man'] }] },
];
const vocabText = 'man,guy , person\n\ntree\nhorse\n';

test('vg: vocabulary and split-list parsing', () => {
  const v = parseVgVocabulary(vocabText);
  assert.equal(v.names, ['man', 'tree', 'horse']);
  assert.is(v.aliasToIndex.get('guy'), 0);
  assert.is(v.aliasToIndex.get('person'), 0);
  assert.throws(() => parseVgVocabulary('man\nguy,man\n', 'v.txt'), /v\.txt: line 2: 'man' is already class 'man'/);
  assert.throws(() => parseVgVocabulary('\n \n'), /no class names/);
  assert.equal([...parseImageIdList('1.jpg\nVG_100K_2/2345.jpg xml/2345.xml\n\n  77\n')], [1, 2345, 77]);
});

test('vg: objects -> COCO with a vocabulary: classes, boxes, synonyms, drops counted', () => {
  const issues = new IssueCounter('vg');
  const { dataset, droppedNames } = vgToCoco(objects, imageData, { vocabulary: parseVgVocabulary(vocabText), issues });
  assert.equal(dataset.categories.map((c) => [c.id, c.name]), [[1, 'man'], [2, 'tree'], [3, 'horse']]);
  assert.equal(dataset.images.map((i) => [i.id, i.file_name, i.width, i.height]), [[1, 'VG_100K_2/1.jpg', 100, 80], [2, 'VG_100K/2.jpg', 50, 40], [3, '3.jpg', 64, 64]]);
  assert.equal(dataset.annotations.map((a) => [a.id, a.image_id, a.category_id, a.bbox, a.area, a.iscrowd, a.vg_object_id]), [
    [1, 1, 1, [10, 5, 20, 30], 600, 0, 11],
    [2, 1, 2, [90, 70, 10, 10], 100, 0, 12],
    [3, 2, 2, [0, 0, 50, 40], 2000, 0, 21],
    [4, 3, 1, [3, 4, 10, 10], 100, 0, 31],
    [5, 3, 1, [5, 5, 3, 3], 9, 0, 32],
  ]);
  assert.equal(issues.report.counts, {
    vgBadImageEntry: 1, vgBoxClamped: 1, vgDuplicateObject: 1, vgNameNotInVocabulary: 1, vgDegenerateBox: 1,
    vgBadBox: 1, vgObjectWithoutName: 1, vgObjectsUnknownImage: 1,
  });
  assert.equal([...droppedNames], [['zebra-striped thing', 1]]);
  assert.match(issues.report.examples.vgDuplicateObject[0], /image 1 object 2 \(id 13, 'guy'\)/);
  const noDedup = vgToCoco(objects, imageData, { vocabulary: parseVgVocabulary(vocabText), dropDuplicates: false });
  assert.is(noDedup.dataset.annotations.length, 6);
  assert.throws(() => vgToCoco({}, imageData), /objects must be a JSON array/);
});

test('vg: open vocabulary by frequency over all images, the same for every split', () => {
  const all = vgToCoco(objects, imageData, {});
  // counts over every entry: man 4 (incl. image 9), tree 4, guy 1, zebra 1 -> ties by name
  assert.equal(all.dataset.categories.map((c) => c.name), ['man', 'tree', 'guy', 'zebra-striped thing']);
  const top2 = vgToCoco(objects, imageData, { maxCategories: 2, imageIds: new Set([3]) });
  assert.equal(top2.dataset.categories.map((c) => c.name), ['man', 'tree']);
  assert.equal(top2.dataset.images.map((i) => i.id), [3]);
  assert.is(top2.dataset.annotations.length, 2);
  assert.equal(top2.report.counts, {}, 'images outside the split are not reported');
});

test('vg: prepareVg writes a cached COCO file that loadCoco reads; deterministic split; missing files show the layout', () => {
  const root = mkdtempSync(join(tmpdir(), 'vg-'));
  try {
    assert.throws(() => prepareVg('train', { root, cacheDir: join(root, 'cache') }), /missing .*objects\.json[\s\S]*expected layout/);
    writeFileSync(join(root, 'objects.json'), JSON.stringify(objects));
    writeFileSync(join(root, 'image_data.json'), JSON.stringify(imageData));
    writeFileSync(join(root, 'objects_vocab.txt'), vocabText);
    writeFileSync(join(root, 'train.txt'), '1.jpg\n2.jpg\n');
    writeFileSync(join(root, 'val.txt'), '3\n');
    for (const f of ['VG_100K_2/1.jpg', 'VG_100K/2.jpg', '3.jpg']) {
      mkdirSync(join(root, 'images', f, '..'), { recursive: true });
      writeFileSync(join(root, 'images', f), ''); // loadCoco only stats the files here
    }
    const cacheDir = join(root, 'cache');
    const logs: string[] = [];
    const spec = prepareVg('train', { root, cacheDir, log: (m) => logs.push(m) });
    assert.is(spec.name, 'vg_train');
    assert.match(logs[0], /2 images, 3 objects, 3 classes; most-dropped names: 'zebra-striped thing' 1/);
    const mtime = statSync(spec.annPath).mtimeMs;
    assert.is(prepareVg('train', { root, cacheDir, log: (m) => logs.push(m) }).annPath, spec.annPath);
    assert.is(statSync(spec.annPath).mtimeMs, mtime, 'second call reuses the cache');
    assert.is(logs.length, 1);
    const train = loadCoco(spec, { log: null });
    assert.equal(train.labelNames, ['__background__', 'man', 'tree', 'horse']);
    assert.equal(train.records.map((r) => r.imageId), [1, 2]);
    assert.equal(train.trainIndices, [0, 1]);
    assert.equal(Array.from(train.records[0].targets.boxesXyxy), [10, 5, 30, 35, 90, 70, 100, 80]);
    assert.equal(Array.from(train.records[0].targets.labels), [1, 2]);
    assert.is(train.records[0].targets.masks, null);
    assert.equal(train.report.counts, {});
    const val = loadCoco(prepareVg('val', { root, cacheDir, log: null }), { log: null });
    assert.equal(val.records.map((r) => r.imageId), [3]);
    assert.equal(val.labelNames, train.labelNames);
    assert.is(readdirSync(cacheDir).filter((f) => f.includes('.tmp')).length, 0);
    // without split lists: a hash split, disjoint and covering
    rmSync(join(root, 'train.txt')); rmSync(join(root, 'val.txt'));
    const tr = loadCoco(prepareVg('train', { root, cacheDir, valFraction: 0.5, log: null }), { log: null, checkImageFiles: false });
    const va = loadCoco(prepareVg('val', { root, cacheDir, valFraction: 0.5, log: null }), { log: null, checkImageFiles: false });
    assert.equal([...tr.records, ...va.records].map((r) => r.imageId).sort(), [1, 2, 3]);
    for (const r of tr.records) assert.is(vgSplitOf(r.imageId, 0.5), 'train');
    let nVal = 0;
    for (let id = 1; id <= 10000; id++) if (vgSplitOf(id, 0.1) === 'val') nVal++;
    assert.ok(nVal > 900 && nVal < 1100, `${nVal} of 10000 ids in val at valFraction 0.1`);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test.run();
