// Evaluation of a model on a split: batched inference (one readback per batch), COCO results,
// and data/eval's pycocotools-identical summaries for bbox / segm / keypoints.
import { createLoader } from '../data/loader.ts';
import { cocoEvaluate, type CocoEvalResult } from '../data/eval/cocoeval.ts';
import type { CocoResult } from '../data/coco-types.ts';
import type { MaskRCNN } from './mask-rcnn.ts';
import { predict, toCocoResults, type ImageDetections } from './postprocess.ts';
import { batchToGpu, disposeGpuBatch } from './transform.ts';
import type { ToolDataset } from './datasets.ts';
import { vocEvalInputs, vocGroundTruth } from '../data/voc-coco.ts';
import { vocEvalMap } from '../data/eval/voc.ts';

export interface EvalSummary {
  bbox: CocoEvalResult | null;
  segm: CocoEvalResult | null;
  keypoints: CocoEvalResult | null;
  results: { bbox: CocoResult[]; segm: CocoResult[]; keypoints: CocoResult[] };
  images: number;
  inferMs: number;
  droppedCandidates: number;
  /** Pascal VOC datasets: VOC07 11-point mAP over the 20 classes (the seed's number). */
  voc07Map: number | null;
}

export async function evaluateModel(model: MaskRCNN, ds: ToolDataset, o: { batchSize: number; numWorkers: number; maxImages?: number; log: (l: string) => void; onDetections?: (d: ImageDetections) => void }): Promise<EvalSummary> {
  const cfg = model.cfg;
  const loaded = o.maxImages ? { ...ds.loaded, evalIndices: ds.loaded.evalIndices.slice(0, o.maxImages) } : ds.loaded;
  const loader = createLoader(loaded, { batchSize: o.batchSize, subset: 'eval', numWorkers: o.numWorkers, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, log: null });
  const all = { bbox: [] as CocoResult[], segm: [] as CocoResult[], keypoints: [] as CocoResult[] };
  let images = 0, inferMs = 0, dropped = 0;
  try {
    for await (const batch of loader.epoch()) {
      const t0 = performance.now();
      const gb = batchToGpu(batch, cfg, false);
      const dets = await predict(model, gb);
      disposeGpuBatch(gb);
      inferMs += performance.now() - t0;
      images += dets.length;
      for (const d of dets) { dropped += d.droppedCandidates; o.onDetections?.(d); }
      const r = toCocoResults(dets, ds.loaded.labelToCatId, { keypointLabels: ds.keypointLabels });
      all.bbox.push(...r.bbox); all.segm.push(...r.segm); all.keypoints.push(...r.keypoints);
    }
  } finally {
    await loader.close();
  }
  if (dropped) o.log(`evaluate: ${dropped} candidate detections above the score threshold did not fit box.preNmsCandidates = ${cfg.box.preNmsCandidates}; raise it for exact torchvision postprocessing`);
  const ids = new Set(loaded.evalIndices.map((i) => loaded.records[i].imageId));
  const restrict = (gt: ToolDataset['gt']['bbox']) => o.maxImages ? { ...gt, images: gt.images.filter((im) => ids.has(im.id)), annotations: gt.annotations.filter((a) => ids.has(a.image_id)) } : gt;
  const run = (kind: 'bbox' | 'segm' | 'keypoints', gt: ToolDataset['gt']['bbox'] | null, res: CocoResult[]): CocoEvalResult | null => {
    if (!gt) return null;
    o.log(`--- ${kind} (${res.length} results on ${images} images) ---`);
    return cocoEvaluate(restrict(gt), res, { iouType: kind, log: o.log, warn: () => {} });
  };
  let voc07Map: number | null = null;
  if (ds.loaded.spec.name.startsWith('voc_')) {
    const per = vocEvalMap(vocEvalInputs(vocGroundTruth(ds.loaded.dataset, { imageIds: ids }), all.bbox), { use07Metric: true });
    voc07Map = per.mAP;
    o.log(`VOC07 11-point mAP = ${per.mAP.toFixed(4)} (${per.aps.map((a) => `${a.name} ${a.ap.toFixed(3)}`).join(', ')})`);
  }
  return {
    voc07Map,
    bbox: run('bbox', ds.gt.bbox, all.bbox),
    segm: cfg.mask ? run('segm', ds.gt.segm, all.segm) : null,
    keypoints: cfg.keypoint ? run('keypoints', ds.gt.keypoints, all.keypoints) : null,
    results: all, images, inferMs, droppedCandidates: dropped,
  };
}
