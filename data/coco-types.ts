// COCO JSON format (instances_*.json, person_keypoints_*.json, results files).
// Shared vocabulary of data/: loading, masks and evaluation all speak these types.

/** Compressed RLE as COCO stores it: counts is the 48..111-alphabet string. */
export interface RleCompressed { size: [number, number]; counts: string }
/** Uncompressed RLE: column-major run lengths starting with a run of zeros. */
export interface RleUncompressed { size: [number, number]; counts: number[] }
/** Polygons: each part a flat [x0,y0,x1,y1,...] list in pixel coordinates. */
export type Polygons = number[][];
export type Segmentation = Polygons | RleCompressed | RleUncompressed;

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
  [extra: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
  keypoints?: string[];
  skeleton?: [number, number][];
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** [x, y, w, h] in pixels, no +1 convention. */
  bbox: [number, number, number, number];
  area: number;
  iscrowd: 0 | 1;
  segmentation?: Segmentation;
  /** 17 × (x, y, v) with v: 0 unlabelled, 1 labelled not visible, 2 visible. */
  keypoints?: number[];
  num_keypoints?: number;
  [extra: string]: unknown;
}

export interface CocoDataset {
  info?: unknown;
  licenses?: unknown[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

/** One detection in COCO results format; segm results carry compressed RLE. */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: [number, number, number, number];
  segmentation?: RleCompressed;
  keypoints?: number[];
}
