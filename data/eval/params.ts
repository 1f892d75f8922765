// COCOeval Params (cocoeval.py Params.setDetParams / setKpParams) with numpy-exact thresholds.

import { linspace } from './numeric.ts';

export type IouType = 'bbox' | 'segm' | 'keypoints';

export interface EvalParams {
  iouType: IouType;
  /** Evaluated image ids; default: all GT image ids, sorted (np.unique). */
  imgIds: number[];
  /** Evaluated category ids; default: all GT category ids, sorted. */
  catIds: number[];
  /** np.linspace(.5, .95, 10) exactly. */
  iouThrs: Float64Array;
  /** np.linspace(0, 1, 101) exactly. */
  recThrs: Float64Array;
  /** Per-image detection caps, sorted ascending; the last bounds matching. */
  maxDets: number[];
  /** [lo, hi] area ranges, both ends inclusive. */
  areaRng: [number, number][];
  areaRngLbl: string[];
  /** false: categories are ignored as in proposal scoring (pycocotools useCats=0). */
  useCats: boolean;
  /** OKS per-keypoint sigmas (17 COCO person keypoints by default). */
  kptOksSigmas: Float64Array;
}

/** cocoeval.py kpt_oks_sigmas: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles. */
export const COCO_KPT_OKS_SIGMAS: Float64Array = Float64Array.from(
  [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89], (s) => s / 10.0);

export function defaultParams(iouType: IouType, gtImgIds: number[] = [], gtCatIds: number[] = []): EvalParams {
  const sortNum = (a: number[]): number[] => [...a].sort((x, y) => x - y);
  const base = {
    iouType,
    imgIds: sortNum(gtImgIds),
    catIds: sortNum(gtCatIds),
    iouThrs: linspace(0.5, 0.95, 10),
    recThrs: linspace(0.0, 1.0, 101),
    useCats: true,
    kptOksSigmas: COCO_KPT_OKS_SIGMAS,
  };
  if (iouType === 'keypoints') {
    return { ...base, maxDets: [20], areaRng: [[0, 1e10], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]], areaRngLbl: ['all', 'medium', 'large'] };
  }
  if (iouType !== 'bbox' && iouType !== 'segm') throw new Error(`COCOeval params: iouType ${JSON.stringify(iouType)} not supported (bbox, segm, keypoints)`);
  return {
    ...base,
    maxDets: [1, 10, 100],
    areaRng: [[0, 1e10], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
  };
}
