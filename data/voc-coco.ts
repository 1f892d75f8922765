// Pascal VOC 2007/2012 (boxes) as a COCO-format dataset, so it trains and evaluates through
// loadCoco like everything else (the data/vg.ts pattern: convert once into a cached JSON).
// Sets and defaults follow py-faster-rcnn lib/datasets/pascal_voc.py: train = `trainval`,
// test = 2007 `test` / 2012 `val` (2012 test annotations are not public), class names lower-cased
// and trimmed, images `JPEGImages/<id>.jpg`. With use_diff=False py-faster-rcnn drops difficult
// objects from training; here they become iscrowd=1, which keeps them out of the training targets
// and makes COCO evaluation ignore detections on them, as voc_eval does. Every annotation keeps
// `difficult: 0|1` so vocGroundTruth can rebuild voc_eval's input whatever `useDifficult` was.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult } from './coco-types.ts';
import type { DatasetSpec, Split } from './coco.ts';
import { parseJsonFile } from './coco.ts';
import type { VocDetection, VocGtObject } from './eval/voc.ts';
import { IssueCounter, formatIssueReport } from './report.ts';
import { parseVocXml } from './voc.ts';

/** Bump when the converted JSON changes for the same inputs (part of the cache key). */
export const VOC_CONVERT_VERSION = 1;

/** py-faster-rcnn pascal_voc._classes without '__background__'; category id = index + 1. */
export const VOC_CLASSES: readonly string[] = [
  'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
];

export type VocYear = '2007' | '2012';
export const VOC_YEARS: readonly VocYear[] = ['2007', '2012'];

export const VOC_LAYOUT = `expected layout of a Pascal VOC root (default data/VOCdevkit), for each year used:
  <root>/VOC2007/Annotations/<id>.xml                   one XML per image
  <root>/VOC2007/JPEGImages/<id>.jpg
  <root>/VOC2007/ImageSets/Main/{trainval,test}.txt     one image id per line (000005, ...)
  <root>/VOC2012/{Annotations,JPEGImages}/               the same, ids like 2008_000002
  <root>/VOC2012/ImageSets/Main/{trainval,val}.txt      (2012 test annotations are not public)
VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar and VOCtrainval_11-May-2012.tar unpack into VOCdevkit/ in this layout.`;

/**
 * COCO image id of a VOC image name: '000005' (VOC2007) -> 5, '2008_000002' (VOC2012) ->
 * 2008000002 (fits int32, never below 1e9, so the two forms cannot collide). null for other names.
 */
export function vocImageId(name: string): number | null {
  let m = /^(\d{1,6})$/.exec(name);
  if (m) return Number(m[1]);
  m = /^((?:19|20)\d\d)_(\d{6})$/.exec(name);
  if (m) return Number(m[1]) * 1e6 + Number(m[2]);
  return null;
}
/** Ids for names vocImageId does not know, in conversion order: between the two ranges above. */
const FALLBACK_ID_BASE = 1_000_000;

export interface PrepareVocOptions {
  /** Default data/VOCdevkit. */
  root?: string;
  /** Default ['2007']; ['2007', '2012'] is py-faster-rcnn's voc_2007_trainval+voc_2012_trainval. */
  years?: VocYear[];
  /** ImageSets/Main list for split 'train'. Default 'trainval'. */
  trainSet?: string;
  /** ImageSets/Main list for split 'val'. Default 'test' for 2007, 'val' for 2012. */
  testSet?: string;
  /** Where converted JSON is cached; default .cache/voc (git-ignored). */
  cacheDir?: string;
  /** false (default): difficult objects become iscrowd=1 (py-faster-rcnn use_diff=False). */
  useDifficult?: boolean;
  log?: ((m: string) => void) | null;
}

function setNameFor(split: Split, year: VocYear, opts: PrepareVocOptions): string {
  switch (split) {
    case 'train': return opts.trainSet ?? 'trainval';
    case 'val': return opts.testSet ?? (year === '2007' ? 'test' : 'val');
  }
}

/** First token of each non-empty line (Main/<set>.txt has one id; Main/<cls>_<set>.txt adds ' 1'/'-1'). */
export function parseVocImageSet(text: string): string[] {
  const ids: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const tok = line.trim().split(/\s+/)[0];
    if (tok) ids.push(tok);
  }
  return ids;
}

/**
 * Converts (once; cached by the sizes and mtimes of the set lists and every listed XML, and the
 * options) the `split` of the chosen VOC years to COCO JSON and returns the spec for loadCoco:
 * file_name `VOC<year>/JPEGImages/<id>.jpg` under imagesDir = root. Missing folders or set
 * lists: an error that prints VOC_LAYOUT; listed images without XML: an error naming them.
 */
export function prepareVoc(split: Split, opts: PrepareVocOptions = {}): DatasetSpec {
  const root = resolve(opts.root ?? 'data/VOCdevkit');
  const years = opts.years ?? ['2007'];
  if (years.length === 0) throw new Error(`voc: years is empty; accepted: ${VOC_YEARS.join(', ')}`);
  for (const y of years) if (!VOC_YEARS.includes(y)) throw new Error(`voc: unknown year '${y}'; accepted: ${VOC_YEARS.join(', ')}`);
  if (new Set(years).size !== years.length) throw new Error(`voc: year listed twice in [${years.join(', ')}]`);
  const parts = years.map((year) => {
    const set = setNameFor(split, year, opts);
    if (!/^[\w.-]+$/.test(set)) throw new Error(`voc: image set name '${set}' must be a file name in ImageSets/Main (letters, digits, _ . -)`);
    const dir = join(root, `VOC${year}`);
    return { year, set, dir, listPath: join(dir, 'ImageSets', 'Main', `${set}.txt`) };
  });
  const missing: string[] = [];
  for (const p of parts) {
    for (const d of [join(p.dir, 'Annotations'), join(p.dir, 'JPEGImages')]) if (!existsSync(d) && !missing.includes(d)) missing.push(d);
    if (!existsSync(p.listPath)) missing.push(p.listPath);
  }
  if (missing.length) throw new Error(`voc: missing ${missing.join(', ')}\n${VOC_LAYOUT}`);

  const name = `voc_${parts.every((p) => p.set === parts[0].set) ? `${years.join('+')}_${parts[0].set}` : parts.map((p) => `${p.year}_${p.set}`).join('+')}`;
  const useDifficult = opts.useDifficult ?? false;
  const hash = createHash('sha1').update(JSON.stringify({ v: VOC_CONVERT_VERSION, split, useDifficult, parts: parts.map((p) => [p.year, p.set]) }));
  const lists = parts.map((p) => {
    const s = statSync(p.listPath);
    hash.update(`\n${p.listPath}:${s.size}:${s.mtimeMs}`);
    const ids = parseVocImageSet(readFileSync(p.listPath, 'utf8'));
    const noXml: string[] = [];
    for (const id of ids) {
      const x = statSync(join(p.dir, 'Annotations', `${id}.xml`), { throwIfNoEntry: false });
      if (!x) { noXml.push(id); continue; }
      hash.update(`|${x.size}:${x.mtimeMs}`);
    }
    if (noXml.length) {
      throw new Error(`voc: ${p.listPath} lists ${noXml.length} of ${ids.length} images without ${join(p.dir, 'Annotations')}/<id>.xml ` +
        `(first: ${noXml.slice(0, 3).join(', ')})${p.year === '2012' && p.set === 'test' ? '; VOC2012 test annotations are not public, evaluate on val' : ''}\n${VOC_LAYOUT}`);
    }
    return { ...p, ids };
  });
  const key = hash.digest('hex').slice(0, 12);
  const cacheDir = resolve(opts.cacheDir ?? '.cache/voc');
  const annPath = join(cacheDir, `${name}_${key}.json`);
  const spec: DatasetSpec = { name, annPath, imagesDir: root };
  if (existsSync(annPath)) return spec;

  const issues = new IssueCounter(`voc: ${name}`);
  const classIndex = new Map(VOC_CLASSES.map((c, i) => [c, i]));
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  const idOwner = new Map<number, string>();
  let nextFallbackId = FALLBACK_ID_BASE;
  let nDifficult = 0;
  for (const p of lists) {
    const seen = new Set<string>();
    for (const vocName of p.ids) {
      const fileName = `VOC${p.year}/JPEGImages/${vocName}.jpg`;
      if (seen.has(vocName)) { issues.add('vocDuplicateImage', `${p.listPath}: '${vocName}' listed again: later entry skipped`); continue; }
      seen.add(vocName);
      const id = vocImageId(vocName) ?? nextFallbackId++;
      const owner = idOwner.get(id);
      if (owner !== undefined) throw new Error(`voc: images ${owner} and ${fileName} both map to image id ${id}`);
      idOwner.set(id, fileName);
      const xmlPath = join(p.dir, 'Annotations', `${vocName}.xml`);
      const a = parseVocXml(readFileSync(xmlPath, 'utf8'), xmlPath, { issues });
      images.push({ id, file_name: fileName, width: a.widthPx, height: a.heightPx, voc_year: p.year, voc_name: vocName });
      a.objects.forEach((o, k) => {
        const cls = classIndex.get(o.name.toLowerCase().trim());
        if (cls === undefined) { issues.add('vocUnknownClass', `${xmlPath}: object '${o.name}' is not one of the 20 VOC classes: dropped`); return; }
        const [x1, y1, x2, y2] = a.boxesXyxy.subarray(k * 4, k * 4 + 4);
        if (o.difficult) nDifficult++;
        annotations.push({
          id: annotations.length + 1, image_id: id, category_id: cls + 1,
          bbox: [x1, y1, x2 - x1, y2 - y1], area: (x2 - x1) * (y2 - y1),
          iscrowd: o.difficult && !useDifficult ? 1 : 0, difficult: o.difficult ? 1 : 0, truncated: o.truncated ? 1 : 0,
        });
      });
    }
  }
  const categories: CocoCategory[] = VOC_CLASSES.map((c, i) => ({ id: i + 1, name: c, supercategory: 'none' }));
  const dataset: CocoDataset = {
    info: { description: `Pascal VOC converted to COCO by data/voc-coco.ts v${VOC_CONVERT_VERSION}`, source: lists.map((p) => p.listPath), useDifficult },
    images, annotations, categories,
  };
  const log = opts.log === undefined ? (m: string) => console.warn(m) : opts.log;
  if (log) {
    const summary = formatIssueReport(issues.report);
    log(`voc: ${name}: ${images.length} images, ${annotations.length} objects (${nDifficult} difficult${useDifficult ? ', kept as targets' : ' -> iscrowd=1'}), ` +
      `${categories.length} classes${summary ? '\n' + summary : ''}`);
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${annPath}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(dataset));
  renameSync(tmp, annPath);
  return spec;
}

/**
 * A continuous 0-based COCO box [x, y, w, h] in VOC's 1-based inclusive pixel form, the form
 * voc_eval's +1 IoU expects: [x+1, y+1, x+w, y+h]. Inverts parseVocXml for GT; applied to
 * detections too, it makes the +1 IoU equal the continuous IoU (py-faster-rcnn writes dets + 1).
 */
export function vocBoxFromCocoBbox(bbox: readonly number[]): [number, number, number, number] {
  return [bbox[0] + 1, bbox[1] + 1, bbox[0] + bbox[2], bbox[1] + bbox[3]];
}

export interface VocClassGt {
  name: string;
  categoryId: number;
  /** Every image of the dataset (even without objects of the class, as voc_eval lists them). */
  gtByImage: Map<number, VocGtObject[]>;
}

/**
 * voc_eval's ground truth per category (category order) from a converted dataset: boxes in VOC
 * pixel form, `difficult` from the annotation's flag (iscrowd when the flag is absent), so it
 * does not depend on `useDifficult`. `imageIds` restricts it to the images actually evaluated.
 */
export function vocGroundTruth(source: DatasetSpec | CocoDataset | { dataset: CocoDataset }, opts: { imageIds?: Iterable<number> } = {}): VocClassGt[] {
  const ds: CocoDataset = 'annPath' in source ? parseJsonFile(source.annPath) as CocoDataset : 'images' in source ? source : source.dataset;
  if (!ds || !Array.isArray(ds.images) || !Array.isArray(ds.annotations) || !Array.isArray(ds.categories)) {
    throw new Error(`vocGroundTruth: ${'annPath' in source ? source.annPath : 'dataset'}: expected arrays 'images', 'annotations', 'categories'`);
  }
  const keep = opts.imageIds ? new Set(opts.imageIds) : null;
  const imageIds = ds.images.map((im) => im.id).filter((id) => !keep || keep.has(id));
  const cats = ds.categories.slice().sort((a, b) => a.id - b.id);
  const byCat = new Map<number, VocClassGt>();
  const out = cats.map((c) => {
    const g: VocClassGt = { name: c.name, categoryId: c.id, gtByImage: new Map(imageIds.map((id) => [id, [] as VocGtObject[]])) };
    byCat.set(c.id, g);
    return g;
  });
  for (const a of ds.annotations) {
    const list = byCat.get(a.category_id)?.gtByImage.get(a.image_id);
    if (!list) continue;
    list.push({ boxXyxy: vocBoxFromCocoBbox(a.bbox), difficult: a.difficult !== undefined ? a.difficult === 1 || a.difficult === true : a.iscrowd === 1 });
  }
  return out;
}

/**
 * vocEvalMap's input from COCO-format bbox results: detections grouped by category, boxes in VOC
 * pixel form. A result for an image or category the ground truth lacks is an error (voc_eval
 * would KeyError), named with its index.
 */
export function vocEvalInputs(gt: readonly VocClassGt[], results: readonly CocoResult[]): { name: string; gtByImage: Map<number, VocGtObject[]>; dets: VocDetection[] }[] {
  const byCat = new Map(gt.map((g) => [g.categoryId, [] as VocDetection[]]));
  results.forEach((r, i) => {
    const dets = byCat.get(r.category_id);
    if (!dets) throw new Error(`vocEvalInputs: result ${i} has category_id ${r.category_id}; ground-truth categories are ${gt.map((g) => g.categoryId).join(', ')}`);
    if (!gt[0].gtByImage.has(r.image_id)) throw new Error(`vocEvalInputs: result ${i} is for image ${r.image_id}, which is not in the ground truth`);
    if (!r.bbox) throw new Error(`vocEvalInputs: result ${i} (image ${r.image_id}) has no bbox`);
    dets.push({ imageId: r.image_id, score: r.score, boxXyxy: vocBoxFromCocoBbox(r.bbox) });
  });
  return gt.map((g) => ({ name: g.name, gtByImage: g.gtByImage, dets: byCat.get(g.categoryId)! }));
}
