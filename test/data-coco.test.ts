import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { datasetFromFiles, loadCoco, parseJsonFile, resolveDataset } from '../data/coco.ts';
import { createLoader } from '../data/loader.ts';
import type { CocoAnnotation, CocoDataset } from '../data/coco-types.ts';

const root = mkdtempSync(join(tmpdir(), 'coco-test-'));
const imagesDir = join(root, 'images');
mkdirSync(imagesDir);

async function writeImage(name: string, w: number, h: number, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) & 255;
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  const bytes = format === 'png' ? await img.png().toBuffer() : await img.jpeg({ quality: 90 }).toBuffer();
  writeFileSync(join(imagesDir, name), bytes);
  return bytes;
}

const ann = (id: number, imageId: number, cat: number, bbox: number[], extra: Partial<CocoAnnotation> = {}): CocoAnnotation =>
  ({ id, image_id: imageId, category_id: cat, bbox: bbox as CocoAnnotation['bbox'], area: bbox[2] * bbox[3], iscrowd: 0, ...extra });
const square = (x: number, y: number, s: number): number[][] => [[x, y, x + s, y, x + s, y + s, x, y + s]];

function writeJson(name: string, ds: unknown): string {
  const p = join(root, name);
  writeFileSync(p, typeof ds === 'string' ? ds : JSON.stringify(ds, null, 1));
  return p;
}

const categories = [{ id: 3, name: 'cat' }, { id: 1, name: 'dog' }, { id: 7, name: 'bird' }];

test.before(async () => {
  await writeImage('a.png', 40, 30);
  await writeImage('b.png', 30, 40);
  await writeImage('empty.png', 20, 20);
});

test('coco: contiguous labels, crowd kept apart, empty images only for eval', () => {
  const ds: CocoDataset = {
    images: [{ id: 1, file_name: 'a.png', width: 40, height: 30 }, { id: 2, file_name: 'b.png', width: 30, height: 40 }, { id: 3, file_name: 'empty.png', width: 20, height: 20 }],
    categories,
    annotations: [
      ann(10, 1, 7, [1, 2, 10, 10], { segmentation: square(1, 2, 10) }),
      ann(11, 1, 3, [5, 5, 20, 10], { segmentation: { size: [30, 40], counts: [0, 1200] }, iscrowd: 1 }),
      ann(12, 2, 1, [0, 0, 5, 6], { segmentation: square(0, 0, 5) }),
    ],
  };
  const logs: string[] = [];
  const d = loadCoco(datasetFromFiles(writeJson('ok.json', ds), imagesDir), { log: (m) => logs.push(m) });
  assert.equal(d.labelToCatId, [0, 1, 3, 7]);
  assert.equal(d.labelNames, ['__background__', 'dog', 'cat', 'bird']);
  assert.equal(Array.from(d.records[0].targets.labels), [3]);
  assert.equal(Array.from(d.records[0].targets.boxesXyxy), [1, 2, 11, 12]);
  assert.equal(Array.from(d.records[0].crowdBoxesXyxy), [5, 5, 25, 15]);
  assert.equal(d.trainIndices, [0, 1]);
  assert.equal(d.evalIndices, [0, 1, 2]);
  assert.is(logs.length, 1, 'one summary line per load');
  assert.equal(d.report.counts, {});
  assert.equal(loadCoco(datasetFromFiles(join(root, 'ok.json'), imagesDir), { log: null, filterEmptyImages: false }).trainIndices, [0, 1, 2]);
});

test('coco: malformed and truncated JSON name file, line and column', () => {
  const bad = writeJson('bad.json', '{\n "images": [],\n "annotations": [ {"id": 1,, } ]\n}');
  assert.throws(() => parseJsonFile(bad), (e: Error) => e.message.includes(bad) && /line 3 column \d+/.test(e.message));
  const full = JSON.stringify({ images: [], annotations: [], categories });
  const trunc = writeJson('trunc.json', full.slice(0, full.length - 5));
  assert.throws(() => loadCoco(datasetFromFiles(trunc, imagesDir), { log: null }), (e: Error) => e.message.includes(trunc) && e.message.includes('truncated'));
  const shape = writeJson('shape.json', { images: {} });
  assert.throws(() => loadCoco(datasetFromFiles(shape, imagesDir), { log: null }), /expected an object with arrays/);
});

test('coco: each bad annotation is counted under its own kind', () => {
  const ds: CocoDataset = {
    images: [{ id: 1, file_name: 'a.png', width: 40, height: 30 }, { id: 2, file_name: 'missing.png', width: 10, height: 10 }, { id: 1, file_name: 'dup.png', width: 5, height: 5 }],
    categories,
    annotations: [
      ann(1, 1, 3, [0, 0, 0, 5], { segmentation: square(0, 0, 5) }), // zero width
      ann(2, 1, 3, [-5, 2, 10, 10], { segmentation: square(0, 2, 5) }), // clamped
      ann(3, 1, 3, [50, 50, 10, 10], { segmentation: square(0, 0, 5) }), // outside
      ann(4, 1, 3, [1, 1, 5, 5], { segmentation: [[1, 1, 5, 1], [1, 1, 6, 1, 6, 6]] }), // 2-point part dropped, rest kept
      ann(5, 1, 3, [1, 1, 5, 5], { segmentation: [[1, 1, 6, 1, 6]] }), // odd -> nothing left
      ann(6, 1, 3, [1, 1, 5, 5], { segmentation: { size: [31, 40], counts: 'PP' } }), // RLE size mismatch
      ann(7, 1, 99, [1, 1, 5, 5], { segmentation: square(1, 1, 4) }), // unknown category
      ann(7, 1, 1, [1, 1, 5, 5], { segmentation: square(1, 1, 4) }), // duplicate id
      ann(0, 1, 1, [2, 2, 5, 5], { segmentation: square(2, 2, 4) }), // id 0
      ann(8, 42, 1, [2, 2, 5, 5], { segmentation: square(2, 2, 4) }), // unknown image
    ],
  };
  const logs: string[] = [];
  const d = loadCoco(datasetFromFiles(writeJson('bad-anns.json', ds), imagesDir), { log: (m) => logs.push(m) });
  assert.equal(d.report.counts, {
    boxNonPositiveSize: 1, boxClamped: 1, boxOutsideImage: 1, polygonTooFewPoints: 1, polygonOddCoords: 1, noUsableSegmentation: 1,
    rleSizeMismatch: 1, unknownCategory: 1, duplicateAnnotationId: 1, annotationIdZero: 1, annotationUnknownImage: 1,
    missingImageFile: 1, duplicateImageId: 1,
  });
  assert.is(logs.length, 1);
  assert.ok(logs[0].includes('annotation 5 (image 1): polygon part 0 has 5 coordinates (odd)'));
  const t = d.records[0].targets;
  assert.equal(Array.from(t.annIds), [2, 4, 7, 0]);
  assert.equal(Array.from(t.boxesXyxy.subarray(0, 4)), [0, 2, 5, 12]);
  assert.equal(t.masks![1], { kind: 'polygons', polygons: [[1, 1, 6, 1, 6, 6]] });
  assert.equal(d.trainIndices, [0]);
  assert.equal(d.evalIndices, [0], 'missing file excluded from eval too');
});

test('coco: keypoint images need >= 10 visible keypoints (torchvision), configurable', () => {
  const kp = (n: number): number[] => Array.from({ length: 17 }, (_, i) => (i < n ? [5, 5, 2] : [0, 0, 0])).flat();
  const ds: CocoDataset = {
    images: [{ id: 1, file_name: 'a.png', width: 40, height: 30 }, { id: 2, file_name: 'b.png', width: 30, height: 40 }],
    categories: [{ id: 1, name: 'person', keypoints: Array.from({ length: 17 }, (_, i) => `k${i}`) }],
    annotations: [
      ann(1, 1, 1, [1, 1, 9, 9], { segmentation: square(1, 1, 8), keypoints: kp(12), num_keypoints: 12 }),
      ann(2, 2, 1, [1, 1, 9, 9], { segmentation: square(1, 1, 8), keypoints: kp(4), num_keypoints: 4 }),
      ann(3, 2, 1, [1, 1, 9, 9], { segmentation: square(1, 1, 8), keypoints: [1, 2, 3], num_keypoints: 1 }),
    ],
  };
  const p = writeJson('kp.json', ds);
  const d = loadCoco(datasetFromFiles(p, imagesDir), { log: null });
  assert.is(d.numKeypoints, 17);
  assert.equal(d.trainIndices, [0]);
  assert.is(d.report.counts.badKeypoints, 1);
  assert.is(d.records[0].targets.keypoints!.length, 51);
  assert.equal(loadCoco(datasetFromFiles(p, imagesDir), { log: null, minKeypointsPerImage: 1 }).trainIndices, [0, 1]);
});

test('coco: dataset names map to the 2014/2017 layouts', async () => {
  const s = await resolveDataset('coco2017', 'val', { dataRoot: '/d/coco' });
  assert.is(s.annPath, '/d/coco/annotations/instances_val2017.json');
  assert.is(s.imagesDir, '/d/coco/images/val2017');
  assert.is((await resolveDataset('coco2014-keypoints', 'train', { dataRoot: '/d/coco' })).annPath, '/d/coco/annotations/person_keypoints_train2014.json');
  await resolveDataset('voc2007', 'train').then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /unknown dataset name 'voc2007'/));
});

test('coco: corrupt, truncated and mis-sized images are skipped and counted at decode time', async () => {
  const jpg = await writeImage('good.jpg', 48, 32, 'jpeg');
  writeFileSync(join(imagesDir, 'trunc.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
  writeFileSync(join(imagesDir, 'garbage.png'), Buffer.from('not a png at all'));
  const ds: CocoDataset = {
    images: [
      { id: 1, file_name: 'good.jpg', width: 48, height: 32 }, { id: 2, file_name: 'trunc.jpg', width: 48, height: 32 },
      { id: 3, file_name: 'garbage.png', width: 48, height: 32 }, { id: 4, file_name: 'a.png', width: 41, height: 30 },
    ],
    categories,
    annotations: [1, 2, 3, 4].map((i) => ann(i, i, 1, [1, 1, 8, 8], { segmentation: square(1, 1, 8) })),
  };
  const d = loadCoco(datasetFromFiles(writeJson('decode.json', ds), imagesDir), { log: null });
  const logs: string[] = [];
  const L = createLoader(d, { batchSize: 4, shuffle: false, groupByAspect: false, resize: null, log: (m) => logs.push(m) });
  const b = await L.next();
  assert.equal(b.imageIds, [1]);
  assert.equal(L.report.counts, { decodeFailed: 2, imageSizeMismatch: 1 }, JSON.stringify(L.report.examples));
  assert.ok(L.report.examples.decodeFailed.some((m) => m.includes('trunc.jpg')));
  assert.ok(L.report.examples.imageSizeMismatch[0].includes('48x32') === false && L.report.examples.imageSizeMismatch[0].includes('41x30'));
  assert.is(logs.length, 3);
  const strict = createLoader(d, { batchSize: 4, shuffle: false, groupByAspect: false, resize: null, onBadImage: 'throw', log: null });
  await strict.next().then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /trunc\.jpg|garbage\.png|41x30/));
});

test.after(() => rmSync(root, { recursive: true, force: true }));
test.run();
