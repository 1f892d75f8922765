// `tsx model/test.ts --ckpt RUN_DIR_OR_CKPT`: evaluates a checkpoint on a split: bbox / segm /
// keypoints summaries in pycocotools' layout, a per-category AP table, the results JSON, and with
// `--vis N` N pictures with the detections drawn.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import * as E from '../engine/index.ts';
import { parseFlags, type FlagSpec } from './args.ts';
import { DATASET_NAMES, loadToolDataset, type DatasetName } from './datasets.ts';
import { MaskRCNN } from './mask-rcnn.ts';
import { evaluateModel } from './evaluate.ts';
import { keypointsForLabels, maskBitmap, type ImageDetections } from './postprocess.ts';
import { loadCheckpoint, loadIntoModule } from './weights/index.ts';
import { drawDetections } from './tools/draw.ts';
import { COCO_SKELETON } from '../data/shapes.ts';
import { applyOverrides, type ModelConfig } from './config.ts';

const FLAGS: Record<string, FlagSpec> = {
  ckpt: { kind: 'string', help: 'checkpoint (NAME.json / NAME.safetensors) or run folder (latest loadable checkpoint)', default: 'runs/shapes' },
  dataset: { kind: 'string', help: 'dataset name', default: 'shapes', choices: DATASET_NAMES },
  ann: { kind: 'string', help: 'COCO-format annotation file (with --images)' },
  images: { kind: 'string', help: 'image folder for --ann' },
  split: { kind: 'string', help: 'split', default: 'val', choices: ['train', 'val'] },
  bs: { kind: 'int', help: 'images per batch', default: 4, min: 1 },
  nw: { kind: 'int', help: 'loader workers', default: 1, min: 0 },
  max_images: { kind: 'int', help: 'evaluate the first N images (0: all)', default: 0, min: 0 },
  vis: { kind: 'int', help: 'write N pictures with detections drawn', default: 0, min: 0 },
  out: { kind: 'string', help: 'output folder (results JSON, pictures)', default: 'runs/test' },
  score_thresh: { kind: 'float', help: 'score threshold for --vis pictures', default: 0.5, min: 0, max: 1 },
  set: { kind: 'multi', help: 'inference config override path=value (repeatable), e.g. --set box.scoreThresh=0.01 --set box.detectionsPerImage=50' },
};

async function main(): Promise<void> {
  const { flags: f } = parseFlags('test', process.argv.slice(2), FLAGS);
  await E.initEngine();
  const ck = loadCheckpoint(String(f.ckpt));
  const cfg = applyOverrides(ck.sidecar.config as ModelConfig, f.set as string[]);
  const model = new MaskRCNN(cfg);
  loadIntoModule(model, new Map([...ck.tensors].filter(([k]) => !k.startsWith('optim.'))), { strict: true });
  console.log(`test: ${ck.jsonPath} (iteration ${ck.sidecar.iteration}, ${cfg.name})`);
  const ds = await loadToolDataset({ dataset: f.dataset as DatasetName, ann: (f.ann as string) ?? undefined, images: (f.images as string) ?? undefined, keypoints: !!cfg.keypoint, split: f.split as 'train' | 'val' }, null);
  const out = String(f.out);
  mkdirSync(out, { recursive: true });
  const vis: ImageDetections[] = [];
  const r = await evaluateModel(model, ds, {
    batchSize: Number(f.bs), numWorkers: Number(f.nw), maxImages: Number(f.max_images) || undefined, log: (l) => console.log(l),
    onDetections: (d) => { if (vis.length < Number(f.vis)) vis.push(d); },
  });
  console.log(`test: ${r.images} images, inference ${(r.inferMs / r.images).toFixed(0)} ms/image`);
  for (const [kind, res] of [['bbox', r.bbox], ['segm', r.segm], ['keypoints', r.keypoints]] as const) {
    if (!res) continue;
    console.log(`\nper-category AP (${kind}):`);
    for (const { catId, ap } of res.perCategoryAP) {
      const name = ds.loaded.categories.find((c) => c.id === catId)?.name ?? String(catId);
      console.log(`  ${name.padEnd(20)} ${ap < 0 ? '   n/a' : ap.toFixed(3)}`);
    }
  }
  writeFileSync(join(out, 'results.json'), JSON.stringify([...r.results.bbox, ...r.results.segm, ...r.results.keypoints]));
  for (const d of vis) {
    const rec = ds.loaded.records.find((x) => x.imageId === d.imageId)!;
    const { data, info } = await sharp(rec.filePath).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const png = await drawDetections({ data: new Uint8Array(data), widthPx: info.width, heightPx: info.height }, {
      boxesXyxy: d.boxesXyxy, scores: d.scores, labels: d.labels,
      masks: d.masks ? d.masks.map((_, i) => maskBitmap(d, i)) : undefined,
      keypoints: keypointsForLabels(d, ds.keypointLabels),
    }, { labelNames: ds.loaded.labelNames, scoreThresh: Number(f.score_thresh), skeleton: COCO_SKELETON });
    writeFileSync(join(out, `det_${d.imageId}.png`), png);
  }
  if (vis.length) console.log(`test: ${vis.length} pictures in ${out}`);
}

main().then(() => E.shutdownEngine()).catch(async (e) => {
  console.error((e as Error).message);
  await E.shutdownEngine().catch(() => {});
  process.exit(1);
});
