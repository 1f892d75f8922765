// COCO evaluation reproducing pycocotools' COCOeval (cocoeval.py) exactly for bbox, segm and
// keypoints: _prepare, computeIoU/computeOks, evaluateImg; accumulate/summarize live in
// accumulate.ts. Plain data in, typed arrays inside.

import { writeFileSync } from 'node:fs';
import type { CocoAnnotation, CocoDataset, CocoImage, CocoResult } from '../coco-types.ts';
import { bbIou, rleIou, type Rle } from '../rle.ts';
import { accumulate, type Accumulated, perCategoryAP, summarize } from './accumulate.ts';
import { dtRecord, type EvalAnn, gtRecord, indexAnns, loadRes, selectAnns, type Warn } from './loadres.ts';
import { argsortDescStable } from './numeric.ts';
import { computeOks } from './oks.ts';
import { defaultParams, type EvalParams, type IouType } from './params.ts';

export { defaultParams, type EvalParams, type IouType } from './params.ts';
export { loadRes } from './loadres.ts';
export { accumulate, summarize, perCategoryAP, type Accumulated } from './accumulate.ts';

/** evaluateImg output for one (category, area range, image); null when no GT and no DT. */
export interface EvalImg {
  /** Detections kept (score order, at most maxDets[-1]). */
  D: number;
  dtScores: Float64Array;
  /** T x D: 1 where the matched GT id is nonzero (pycocotools' `dtm` truthiness; GT id 0 reads as unmatched). */
  dtMatched: Uint8Array;
  /** T x D ignore flags (matched to ignored GT, or unmatched and outside the area range). */
  dtIgnore: Uint8Array;
  /** T x D matched GT id (0 = none). */
  dtMatchIds: Float64Array;
  gtIgnore: Uint8Array;
  dtIds: number[];
  gtIds: number[];
}

export interface EvalState {
  params: EvalParams;
  /** Index (k*A + a)*I + i, the order of pycocotools' evalImgs. */
  evalImgs: (EvalImg | null)[];
}

interface Cell { gts: EvalAnn[]; dts: EvalAnn[]; ious: Float64Array | null }

/** Sorts dts by score (stable, descending) and truncates to maxDet, as computeIoU and evaluateImg do. */
function sortDts(dts: EvalAnn[], maxDet: number): EvalAnn[] {
  const scores = dts.map((d) => d.score);
  const inds = argsortDescStable(scores);
  return inds.slice(0, maxDet).map((i) => dts[i]);
}

function computeIoU(cell: Cell, p: EvalParams): Float64Array | null {
  const { gts } = cell;
  const dts = cell.dts; // already score-sorted and truncated
  if (p.iouType === 'keypoints') {
    if (gts.length === 0 || dts.length === 0) return null;
    return computeOks(dts, gts, p.kptOksSigmas);
  }
  if (gts.length === 0 || dts.length === 0) return null; // maskUtils.iou returns [] when m or n is 0
  const crowd = gts.map((g) => g.iscrowd);
  if (p.iouType === 'segm') return rleIou(dts.map((d) => d.rle as Rle), gts.map((g) => g.rle as Rle), crowd);
  return bbIou(dts.map((d) => d.bbox), gts.map((g) => g.bbox), crowd);
}

/** cocoeval.py evaluateImg for one cell and area range; dts already sorted/truncated to maxDet. */
export function evaluateImg(cell: Cell, aRng: [number, number], p: EvalParams): EvalImg | null {
  const { gts, dts, ious } = cell;
  if (gts.length === 0 && dts.length === 0) return null;
  const G = gts.length; const D = dts.length; const T = p.iouThrs.length;
  const gIgnoreRaw = gts.map((g) => (g.ignore || g.area < aRng[0] || g.area > aRng[1] ? 1 : 0));
  // Stable sort putting ignored GTs last.
  const gtind: number[] = [];
  for (let g = 0; g < G; g++) if (!gIgnoreRaw[g]) gtind.push(g);
  for (let g = 0; g < G; g++) if (gIgnoreRaw[g]) gtind.push(g);
  const gtIg = Uint8Array.from(gtind, (g) => gIgnoreRaw[g]);
  const crowd = Uint8Array.from(gtind, (g) => gts[g].iscrowd);
  const gtIdsSorted = gtind.map((g) => gts[g].id);
  const dtMatchIds = new Float64Array(T * D);
  const dtMatched = new Uint8Array(T * D);
  const dtIgnore = new Uint8Array(T * D);
  if (ious !== null) {
    const gtm = new Float64Array(G); // per threshold: matched dt id (0 = free)
    for (let t = 0; t < T; t++) {
      gtm.fill(0);
      const thr = Math.min(p.iouThrs[t], 1 - 1e-10);
      for (let d = 0; d < D; d++) {
        let best = thr; let m = -1;
        const row = d * G;
        for (let gi = 0; gi < G; gi++) {
          if (gtm[gi] > 0 && !crowd[gi]) continue;
          if (m > -1 && gtIg[m] === 0 && gtIg[gi] === 1) break;
          const v = ious[row + gtind[gi]];
          if (v < best) continue;
          best = v; m = gi;
        }
        if (m === -1) continue;
        dtIgnore[t * D + d] = gtIg[m];
        dtMatchIds[t * D + d] = gtIdsSorted[m];
        dtMatched[t * D + d] = gtIdsSorted[m] !== 0 ? 1 : 0;
        gtm[m] = dts[d].id;
      }
    }
  }
  for (let d = 0; d < D; d++) {
    const a = dts[d].area;
    if (!(a < aRng[0] || a > aRng[1])) continue;
    for (let t = 0; t < T; t++) if (!dtMatched[t * D + d]) dtIgnore[t * D + d] = 1;
  }
  return {
    D, dtScores: Float64Array.from(dts, (d) => d.score), dtMatched, dtIgnore, dtMatchIds, gtIgnore: gtIg,
    dtIds: dts.map((d) => d.id), gtIds: gtIdsSorted,
  };
}

export interface CocoEvalOptions {
  iouType: IouType;
  /** Overrides of the default params (imgIds/catIds default to the sorted GT ids). */
  params?: Partial<EvalParams>;
  /** Receives the 12/10 summary lines; default console.log. Pass () => {} to silence. */
  log?: (line: string) => void;
  warn?: Warn;
}

export interface CocoEvalResult {
  stats: number[];
  lines: string[];
  /** AP@[.5:.95], area all, last maxDet, per params.catIds entry; -1 where the category has no GT. */
  perCategoryAP: { catId: number; ap: number }[];
  accumulated: Accumulated;
  state: EvalState;
}

/** COCOeval.evaluate: prepare, IoU per (image, category), evaluateImg per (category, area, image). */
export function evaluate(gt: CocoDataset, results: readonly CocoResult[], iouType: IouType,
  paramOverrides: Partial<EvalParams> = {}, warn: Warn = (m) => console.warn(m)): EvalState {
  const images = new Map<number, CocoImage>(gt.images.map((im) => [im.id, im]));
  const p0 = defaultParams(iouType, [...images.keys()], gt.categories.map((c) => c.id));
  const p: EvalParams = { ...p0, ...paramOverrides };
  p.imgIds = [...new Set(p.imgIds)].sort((a, b) => a - b); // np.unique
  if (p.useCats) p.catIds = [...new Set(p.catIds)].sort((a, b) => a - b);
  p.maxDets = [...p.maxDets].sort((a, b) => a - b);
  const maxDet = p.maxDets[p.maxDets.length - 1];

  const gtIndex = indexAnns(gt.annotations);
  if (gtIndex.annsById.size !== gt.annotations.length) {
    warn(`COCOeval: GT has ${gt.annotations.length - gtIndex.annsById.size} repeated annotation ids; like pycocotools, each id resolves to the last annotation carrying it`);
  }
  const dtLoaded = loadRes(new Set(images.keys()), results);
  const dtIndex = indexAnns(dtLoaded);
  const catSet = p.useCats ? new Set(p.catIds) : null;
  const gtAnns = selectAnns(gtIndex, p.imgIds, catSet);
  const dtAnns = selectAnns(dtIndex, p.imgIds, catSet);
  const gtCache = new Map<CocoAnnotation, EvalAnn>();
  const gtRecs = gtAnns.map((a) => {
    let r = gtCache.get(a);
    if (!r) { r = gtRecord(a, iouType, images); gtCache.set(a, r); }
    return r;
  });
  if (gtRecs.some((g) => g.id === 0)) {
    warn('COCOeval: a GT annotation has id 0; pycocotools stores matches as GT ids with 0 meaning "unmatched", so detections matched to it count as unmatched (reproduced here). Renumber GT ids from 1.');
  }
  const dtRecs = dtAnns.map((r) => dtRecord(r, iouType, images));

  // Group by (image, category); useCats=false concatenates categories in catIds order under -1.
  const catKeys = p.useCats ? p.catIds : [-1];
  const key = (img: number, cat: number): string => `${img}|${cat}`;
  const gtGroups = new Map<string, EvalAnn[]>(); const dtGroups = new Map<string, EvalAnn[]>();
  const push = (m: Map<string, EvalAnn[]>, k: string, a: EvalAnn): void => {
    const l = m.get(k); if (l) l.push(a); else m.set(k, [a]);
  };
  for (const g of gtRecs) push(gtGroups, key(g.imageId, g.catId), g);
  for (const d of dtRecs) push(dtGroups, key(d.imageId, d.catId), d);
  const groupOf = (m: Map<string, EvalAnn[]>, img: number, cat: number): EvalAnn[] => {
    if (p.useCats) return m.get(key(img, cat)) ?? [];
    return p.catIds.flatMap((c) => m.get(key(img, c)) ?? []);
  };

  const I = p.imgIds.length; const A = p.areaRng.length; const K = catKeys.length;
  const evalImgs = new Array<EvalImg | null>(K * A * I).fill(null);
  for (let i = 0; i < I; i++) {
    for (let k = 0; k < K; k++) {
      const gts = groupOf(gtGroups, p.imgIds[i], catKeys[k]);
      const dtsAll = groupOf(dtGroups, p.imgIds[i], catKeys[k]);
      if (gts.length === 0 && dtsAll.length === 0) continue;
      const cell: Cell = { gts, dts: sortDts(dtsAll, maxDet), ious: null };
      cell.ious = computeIoU(cell, p);
      for (let a = 0; a < A; a++) evalImgs[(k * A + a) * I + i] = evaluateImg(cell, p.areaRng[a], p);
    }
  }
  return { params: p, evalImgs };
}

/** evaluate + accumulate + summarize; prints pycocotools' summary lines through `log`. */
export function cocoEvaluate(gt: CocoDataset, results: readonly CocoResult[], opts: CocoEvalOptions): CocoEvalResult {
  const state = evaluate(gt, results, opts.iouType, opts.params ?? {}, opts.warn);
  const accumulated = accumulate(state);
  const { stats, lines } = summarize(accumulated, state.params);
  const log = opts.log ?? ((l: string) => console.log(l));
  for (const l of lines) log(l);
  const ap = perCategoryAP(accumulated, state.params);
  return { stats, lines, perCategoryAP: ap, accumulated, state };
}

/**
 * Writes a COCO results file. Segm results must carry compressed RLE; `dropBboxForSegm`
 * (detectron2's choice) removes bbox so mask AP uses the mask area for small/medium/large.
 */
export function writeCocoResults(path: string, results: readonly CocoResult[], opts: { dropBboxForSegm?: boolean } = {}): void {
  const out = results.map((r, i) => {
    if (r.segmentation && typeof r.segmentation.counts !== 'string') {
      throw new Error(`writeCocoResults: result ${i} segmentation counts must be a compressed string`);
    }
    if (opts.dropBboxForSegm && r.segmentation) { const { bbox: _drop, ...rest } = r; return rest; }
    return r;
  });
  writeFileSync(path, JSON.stringify(out));
}
