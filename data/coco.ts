// COCO-format dataset loading: instances_*.json and person_keypoints_*.json (2014 and 2017
// layouts, or any {ann, images} pair). Produces per-image training targets (crowd excluded,
// category ids -> contiguous labels 1..K) while keeping the raw JSON for evaluation.
// Bad input never crashes mid-epoch: it is either a clear error at load time (malformed JSON,
// wrong top-level shape) or a counted, summarised warning (see data/report.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from './coco-types.ts';
import { COCO_KEYPOINT_FLIP_MAP, type InstanceMask, type InstanceTargets } from './images.ts';
import { IssueCounter, formatIssueReport, type IssueReport } from './report.ts';
import { rleFromCoco } from './rle.ts';
import { ensureShapes } from './shapes.ts';

export interface DatasetSpec {
  name: string;
  annPath: string;
  imagesDir: string;
}

export type Split = 'train' | 'val';

/**
 * `coco2017` / `coco2014` (+ split) -> data/coco/annotations/instances_<split><year>.json and
 * data/coco/images/<split><year>; suffix `-keypoints` selects person_keypoints_*.json.
 * `shapes` / `shapes-keypoints` generate the embedded dataset on first use.
 * Anything else: pass `{ ann, images }` to `datasetFromFiles`.
 */
export async function resolveDataset(name: string, split: Split, opts: { dataRoot?: string; shapesCacheDir?: string } = {}): Promise<DatasetSpec> {
  const m = /^(coco2014|coco2017|shapes)(-keypoints)?$/.exec(name);
  if (!m) throw new Error(`coco: unknown dataset name '${name}' (known: coco2017, coco2014, shapes, each optionally with -keypoints; or use datasetFromFiles)`);
  const prefix = m[2] ? 'person_keypoints' : 'instances';
  if (m[1] === 'shapes') {
    const p = await ensureShapes({ cacheDir: opts.shapesCacheDir });
    return { name: `${name}_${split}`, annPath: join(p.annotationsDir, `${prefix}_${split}.json`), imagesDir: join(p.imagesDir, split) };
  }
  const year = m[1].slice(4);
  const root = resolve(opts.dataRoot ?? 'data/coco');
  return {
    name: `${name}_${split}`,
    annPath: join(root, 'annotations', `${prefix}_${split}${year}.json`),
    imagesDir: join(root, 'images', `${split}${year}`),
  };
}

export function datasetFromFiles(ann: string, images: string, name = ann): DatasetSpec {
  return { name, annPath: resolve(ann), imagesDir: resolve(images) };
}

export interface LoadOptions {
  /** Drop images without a usable non-crowd annotation from `trainIndices` (torchvision). Default true. */
  filterEmptyImages?: boolean;
  /** Keypoint datasets: images with fewer visible (v > 0) keypoints leave `trainIndices`. torchvision: 10. */
  minKeypointsPerImage?: number;
  /** stat() every image file at load time (missing -> counted, excluded). Default true. */
  checkImageFiles?: boolean;
  /** Where the once-per-load summary goes; null = silent (the report is still returned). */
  log?: ((message: string) => void) | null;
}

export interface ImageRecord {
  imageId: number;
  fileName: string;
  filePath: string;
  /** Size according to the JSON; the loader checks it against the decoded size. */
  heightPx: number;
  widthPx: number;
  /** Training targets in original-image coordinates (crowd excluded). */
  targets: InstanceTargets;
  /** Crowd regions (iscrowd = 1), kept for evaluation / ignore logic, never training targets. */
  crowdBoxesXyxy: Float32Array;
  numVisibleKeypoints: number;
  fileMissing: boolean;
}

export interface LoadedCoco {
  spec: DatasetSpec;
  /** The parsed JSON, untouched, for the evaluator. */
  dataset: CocoDataset;
  /** Sorted by COCO id; label i (1-based) is categories[i - 1]. */
  categories: CocoCategory[];
  catIdToLabel: Map<number, number>;
  /** labelToCatId[label] = COCO category id; [0] = 0 for background. For exporting results. */
  labelToCatId: number[];
  /** labelNames[0] = '__background__'. */
  labelNames: string[];
  /** Every image of the JSON (duplicates removed), JSON order. */
  records: ImageRecord[];
  /** Indices into records usable for training (file present, filters passed). */
  trainIndices: number[];
  /** Indices into records usable for evaluation (file present; no annotation filter). */
  evalIndices: number[];
  /** Keypoints per instance (0 for instances files). */
  numKeypoints: number;
  keypointFlipMap: readonly number[];
  report: IssueReport;
}

/** JSON.parse with the failing position turned into line/column of the named file. */
export function parseJsonFile(path: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new Error(`coco: cannot read ${path}: ${(e as Error).message}`); }
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pm = /position (\d+)/.exec(msg);
    const pos = pm ? Number(pm[1]) : /end of JSON input|Unterminated/i.test(msg) ? text.length : -1;
    let where = 'unknown position';
    if (pos >= 0) {
      let line = 1, lineStart = 0;
      for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) { line++; lineStart = i + 1; }
      where = `line ${line} column ${pos - lineStart + 1} (byte offset ${pos} of ${text.length}${pos >= text.length ? ': file truncated?' : ''})`;
    }
    throw new Error(`coco: ${path}: malformed JSON at ${where}: ${msg}`);
  }
}

function isFiniteNumberArray(a: unknown): a is number[] {
  return Array.isArray(a) && a.every((v) => typeof v === 'number' && Number.isFinite(v));
}

export function loadCoco(spec: DatasetSpec, opts: LoadOptions = {}): LoadedCoco {
  const json = parseJsonFile(spec.annPath) as Partial<CocoDataset> | null;
  const src = spec.annPath;
  if (!json || typeof json !== 'object' || !Array.isArray(json.images) || !Array.isArray(json.annotations) || !Array.isArray(json.categories)) {
    throw new Error(`coco: ${src}: expected an object with arrays 'images', 'annotations', 'categories'`);
  }
  const dataset = json as CocoDataset;
  const issues = new IssueCounter(`coco: ${src}`);

  const categories = dataset.categories.slice().sort((a, b) => a.id - b.id);
  const catIdToLabel = new Map<number, number>();
  categories.forEach((c, i) => {
    if (catIdToLabel.has(c.id)) throw new Error(`coco: ${src}: duplicate category id ${c.id} ('${c.name}')`);
    catIdToLabel.set(c.id, i + 1);
  });
  const kpCat = categories.find((c) => Array.isArray(c.keypoints) && c.keypoints.length > 0);
  const isKeypointFile = !!kpCat && dataset.annotations.some((a) => Array.isArray(a.keypoints));
  const numKeypoints = isKeypointFile ? kpCat!.keypoints!.length : 0;
  if (isKeypointFile && numKeypoints !== COCO_KEYPOINT_FLIP_MAP.length) {
    issues.add('nonCocoKeypointLayout', `category ${kpCat!.id} has ${numKeypoints} keypoints; flip map is identity (no left/right swap)`);
  }
  const keypointFlipMap = numKeypoints === COCO_KEYPOINT_FLIP_MAP.length ? COCO_KEYPOINT_FLIP_MAP : Array.from({ length: numKeypoints }, (_, i) => i);

  const checkFiles = opts.checkImageFiles ?? true;
  const imageIndex = new Map<number, number>();
  const images: CocoImage[] = [];
  const fileMissing: boolean[] = [];
  for (const img of dataset.images) {
    if (!img || typeof img.id !== 'number' || typeof img.file_name !== 'string' || !(img.width > 0) || !(img.height > 0)) {
      issues.add('badImageEntry', `image entry ${JSON.stringify(img).slice(0, 120)} lacks id/file_name/positive width,height: skipped`);
      continue;
    }
    if (imageIndex.has(img.id)) { issues.add('duplicateImageId', `image id ${img.id} ('${img.file_name}') appears again: later entry skipped`); continue; }
    imageIndex.set(img.id, images.length);
    images.push(img);
    const missing = checkFiles && !existsSync(join(spec.imagesDir, img.file_name));
    if (missing) issues.add('missingImageFile', `image ${img.id}: ${join(spec.imagesDir, img.file_name)} does not exist: skipped`);
    fileMissing.push(missing);
  }

  // Per image: accepted annotations (non-crowd), crowd boxes.
  const perImage: { anns: CocoAnnotation[]; boxes: number[]; masks: (InstanceMask | null)[]; crowd: number[] }[] =
    images.map(() => ({ anns: [], boxes: [], masks: [], crowd: [] }));
  const seenAnnIds = new Set<number>();
  let anyMasks = false;
  for (const ann of dataset.annotations) {
    const where = `annotation ${ann?.id} (image ${ann?.image_id})`;
    if (!ann || typeof ann !== 'object') { issues.add('badAnnotationEntry', `non-object annotation entry skipped`); continue; }
    if (seenAnnIds.has(ann.id)) issues.add('duplicateAnnotationId', `${where}: id used before (evaluation matches by id)`);
    seenAnnIds.add(ann.id);
    if (ann.id === 0) issues.add('annotationIdZero', `${where}: id 0 means 'unmatched' in pycocotools evaluation; renumber ids from 1`);
    const ii = imageIndex.get(ann.image_id);
    if (ii === undefined) { issues.add('annotationUnknownImage', `${where}: no image with that id: skipped`); continue; }
    const label = catIdToLabel.get(ann.category_id);
    if (label === undefined) { issues.add('unknownCategory', `${where}: category_id ${ann.category_id} not in categories: skipped`); continue; }
    const img = images[ii];
    const W = img.width, H = img.height;
    if (!isFiniteNumberArray(ann.bbox) || ann.bbox.length !== 4) { issues.add('badBbox', `${where}: bbox ${JSON.stringify(ann.bbox)} is not 4 finite numbers: skipped`); continue; }
    const [bx, by, bw, bh] = ann.bbox;
    if (bw <= 0 || bh <= 0) { issues.add('boxNonPositiveSize', `${where}: bbox w=${bw} h=${bh} (must be > 0): dropped`); continue; }
    let x1 = bx, y1 = by, x2 = bx + bw, y2 = by + bh;
    const cx1 = Math.min(Math.max(x1, 0), W), cy1 = Math.min(Math.max(y1, 0), H);
    const cx2 = Math.min(Math.max(x2, 0), W), cy2 = Math.min(Math.max(y2, 0), H);
    if (cx2 <= cx1 || cy2 <= cy1) { issues.add('boxOutsideImage', `${where}: bbox [${ann.bbox}] lies outside the ${W}x${H} image: dropped`); continue; }
    if (cx1 !== x1 || cy1 !== y1 || cx2 !== x2 || cy2 !== y2) {
      issues.add('boxClamped', `${where}: bbox [${ann.bbox}] exceeds the ${W}x${H} image: clamped`);
      x1 = cx1; y1 = cy1; x2 = cx2; y2 = cy2;
    }
    const seg = ann.segmentation;
    let mask: InstanceMask | null = null;
    let segProblem = false;
    if (Array.isArray(seg)) {
      anyMasks = true;
      const parts: number[][] = [];
      seg.forEach((part, pi) => {
        if (!isFiniteNumberArray(part)) { issues.add('polygonBadPart', `${where}: polygon part ${pi} is not a list of finite numbers: part dropped`); return; }
        if (part.length % 2 !== 0) { issues.add('polygonOddCoords', `${where}: polygon part ${pi} has ${part.length} coordinates (odd): part dropped`); return; }
        if (part.length < 6) { issues.add('polygonTooFewPoints', `${where}: polygon part ${pi} has ${part.length / 2} points (< 3): part dropped`); return; }
        parts.push(part);
      });
      if (parts.length > 0) mask = { kind: 'polygons', polygons: parts }; else segProblem = true;
    } else if (seg && typeof seg === 'object') {
      anyMasks = true;
      const size = (seg as { size?: unknown }).size;
      if (!Array.isArray(size) || size[0] !== H || size[1] !== W) {
        issues.add('rleSizeMismatch', `${where}: RLE size ${JSON.stringify(size)} != image [h, w] = [${H}, ${W}]: skipped`);
        continue;
      }
      try {
        const total = rleFromCoco(seg).counts.reduce((a, b) => a + b, 0);
        if (total !== H * W) throw new Error(`runs cover ${total} pixels, expected ${H * W}`);
        mask = { kind: 'rle', rle: seg, scaleX: 1, scaleY: 1 };
      } catch (e) { issues.add('rleCorrupt', `${where}: ${(e as Error).message}: skipped`); continue; }
    } else segProblem = seg !== undefined && seg !== null;
    if (ann.iscrowd) { perImage[ii].crowd.push(x1, y1, x2, y2); continue; }
    if (segProblem) { issues.add('noUsableSegmentation', `${where}: no usable polygon/RLE left: annotation dropped from training targets`); continue; }
    if (isKeypointFile) {
      const kp = ann.keypoints;
      if (!isFiniteNumberArray(kp) || kp.length !== numKeypoints * 3) {
        issues.add('badKeypoints', `${where}: keypoints has ${Array.isArray(kp) ? kp.length : 'no'} values, expected ${numKeypoints * 3}: dropped`);
        continue;
      }
    }
    perImage[ii].anns.push(ann);
    perImage[ii].boxes.push(x1, y1, x2, y2);
    perImage[ii].masks.push(mask);
  }

  const minKp = opts.minKeypointsPerImage ?? 10;
  const filterEmpty = opts.filterEmptyImages ?? true;
  const records: ImageRecord[] = [];
  const trainIndices: number[] = [];
  const evalIndices: number[] = [];
  let annotationsForTraining = 0;
  images.forEach((img, ii) => {
    const p = perImage[ii];
    const n = p.anns.length;
    const masksComplete = anyMasks && p.masks.every((m) => m !== null);
    if (anyMasks && !masksComplete) {
      // Mixed files (some annotations without segmentation): keep boxes, drop the mask list for this image.
      issues.add('imageWithoutMasks', `image ${img.id}: some annotations lack segmentation: masks omitted for the image`);
    }
    let keypoints: Float32Array | null = null;
    let visible = 0;
    if (isKeypointFile) {
      keypoints = new Float32Array(n * numKeypoints * 3);
      p.anns.forEach((a, i) => {
        keypoints!.set(a.keypoints!, i * numKeypoints * 3);
        for (let j = 2; j < a.keypoints!.length; j += 3) if (a.keypoints![j] > 0) visible++;
      });
    }
    const boxes = new Float32Array(p.boxes);
    const rec: ImageRecord = {
      imageId: img.id, fileName: img.file_name, filePath: join(spec.imagesDir, img.file_name),
      heightPx: img.height, widthPx: img.width,
      targets: {
        boxesXyxy: boxes,
        labels: Int32Array.from(p.anns, (a) => catIdToLabel.get(a.category_id)!),
        annIds: Int32Array.from(p.anns, (a) => a.id),
        masks: masksComplete ? (p.masks as InstanceMask[]) : null,
        keypoints,
      },
      crowdBoxesXyxy: new Float32Array(p.crowd), numVisibleKeypoints: visible, fileMissing: fileMissing[ii],
    };
    const idx = records.length;
    records.push(rec);
    if (rec.fileMissing) return;
    evalIndices.push(idx);
    // torchvision _has_valid_annotation: some box with both sides > 1 px; keypoint files also need min visible keypoints.
    let ok = true;
    if (filterEmpty) {
      let anyBox = false;
      for (let i = 0; i < n; i++) if (boxes[i * 4 + 2] - boxes[i * 4] > 1 && boxes[i * 4 + 3] - boxes[i * 4 + 1] > 1) anyBox = true;
      ok = anyBox && (!isKeypointFile || visible >= minKp);
    }
    if (ok) { trainIndices.push(idx); annotationsForTraining += n; }
  });

  const report = issues.report;
  const summary = formatIssueReport(report);
  const log = opts.log === undefined ? (m: string) => console.warn(m) : opts.log;
  if (log) {
    log(`coco: ${src}: ${records.length} images (${trainIndices.length} for training, ${evalIndices.length} for eval), ` +
      `${annotationsForTraining} training instances, ${categories.length} categories${summary ? '\n' + summary : ''}`);
  }
  return {
    spec, dataset, categories, catIdToLabel,
    labelToCatId: [0, ...categories.map((c) => c.id)],
    labelNames: ['__background__', ...categories.map((c) => c.name)],
    records, trainIndices, evalIndices, numKeypoints, keypointFlipMap, report,
  };
}
