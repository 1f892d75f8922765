// Loader throughput: images/s delivered (decode + resize + normalise + flip + collate) with
// 0 (in-process), 1 and 2 worker threads, for COCO-sized JPEGs resized to 800/1333 and for
// the shapes dataset. Usage: npx tsx data/bench-loader.ts [--images N] [--batches N]
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cpus } from 'node:os';
import sharp from 'sharp';
import type { CocoDataset } from './coco-types.ts';
import { datasetFromFiles, loadCoco, type LoadedCoco } from './coco.ts';
import { RESIZE_PRESETS, type ResizeSpec } from './images.ts';
import { createLoader } from './loader.ts';
import { ensureShapes } from './shapes.ts';
import { mulberry32 } from './prng.ts';

const arg = (name: string, dflt: number): number => { const i = process.argv.indexOf(name); return i >= 0 ? Number(process.argv[i + 1]) : dflt; };
const numImages = arg('--images', 24), numBatches = arg('--batches', 12);

/** COCO-like 640x480 / 480x640 JPEGs with noisy content (so JPEG decode cost is realistic). */
async function largeJpegDataset(dir: string): Promise<LoadedCoco> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const ds: CocoDataset = { images: [], annotations: [], categories: [{ id: 1, name: 'thing' }] };
  const rand = mulberry32(1);
  for (let i = 0; i < numImages; i++) {
    const [w, h] = i % 4 === 3 ? [480, 640] : [640, 480];
    const name = `${i}.jpg`;
    if (!existsSync(join(dir, 'images', name))) {
      const raw = Buffer.alloc(w * h * 3);
      for (let p = 0; p < raw.length; p++) raw[p] = ((p % (w * 3)) / 5 + 60 * rand()) & 255;
      writeFileSync(join(dir, 'images', name), await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    }
    ds.images.push({ id: i + 1, file_name: name, width: w, height: h });
    ds.annotations.push({ id: i + 1, image_id: i + 1, category_id: 1, bbox: [10, 20, 200, 150], area: 30000, iscrowd: 0, segmentation: [[10, 20, 210, 20, 210, 170]] });
  }
  writeFileSync(join(dir, 'ann.json'), JSON.stringify(ds));
  return loadCoco(datasetFromFiles(join(dir, 'ann.json'), join(dir, 'images')), { log: null });
}

async function measure(data: LoadedCoco, resize: ResizeSpec | null, numWorkers: number): Promise<number> {
  const L = createLoader(data, { batchSize: 2, seed: 1, resize, numWorkers, prefetchBatches: Math.max(2, numWorkers * 2), log: null });
  for (let i = 0; i < 2; i++) await L.next(); // warm-up: worker boot, JIT
  const t0 = performance.now();
  let n = 0;
  for (let i = 0; i < numBatches; i++) n += (await L.next()).batchSize;
  const s = (performance.now() - t0) / 1000;
  await L.close();
  return n / s;
}

const large = await largeJpegDataset(resolve('.cache/bench-loader'));
const shapesPaths = await ensureShapes({});
const shapes = loadCoco(datasetFromFiles(shapesPaths.instances.train, join(shapesPaths.imagesDir, 'train')), { log: null });
console.log(`cpus: ${cpus().length} x ${cpus()[0]?.model}; batch 2; ${numBatches} timed batches after 2 warm-up`);
for (const [label, data, resize] of [
  ['640x480 JPEG -> 800x1066 (torchvision 800/1333)', large, RESIZE_PRESETS.torchvision],
  ['shapes 128-256 px PNG/JPEG, no resize', shapes, null],
  ['shapes -> 256/384 (RESIZE_PRESETS.shapes)', shapes, RESIZE_PRESETS.shapes],
] as const) {
  const row: string[] = [];
  for (const w of [0, 1, 2]) row.push(`${w} workers: ${(await measure(data, resize, w)).toFixed(1)} img/s`);
  console.log(`${label}: ${row.join(', ')}`);
}
