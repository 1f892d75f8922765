// Mask API entry point: pycocotools.mask semantics (RLE, polygons, IoU) plus RoI mask targets.
// Implementation lives in rle.ts (runs, strings, IoU), polygon.ts (rasterisation, dispatch)
// and mask-targets.ts (per-RoI M×M targets).

export * from './rle.ts';
export * from './polygon.ts';
export * from './mask-targets.ts';
