// GT / result annotations turned into evaluation records with coco.py semantics
// (COCO.createIndex, loadRes, annToRLE, COCOeval._prepare).

import type { CocoAnnotation, CocoDataset, CocoImage, CocoResult } from '../coco-types.ts';
import { segmentationToRle } from '../polygon.ts';
import { type Rle, checkRleForImage, rleArea, rleFromCompressed, rleToBbox } from '../rle.ts';
import type { IouType } from './params.ts';

/** One GT or DT as the evaluator sees it. */
export interface EvalAnn {
  id: number;
  imageId: number;
  catId: number;
  area: number;
  iscrowd: number;
  /** GT only: iscrowd (overwriting any JSON `ignore`), | num_keypoints==0 for keypoints. */
  ignore: boolean;
  score: number;
  bbox: number[];
  rle?: Rle;
  keypoints?: ArrayLike<number>;
}

/** A detection after loadRes: the result plus the fields loadRes fills in. */
export interface LoadedResult {
  id: number; image_id: number; category_id: number; score: number; area: number; iscrowd: number;
  bbox?: number[]; segmentation?: CocoResult['segmentation'] | number[][]; keypoints?: number[];
  /** The decoded compressed RLE, kept so segm evaluation does not parse the string twice. */
  parsedRle?: Rle;
}

export type Warn = (msg: string) => void;

/**
 * coco.py loadRes. The branch is chosen by the FIRST result and applied to all: `bbox` present
 * -> area = w*h (even for segm/keypoint results), polygon from the box if no segmentation;
 * else `segmentation` -> area = RLE area, bbox = toBbox; else `keypoints` -> area and bbox from
 * the keypoints' tight box. Ids become 1..N in input order, iscrowd 0 (not set for keypoints,
 * which never read it). pycocotools crashes on an empty list; here it yields no detections.
 */
export function loadRes(gtImageIds: ReadonlySet<number>, results: readonly CocoResult[]): LoadedResult[] {
  results.forEach((r, i) => {
    if (!gtImageIds.has(r.image_id)) throw new Error(`loadRes: result ${i} has image_id ${r.image_id}, which is not in the GT images (results must correspond to the GT set)`);
  });
  if (results.length === 0) return [];
  const r0 = results[0] as Omit<CocoResult, 'bbox'> & { bbox?: number[] };
  const out: LoadedResult[] = [];
  if (r0.bbox !== undefined && !(Array.isArray(r0.bbox) && r0.bbox.length === 0)) {
    results.forEach((r, i) => {
      const bb = r.bbox;
      if (!bb || bb.length !== 4) throw new Error(`loadRes: result ${i} lacks a 4-number bbox but result 0 has one (bbox branch)`);
      const [x1, x2, y1, y2] = [bb[0], bb[0] + bb[2], bb[1], bb[1] + bb[3]];
      out.push({ ...r, bbox: [...bb], segmentation: r.segmentation ?? [[x1, y1, x1, y2, x2, y2, x2, y1]], area: bb[2] * bb[3], id: i + 1, iscrowd: 0 });
    });
  } else if (r0.segmentation !== undefined) {
    results.forEach((r, i) => {
      const seg = r.segmentation;
      if (!seg || typeof seg.counts !== 'string') throw new Error(`loadRes: result ${i} segmentation must be a compressed RLE ({size, counts: string}) as pycocotools requires`);
      const rle = rleFromCompressed(seg, `result ${i} segmentation`);
      out.push({ ...r, area: rleArea(rle), bbox: r.bbox ? [...r.bbox] : rleToBbox(rle), id: i + 1, iscrowd: 0, parsedRle: rle });
    });
  } else if (r0.keypoints !== undefined) {
    results.forEach((r, i) => {
      const s = r.keypoints;
      if (!s || s.length === 0) throw new Error(`loadRes: result ${i} has no keypoints but result 0 does (keypoints branch)`);
      let x0 = Infinity; let x1 = -Infinity; let y0 = Infinity; let y1 = -Infinity;
      for (let k = 0; k < s.length; k += 3) { x0 = Math.min(x0, s[k]); x1 = Math.max(x1, s[k]); }
      for (let k = 1; k < s.length; k += 3) { y0 = Math.min(y0, s[k]); y1 = Math.max(y1, s[k]); }
      out.push({ ...r, area: (x1 - x0) * (y1 - y0), id: i + 1, bbox: [x0, y0, x1 - x0, y1 - y0], iscrowd: 0 });
    });
  } else {
    throw new Error('loadRes: result 0 has none of bbox, segmentation, keypoints');
  }
  return out;
}

/** Index of a dataset the way COCO.createIndex builds it. */
export interface AnnIndex<A> {
  /** image id -> annotations in file order. */
  imgToAnns: Map<number, A[]>;
  /** annotation id -> annotation; a repeated id keeps the LAST one (dict overwrite). */
  annsById: Map<number, A>;
}

export function indexAnns<A extends { id: number; image_id: number }>(anns: readonly A[]): AnnIndex<A> {
  const imgToAnns = new Map<number, A[]>();
  const annsById = new Map<number, A>();
  for (const a of anns) {
    let l = imgToAnns.get(a.image_id);
    if (!l) { l = []; imgToAnns.set(a.image_id, l); }
    l.push(a);
    annsById.set(a.id, a);
  }
  return { imgToAnns, annsById };
}

/**
 * COCOeval._prepare's selection: getAnnIds(imgIds, catIds) walks imgIds in order and each
 * image's annotations in file order, then loadAnns maps every id through annsById — so a
 * duplicated id yields the last annotation with that id, possibly twice.
 */
export function selectAnns<A extends { id: number; image_id: number; category_id: number }>(
  index: AnnIndex<A>, imgIds: readonly number[], catIds: ReadonlySet<number> | null): A[] {
  const out: A[] = [];
  for (const imgId of imgIds) {
    const l = index.imgToAnns.get(imgId);
    if (!l) continue;
    for (const a of l) if (catIds === null || catIds.has(a.category_id)) out.push(index.annsById.get(a.id)!);
  }
  return out;
}

function imageSize(images: Map<number, CocoImage>, imageId: number, what: string): [number, number] {
  const img = images.get(imageId);
  if (!img) throw new Error(`${what}: image_id ${imageId} not in the GT images`);
  return [img.height, img.width];
}

/** GT annotation -> record (annToRLE for segm; ignore = iscrowd, | num_keypoints == 0). */
export function gtRecord(a: CocoAnnotation, iouType: IouType, images: Map<number, CocoImage>): EvalAnn {
  const what = `GT annotation id ${a.id}`;
  const rec: EvalAnn = {
    id: a.id, imageId: a.image_id, catId: a.category_id, area: a.area, iscrowd: a.iscrowd ? 1 : 0,
    ignore: !!a.iscrowd, score: 0, bbox: a.bbox,
  };
  if (iouType === 'segm') {
    if (a.segmentation === undefined) throw new Error(`${what}: no segmentation, required for segm evaluation`);
    const [h, w] = imageSize(images, a.image_id, what);
    rec.rle = segmentationToRle(a.segmentation, h, w, { what });
  } else if (iouType === 'keypoints') {
    if (!a.keypoints) throw new Error(`${what}: no keypoints, required for keypoints evaluation`);
    if (a.num_keypoints === undefined) throw new Error(`${what}: no num_keypoints (pycocotools reads it to set ignore)`);
    rec.keypoints = a.keypoints;
    rec.ignore = a.num_keypoints === 0 || rec.ignore;
  }
  if (iouType !== 'segm' && (!Array.isArray(a.bbox) || a.bbox.length !== 4)) throw new Error(`${what}: bbox must be [x,y,w,h]`);
  return rec;
}

/** Loaded result -> record. */
export function dtRecord(r: LoadedResult, iouType: IouType, images: Map<number, CocoImage>): EvalAnn {
  const what = `result ${r.id - 1}`;
  const rec: EvalAnn = {
    id: r.id, imageId: r.image_id, catId: r.category_id, area: r.area, iscrowd: 0, ignore: false,
    score: r.score, bbox: r.bbox ?? [],
  };
  if (!Number.isFinite(r.score)) throw new Error(`${what}: score ${r.score} is not a finite number`);
  if (iouType === 'segm') {
    if (r.segmentation === undefined) throw new Error(`${what}: no segmentation, required for segm evaluation`);
    const [h, w] = imageSize(images, r.image_id, what);
    // annToRLE: compressed RLE keeps its own size; a box-derived polygon is rasterised at image size.
    if (r.parsedRle) { checkRleForImage(r.parsedRle, h, w, what); rec.rle = r.parsedRle; } else rec.rle = segmentationToRle(r.segmentation, h, w, { what });
  } else if (iouType === 'keypoints') {
    if (!r.keypoints) throw new Error(`${what}: no keypoints, required for keypoints evaluation`);
    rec.keypoints = r.keypoints;
  } else if (rec.bbox.length !== 4) {
    throw new Error(`${what}: bbox must be [x,y,w,h] for bbox evaluation`);
  }
  return rec;
}

export type { CocoDataset };
