import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureShapes, hashShapesDir, SHAPES_VERSION } from '../data/shapes.ts';
import { segmentationToRle } from '../data/polygon.ts';
import { rleArea, rleToBbox } from '../data/rle.ts';
import type { CocoDataset } from '../data/coco-types.ts';

// Hash of the tiny config below (JSON + PNG/JPEG bytes). Changes only with SHAPES_VERSION,
// the generator, sharp/libvips encoders or data/polygon.ts's rasteriser.
const TINY = { seed: 7, numTrain: 10, numVal: 4, minSidePx: 64, maxSidePx: 112, jpegEvery: 3 };
const TINY_HASH = '7c630f55480330f1322b3671f4a4c8a24c0fd224f772832fd3ebb52d138aaf92';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'shapes-test-')); dirs.push(d); return d; };

test('shapes: generation is deterministic and matches the committed hash', async () => {
  const a = await ensureShapes({ ...TINY, cacheDir: tmp() });
  const b = await ensureShapes({ ...TINY, cacheDir: tmp() });
  const ha = hashShapesDir(a.root);
  assert.is(ha, hashShapesDir(b.root));
  assert.is(JSON.parse(readFileSync(join(a.root, 'STAMP.json'), 'utf8')).version, SHAPES_VERSION);
  assert.is(ha, TINY_HASH, `tiny shapes hash is now ${ha}: update TINY_HASH only for an intended generator change (and bump SHAPES_VERSION)`);
});

test('shapes: ensureShapes is a no-op when the stamp matches', async () => {
  const dir = tmp();
  const a = await ensureShapes({ ...TINY, cacheDir: dir });
  const m0 = statSync(a.instances.train).mtimeMs;
  const t0 = performance.now();
  const b = await ensureShapes({ ...TINY, cacheDir: dir });
  assert.is(b.root, a.root);
  assert.is(statSync(b.instances.train).mtimeMs, m0);
  assert.ok(performance.now() - t0 < 50);
  const c = await ensureShapes({ ...TINY, seed: 8, cacheDir: dir });
  assert.is.not(c.root, a.root, 'different options -> different folder');
});

test('shapes: annotations agree with masks, ids >= 1, keypoints well-formed', async () => {
  const p = await ensureShapes({ ...TINY, numTrain: 40, cacheDir: tmp() });
  const inst = JSON.parse(readFileSync(p.instances.train, 'utf8')) as CocoDataset;
  const kp = JSON.parse(readFileSync(p.keypoints.train, 'utf8')) as CocoDataset;
  assert.equal(inst.categories.map((c) => c.id), [1, 2, 3, 5]);
  assert.is(kp.categories.length, 1);
  assert.is(kp.categories[0].keypoints!.length, 17);
  const ids = new Set<number>();
  let polys = 0, rles = 0, crowd = 0, small = 0, medium = 0;
  for (const a of inst.annotations) {
    assert.ok(a.id >= 1 && !ids.has(a.id));
    ids.add(a.id);
    const img = inst.images.find((i) => i.id === a.image_id)!;
    const rle = segmentationToRle(a.segmentation!, img.height, img.width);
    assert.is(rleArea(rle), a.area, `area of ann ${a.id}`);
    assert.equal(rleToBbox(rle), a.bbox, `bbox of ann ${a.id}`);
    if (Array.isArray(a.segmentation)) polys++; else rles++;
    if (a.iscrowd) crowd++;
    if (a.area < 32 * 32) small++; else if (a.area < 96 * 96) medium++;
  }
  assert.ok(polys > 0 && rles > 0, `both polygons (${polys}) and RLE (${rles}) present`);
  assert.ok(small > 0 && medium > 0);
  assert.ok(crowd >= 0);
  for (const a of kp.annotations) {
    assert.is(a.keypoints!.length, 51);
    let n = 0;
    for (let k = 0; k < 17; k++) {
      const v = a.keypoints![3 * k + 2];
      assert.ok(v === 0 || v === 1 || v === 2);
      if (v > 0) n++; else assert.equal([a.keypoints![3 * k], a.keypoints![3 * k + 1]], [0, 0]);
    }
    assert.is(a.num_keypoints, n);
    assert.ok(inst.annotations.some((b) => b.id === a.id && b.category_id === 1), 'keypoint ann shares id with the instances file');
  }
  assert.ok(kp.annotations.length > 0);
});

test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
test.run();
