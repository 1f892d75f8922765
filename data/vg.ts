// Visual Genome objects (boxes only) as a COCO-format dataset, so it trains and evaluates
// through loadCoco like everything else. Inputs are VG's own files: image_data.json (image
// sizes and URLs) and objects.json (per image: objects with x, y, w, h and names), plus an
// optional vocabulary, one class per line with comma-separated synonyms, the first being the
// class name (the bottom-up-attention `objects_vocab.txt` format that the seed's vg.py reads;
// its vg_150-50-50 split keeps 150 object classes). An object's class is its first name,
// lower-cased and whitespace-trimmed as vg.py does; objects whose name is not in the
// vocabulary are dropped and counted. Field names of VG 1.0 (`id`, `name`) and of 1.2/1.4
// (`image_id`/`object_id`, `names`) are both accepted.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from './coco-types.ts';
import type { DatasetSpec, Split } from './coco.ts';
import { parseJsonFile } from './coco.ts';
import { IssueCounter, formatIssueReport, type IssueReport } from './report.ts';

/** Bump when the converted JSON changes for the same inputs (part of the cache key). */
export const VG_CONVERT_VERSION = 1;

export interface VgVocabulary {
  /** Class names, label order (category id = index + 1). */
  names: string[];
  /** Every accepted spelling (names and synonyms, normalised) -> index into names. */
  aliasToIndex: Map<string, number>;
}

export function normaliseVgName(name: string): string {
  return name.toLowerCase().trim().replace(/\s+/g, ' ');
}

/** One class per non-empty line; commas separate synonyms, the first is the class name. */
export function parseVgVocabulary(text: string, source = 'vocabulary'): VgVocabulary {
  const names: string[] = [];
  const aliasToIndex = new Map<string, number>();
  text.split(/\r?\n/).forEach((line, lineNo) => {
    const aliases = line.split(',').map(normaliseVgName).filter((a) => a.length > 0);
    if (aliases.length === 0) return;
    const idx = names.length;
    names.push(aliases[0]);
    for (const a of aliases) {
      const prev = aliasToIndex.get(a);
      if (prev !== undefined && prev !== idx) throw new Error(`vg: ${source}: line ${lineNo + 1}: '${a}' is already class '${names[prev]}' (line of class ${prev + 1})`);
      aliasToIndex.set(a, idx);
    }
  });
  if (names.length === 0) throw new Error(`vg: ${source}: no class names (expected one per line, synonyms comma-separated)`);
  return { names, aliasToIndex };
}

/** Image ids of a split list: per line the first integer of the first token's file name ("1.jpg", "VG_100K/1.jpg x.xml", "1"). */
export function parseImageIdList(text: string): Set<number> {
  const ids = new Set<number>();
  for (const line of text.split(/\r?\n/)) {
    const tok = line.trim().split(/\s+/)[0];
    if (!tok) continue;
    const m = /(\d+)/.exec(tok.slice(tok.lastIndexOf('/') + 1));
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

export interface VgConvertOptions {
  /** null/absent: every name that occurs in objects.json (all images, not only `imageIds`) is a class, most frequent first, then by name. */
  vocabulary?: VgVocabulary | null;
  /** Without a vocabulary: keep the N most frequent names (the seed's vg_150: 150). */
  maxCategories?: number;
  /** Keep only these images (a split). */
  imageIds?: ReadonlySet<number>;
  /** Drop an object whose class and box equal an earlier one's in the same image. Default true. */
  dropDuplicates?: boolean;
  issues?: IssueCounter;
}

export interface VgConverted {
  dataset: CocoDataset;
  report: IssueReport;
  /** Object counts per dropped (out-of-vocabulary) name. */
  droppedNames: Map<string, number>;
}

interface RawObject { name: string; vgId: number | null; xywh: unknown[]; where: string }

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Converts parsed objects.json + image_data.json into COCO (categories 1..K, annotation ids 1..N). */
export function vgToCoco(objectsJson: unknown, imageDataJson: unknown, opts: VgConvertOptions = {}, source = 'vg'): VgConverted {
  if (!Array.isArray(imageDataJson)) throw new Error(`vg: ${source}: image_data must be a JSON array of {image_id, width, height, url}`);
  if (!Array.isArray(objectsJson)) throw new Error(`vg: ${source}: objects must be a JSON array of {image_id, objects: [...]}`);
  const issues = opts.issues ?? new IssueCounter(`vg: ${source}`);
  const keep = opts.imageIds;

  const images: CocoImage[] = [];
  const imageById = new Map<number, CocoImage>();
  for (const e of imageDataJson) {
    const id = isObj(e) ? (e.image_id ?? e.id) : undefined;
    const W = isObj(e) ? e.width : undefined, H = isObj(e) ? e.height : undefined;
    if (keep && typeof id === 'number' && !keep.has(id)) continue;
    if (typeof id !== 'number' || !Number.isInteger(id) || typeof W !== 'number' || typeof H !== 'number' || !(W > 0 && H > 0)) {
      issues.add('vgBadImageEntry', `image_data entry ${JSON.stringify(e).slice(0, 120)} lacks an integer image_id and positive width/height: skipped`);
      continue;
    }
    if (imageById.has(id)) { issues.add('vgDuplicateImageId', `image ${id} listed again in image_data: later entry skipped`); continue; }
    // VG URLs end in VG_100K/<id>.jpg or VG_100K_2/<id>.jpg, the folders of the image zips.
    const url = typeof e.url === 'string' ? e.url : '';
    const m = /(VG_100K(?:_2)?\/[^/]+)$/.exec(url);
    const img: CocoImage = { id, file_name: m ? m[1] : `${id}.jpg`, width: W, height: H };
    if (typeof e.coco_id === 'number') img.coco_id = e.coco_id;
    images.push(img);
    imageById.set(id, img);
  }

  // Pass 1: objects of the kept images, and name counts over every image so that an open
  // vocabulary (no vocabulary file) is the same for every split.
  const perImage = new Map<number, RawObject[]>();
  const nameCounts = new Map<string, number>();
  for (const entry of objectsJson) {
    const id = isObj(entry) ? (entry.image_id ?? entry.id) : undefined;
    if (typeof id !== 'number') { issues.add('vgBadObjectsEntry', `objects entry ${JSON.stringify(entry).slice(0, 120)} has no image_id: skipped`); continue; }
    const objs = (entry as Record<string, unknown>).objects;
    const kept = !keep || keep.has(id);
    if (!Array.isArray(objs)) { if (kept) issues.add('vgBadObjectsEntry', `objects of image ${id}: 'objects' is not an array: skipped`); continue; }
    const known = imageById.has(id);
    if (kept && !known) issues.add('vgObjectsUnknownImage', `objects of image ${id}: no such image in image_data: skipped`);
    const list = kept && known ? (perImage.get(id) ?? []) : null;
    if (list) perImage.set(id, list);
    objs.forEach((o, k) => {
      const raw = isObj(o) ? (Array.isArray(o.names) ? o.names[0] : o.name) : undefined;
      const name = typeof raw === 'string' ? normaliseVgName(raw) : '';
      if (name) nameCounts.set(name, (nameCounts.get(name) ?? 0) + 1);
      if (!list) return;
      const where = `image ${id} object ${k}`;
      if (!isObj(o)) { issues.add('vgBadObject', `${where}: not an object: skipped`); return; }
      const vgId = typeof o.object_id === 'number' ? o.object_id : typeof o.id === 'number' ? o.id : null;
      if (!name) { issues.add('vgObjectWithoutName', `${where} (id ${vgId}): no name: skipped`); return; }
      list.push({ name, vgId, xywh: [o.x, o.y, o.w, o.h], where: `${where} (id ${vgId}, '${name}')` });
    });
  }

  let vocab = opts.vocabulary ?? null;
  if (!vocab) {
    const byFreq = [...nameCounts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([n]) => n);
    const names = opts.maxCategories !== undefined ? byFreq.slice(0, opts.maxCategories) : byFreq;
    vocab = { names, aliasToIndex: new Map(names.map((n, i) => [n, i])) };
  }
  const categories: CocoCategory[] = vocab.names.map((name, i) => ({ id: i + 1, name, supercategory: 'object' }));

  const annotations: CocoAnnotation[] = [];
  const droppedNames = new Map<string, number>();
  for (const img of images) {
    const seen = new Set<string>();
    for (const o of perImage.get(img.id) ?? []) {
      const cls = vocab.aliasToIndex.get(o.name);
      if (cls === undefined) {
        droppedNames.set(o.name, (droppedNames.get(o.name) ?? 0) + 1);
        issues.add('vgNameNotInVocabulary', `${o.where}: name not in the vocabulary: dropped`);
        continue;
      }
      const [x, y, w, h] = o.xywh;
      if (![x, y, w, h].every((v) => typeof v === 'number' && Number.isFinite(v))) {
        issues.add('vgBadBox', `${o.where}: x, y, w, h = ${JSON.stringify(o.xywh)} are not finite numbers: dropped`);
        continue;
      }
      const [bx, by, bw, bh] = [x, y, w, h] as number[];
      const x1 = Math.max(0, bx), y1 = Math.max(0, by), x2 = Math.min(img.width, bx + bw), y2 = Math.min(img.height, by + bh);
      if (x2 <= x1 || y2 <= y1) {
        issues.add('vgDegenerateBox', `${o.where}: box [${bx}, ${by}, ${bw}, ${bh}] has no area inside the ${img.width}x${img.height} image: dropped`);
        continue;
      }
      if (x1 !== bx || y1 !== by || x2 !== bx + bw || y2 !== by + bh) {
        issues.add('vgBoxClamped', `${o.where}: box [${bx}, ${by}, ${bw}, ${bh}] exceeds the ${img.width}x${img.height} image: clamped`);
      }
      const key = `${cls}:${x1},${y1},${x2},${y2}`;
      if ((opts.dropDuplicates ?? true) && seen.has(key)) {
        issues.add('vgDuplicateObject', `${o.where}: same class and box as an earlier object of the image: dropped`);
        continue;
      }
      seen.add(key);
      const ann: CocoAnnotation = {
        id: annotations.length + 1, image_id: img.id, category_id: cls + 1,
        bbox: [x1, y1, x2 - x1, y2 - y1], area: (x2 - x1) * (y2 - y1), iscrowd: 0,
      };
      if (o.vgId !== null) ann.vg_object_id = o.vgId;
      annotations.push(ann);
    }
  }
  const dataset: CocoDataset = {
    info: { description: `Visual Genome objects converted to COCO by data/vg.ts v${VG_CONVERT_VERSION}`, source },
    images, annotations, categories,
  };
  return { dataset, report: issues.report, droppedNames };
}

export interface VgPaths {
  objects: string;
  imageData: string;
  /** Optional vocabulary file (see parseVgVocabulary). */
  vocabulary?: string;
}

/** Reads and converts the files; the summary (counts, most-dropped names) goes to `log` once. */
export function loadVgFiles(paths: VgPaths, opts: Omit<VgConvertOptions, 'vocabulary' | 'issues'> & { log?: ((m: string) => void) | null } = {}): VgConverted {
  const vocabulary = paths.vocabulary ? parseVgVocabulary(readFileSync(paths.vocabulary, 'utf8'), paths.vocabulary) : null;
  const out = vgToCoco(parseJsonFile(paths.objects), parseJsonFile(paths.imageData), { ...opts, vocabulary }, paths.objects);
  const log = opts.log === undefined ? (m: string) => console.warn(m) : opts.log;
  if (log) {
    const d = out.dataset;
    const top = [...out.droppedNames].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([n, c]) => `'${n}' ${c}`).join(', ');
    const summary = formatIssueReport(out.report);
    log(`vg: ${paths.objects}: ${d.images.length} images, ${d.annotations.length} objects, ${d.categories.length} classes` +
      (top ? `; most-dropped names: ${top}` : '') + (summary ? '\n' + summary : ''));
  }
  return out;
}

export const VG_LAYOUT = `expected layout of a Visual Genome root:
  <root>/image_data.json          VG image metadata (image_id, width, height, url)
  <root>/objects.json             VG objects (per image: objects with x, y, w, h, names)
  <root>/objects_vocab.txt        optional: one class per line, synonyms comma-separated
  <root>/train.txt, <root>/val.txt optional split lists (one image per line: '1.jpg', 'VG_100K/1.jpg ...' or '1')
  <root>/images/VG_100K/<id>.jpg, <root>/images/VG_100K_2/<id>.jpg`;

export interface PrepareVgOptions {
  /** Default data/vg. */
  root?: string;
  /** Where converted JSON is cached; default .cache/vg (git-ignored). */
  cacheDir?: string;
  /** Without split lists: fraction of images (by a hash of the id) in val. Default 0.1. */
  valFraction?: number;
  maxCategories?: number;
  log?: ((m: string) => void) | null;
}

/** Deterministic split without lists: an integer hash of the image id against valFraction. */
export function vgSplitOf(imageId: number, valFraction: number): Split {
  let h = (imageId ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 2 ** 32 < valFraction ? 'val' : 'train';
}

/**
 * Converts (once; cached by input sizes, mtimes and options) the `split` of a VG root to COCO
 * JSON and returns the spec for loadCoco. Missing files: an error that prints the layout.
 */
export function prepareVg(split: Split, opts: PrepareVgOptions = {}): DatasetSpec {
  const root = resolve(opts.root ?? 'data/vg');
  const paths: VgPaths = { objects: join(root, 'objects.json'), imageData: join(root, 'image_data.json') };
  const missing = [paths.objects, paths.imageData].filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`vg: missing ${missing.join(', ')}\n${VG_LAYOUT}`);
  if (existsSync(join(root, 'objects_vocab.txt'))) paths.vocabulary = join(root, 'objects_vocab.txt');
  const listPath = join(root, `${split}.txt`);
  const hasList = existsSync(listPath);
  const valFraction = opts.valFraction ?? 0.1;
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`vg: valFraction ${valFraction} must be in (0, 1)`);
  const inputs = [paths.objects, paths.imageData, paths.vocabulary, hasList ? listPath : undefined].filter((p): p is string => !!p);
  const key = createHash('sha1').update(JSON.stringify({
    v: VG_CONVERT_VERSION, split, valFraction: hasList ? null : valFraction, maxCategories: opts.maxCategories ?? null,
    files: inputs.map((p) => { const s = statSync(p); return [p, s.size, s.mtimeMs]; }),
  })).digest('hex').slice(0, 12);
  const cacheDir = resolve(opts.cacheDir ?? '.cache/vg');
  const annPath = join(cacheDir, `vg_${split}_${key}.json`);
  const spec: DatasetSpec = { name: `vg_${split}`, annPath, imagesDir: join(root, 'images') };
  if (existsSync(annPath)) return spec;

  let imageIds: Set<number>;
  if (hasList) imageIds = parseImageIdList(readFileSync(listPath, 'utf8'));
  else {
    const data = parseJsonFile(paths.imageData);
    if (!Array.isArray(data)) throw new Error(`vg: ${paths.imageData}: expected a JSON array`);
    imageIds = new Set(data.map((e) => (isObj(e) ? e.image_id ?? e.id : undefined)).filter((id): id is number => typeof id === 'number' && vgSplitOf(id, valFraction) === split));
  }
  const { dataset } = loadVgFiles(paths, { imageIds, maxCategories: opts.maxCategories, log: opts.log });
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${annPath}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(dataset));
  renameSync(tmp, annPath);
  return spec;
}
