// Evaluator speed: N images × G GT × D detections, bbox and segm (and keypoints).
// Usage: npx tsx data/eval/bench-eval.ts [images=500] [gtPerImage=20] [dtPerImage=100] [outDir]
// With outDir, also writes gt/results JSON so test/fixtures/bench_pycocotools.py can time
// pycocotools on identical data.

import { mkdirSync, writeFileSync } from 'node:fs';
import type { CocoAnnotation, CocoDataset, CocoResult } from '../coco-types.ts';
import { rleFrPoly } from '../polygon.ts';
import { mulberry32 } from '../prng.ts';
import { rleToCompressed, rleMerge } from '../rle.ts';
import { cocoEvaluate, type IouType } from './cocoeval.ts';

function polygon(r: () => number, cx: number, cy: number, rad: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const ang = (2 * Math.PI * i) / n; const rr = rad * (0.5 + 0.5 * r());
    out.push(Math.round((cx + rr * Math.cos(ang)) * 100) / 100, Math.round((cy + rr * Math.sin(ang)) * 100) / 100);
  }
  return out;
}

const boxOf = (p: number[]): [number, number, number, number] => {
  let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
  for (let i = 0; i < p.length; i += 2) { x0 = Math.min(x0, p[i]); x1 = Math.max(x1, p[i]); y0 = Math.min(y0, p[i + 1]); y1 = Math.max(y1, p[i + 1]); }
  return [x0, y0, x1 - x0, y1 - y0];
};

export function makeBenchData(nImg: number, gPer: number, dPer: number, H = 480, W = 640, nCats = 5):
  { gt: CocoDataset; bboxRes: CocoResult[]; segmRes: CocoResult[] } {
  const r = mulberry32(42);
  const images = []; const anns: CocoAnnotation[] = []; const bboxRes: CocoResult[] = []; const segmRes: CocoResult[] = [];
  let aid = 1;
  for (let i = 0; i < nImg; i++) {
    const imgId = i + 1;
    images.push({ id: imgId, width: W, height: H, file_name: `${imgId}.jpg` });
    const polys: number[][] = [];
    for (let g = 0; g < gPer; g++) {
      const p = polygon(r, 20 + r() * (W - 40), 20 + r() * (H - 40), 5 + r() * 80, 8 + Math.floor(r() * 8));
      const bbox = boxOf(p); const cat = 1 + Math.floor(r() * nCats);
      polys.push(p);
      anns.push({ id: aid++, image_id: imgId, category_id: cat, bbox, area: bbox[2] * bbox[3] * 0.6, iscrowd: r() < 0.05 ? 1 : 0, segmentation: [p] });
    }
    for (let d = 0; d < dPer; d++) {
      const near = d < gPer * 2;
      const src = polys[Math.floor(r() * polys.length)];
      const p = near ? src.map((v) => Math.round((v + (r() - 0.5) * 8) * 100) / 100) : polygon(r, r() * W, r() * H, 5 + r() * 60, 8);
      const cat = near ? anns[anns.length - gPer + polys.indexOf(src)].category_id : 1 + Math.floor(r() * nCats);
      const score = Math.round(r() * 1000) / 1000;
      bboxRes.push({ image_id: imgId, category_id: cat, bbox: boxOf(p), score });
      segmRes.push({ image_id: imgId, category_id: cat, segmentation: rleToCompressed(rleMerge([rleFrPoly(p, H, W)])), score });
    }
  }
  return { gt: { images, annotations: anns, categories: Array.from({ length: nCats }, (_, k) => ({ id: k + 1, name: `c${k + 1}` })) }, bboxRes, segmRes };
}

function time(label: string, nImg: number, f: () => number[]): number[] {
  const t0 = performance.now();
  const stats = f();
  const s = (performance.now() - t0) / 1000;
  console.log(`${label}: ${s.toFixed(2)} s, ${(nImg / s).toFixed(0)} images/s; AP=${stats[0].toFixed(4)}`);
  return stats;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [nImg, gPer, dPer] = [500, 20, 100].map((d, i) => Number(process.argv[2 + i] ?? d));
  const outDir = process.argv[5];
  const { gt, bboxRes, segmRes } = makeBenchData(nImg, gPer, dPer);
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(`${outDir}/gt.json`, JSON.stringify(gt));
    writeFileSync(`${outDir}/bbox.json`, JSON.stringify(bboxRes));
    writeFileSync(`${outDir}/segm.json`, JSON.stringify(segmRes));
  }
  console.log(`${nImg} images x ${gPer} GT x ${dPer} DT, ${gt.categories.length} categories`);
  for (const [t, res] of [['bbox', bboxRes], ['segm', segmRes]] as [IouType, CocoResult[]][]) {
    const stats = time(t, nImg, () => cocoEvaluate(gt, res, { iouType: t, log: () => {} }).stats);
    if (outDir) writeFileSync(`${outDir}/${t}-stats-ts.json`, JSON.stringify(stats));
  }
}
