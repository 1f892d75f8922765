// `tsx model/demo.ts IMG… DIR… [--ckpt RUN] [--weights tv.pth --preset maskrcnn_resnet50_fpn]`:
// batched inference on image files; writes PNGs with boxes, class names, scores, translucent
// masks and keypoint skeletons, plus detections.json.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import * as E from '../engine/index.ts';
import { parseFlags, type FlagSpec } from './args.ts';
import { MaskRCNN } from './mask-rcnn.ts';
import { preset, type ModelConfig, type PresetName } from './config.ts';
import { keypointsForLabels, maskBitmap, predict, toCocoResults } from './postprocess.ts';
import { gpuBatch } from './transform.ts';
import { loadCheckpoint, loadIntoModule, mapTorchvisionKeys, readWeights } from './weights/index.ts';
import { drawDetections } from './tools/draw.ts';
import { COCO_SKELETON, SHAPES_CATEGORIES } from '../data/shapes.ts';
import { resizedSize, toPlanarResized, decodeImage } from '../data/images.ts';

const FLAGS: Record<string, FlagSpec> = {
  ckpt: { kind: 'string', help: 'our checkpoint or run folder', default: 'runs/shapes' },
  weights: { kind: 'string', help: 'torchvision .pth / safetensors instead of --ckpt (with --preset)' },
  preset: { kind: 'string', help: 'model preset for --weights', default: 'maskrcnn_resnet50_fpn', choices: ['maskrcnn_resnet50_fpn', 'keypointrcnn_resnet50_fpn', 'shapes_small'] },
  labels: { kind: 'list', help: 'class names, background first (default: shapes or COCO ids)' },
  out: { kind: 'string', help: 'output folder', default: 'runs/demo' },
  bs: { kind: 'int', help: 'images per batch', default: 2, min: 1 },
  score_thresh: { kind: 'float', help: 'drawing threshold', default: 0.5, min: 0, max: 1 },
};

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);

async function main(): Promise<void> {
  const { flags: f, positional } = parseFlags('demo', process.argv.slice(2), FLAGS);
  const files = positional.flatMap((p) => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) throw new Error(`demo: ${p} does not exist`);
    return st.isDirectory() ? readdirSync(p).filter((x) => IMAGE_EXT.has(extname(x).toLowerCase())).sort().map((x) => join(p, x)) : [p];
  });
  if (!files.length) throw new Error('demo: give image files or folders (png/jpg/webp)');
  await E.initEngine();
  let cfg: ModelConfig;
  let model: MaskRCNN;
  if (f.weights) {
    cfg = preset(f.preset as PresetName);
    model = new MaskRCNN(cfg);
    const r = loadIntoModule(model, mapTorchvisionKeys(await readWeights(String(f.weights))).mapped, { strict: false });
    if (r.missing.length || r.mismatched.length) console.warn(`demo: ${r.missing.length} missing, ${r.mismatched.length} mismatched keys (first: ${[...r.missing, ...r.mismatched.map((m) => m.key)].slice(0, 3).join(', ')})`);
  } else {
    const ck = loadCheckpoint(String(f.ckpt));
    cfg = ck.sidecar.config as ModelConfig;
    model = new MaskRCNN(cfg);
    loadIntoModule(model, new Map([...ck.tensors].filter(([k]) => !k.startsWith('optim.'))), { strict: true });
  }
  const labelNames = f.labels ? (f.labels as string[]) : cfg.name === 'shapes_small' ? ['__background__', ...SHAPES_CATEGORIES.map((c) => c.name)] : Array.from({ length: cfg.numClasses }, (_, i) => (i ? `class ${i}` : '__background__'));
  // keypoints belong to persons: label 1 in the shapes and Keypoint R-CNN label sets (COCO: person = 1)
  const kpLabels: Set<number> | null = cfg.keypoint ? new Set([1]) : null;
  const out = String(f.out);
  mkdirSync(out, { recursive: true });
  const all: unknown[] = [];
  const norm = 'torchvision' as const;
  for (let i = 0; i < files.length; i += Number(f.bs)) {
    const chunk = files.slice(i, i + Number(f.bs));
    const imgs = await Promise.all(chunk.map((p) => decodeImage(p, { honourExifOrientation: true })));
    const sizes = imgs.map((im) => ({ ...resizedSize(im.heightPx, im.widthPx, { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }), origHeightPx: im.heightPx, origWidthPx: im.widthPx }));
    const Hp = Math.ceil(Math.max(...sizes.map((s) => s.heightPx)) / 32) * 32;
    const Wp = Math.ceil(Math.max(...sizes.map((s) => s.widthPx)) / 32) * 32;
    const batch = new Float32Array(chunk.length * 3 * Hp * Wp);
    imgs.forEach((im, b) => {
      const planar = toPlanarResized(im, sizes[b].heightPx, sizes[b].widthPx, norm, false);
      for (let c = 0; c < 3; c++) for (let y = 0; y < sizes[b].heightPx; y++) {
        batch.set(planar.subarray((c * sizes[b].heightPx + y) * sizes[b].widthPx, (c * sizes[b].heightPx + y + 1) * sizes[b].widthPx), ((b * 3 + c) * Hp + y) * Wp);
      }
    });
    const gb = gpuBatch(batch, chunk.length, Hp, Wp, sizes, null, cfg, chunk.map((_, j) => i + j));
    const dets = await predict(model, gb);
    gb.images.dispose();
    for (let b = 0; b < chunk.length; b++) {
      const d = dets[b];
      const png = await drawDetections({ data: imgs[b].rgbHwc, widthPx: imgs[b].widthPx, heightPx: imgs[b].heightPx }, {
        boxesXyxy: d.boxesXyxy, scores: d.scores, labels: d.labels, masks: d.masks ? d.masks.map((_, k) => maskBitmap(d, k)) : undefined, keypoints: keypointsForLabels(d, kpLabels),
      }, { labelNames, scoreThresh: Number(f.score_thresh), skeleton: COCO_SKELETON });
      const name = `${basename(chunk[b], extname(chunk[b]))}.png`;
      writeFileSync(join(out, name), png);
      const res = toCocoResults([d], labelNames.map((_, k) => k), { keypointLabels: kpLabels ?? undefined });
      all.push({ file: chunk[b], bbox: res.bbox, segm: res.segm, keypoints: res.keypoints });
      console.log(`demo: ${chunk[b]}: ${d.scores.filter((s) => s >= Number(f.score_thresh)).length} detections >= ${f.score_thresh} → ${join(out, name)}`);
    }
  }
  writeFileSync(join(out, 'detections.json'), JSON.stringify(all));
}

main().then(() => E.shutdownEngine()).catch(async (e) => {
  console.error((e as Error).message);
  await E.shutdownEngine().catch(() => {});
  process.exit(1);
});
