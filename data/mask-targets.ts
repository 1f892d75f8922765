// Per-RoI M×M mask targets and full-image masks from GT segmentations (training-time helpers).
// Polygons follow detectron2 `rasterize_polygons_within_box`: translate into the box, scale to
// M×M, rasterise with pycocotools' rleFrPoly (so no resampling blur). RLE GT (crowd) follows
// detectron2 `BitMasks.crop_and_resize`: ROIAlign(aligned=True, sampling_ratio=0) on the full
// mask, then >= 0.5.

import type { Segmentation } from './coco-types.ts';
import { checkPolygon, rleFrPoly, segmentationToRle } from './polygon.ts';
import { type Rle, rleDecodeColMajor, rleDecodeRowMajor, rleMerge } from './rle.ts';

function checkBoxAndSize(boxXyxy: ArrayLike<number>, maskSize: number, op: string): void {
  if (boxXyxy.length !== 4 || !Array.from(boxXyxy).every(Number.isFinite)) {
    throw new Error(`${op}: box must be 4 finite numbers [x1,y1,x2,y2], got ${JSON.stringify(Array.from(boxXyxy))}`);
  }
  if (!Number.isInteger(maskSize) || maskSize < 1) throw new Error(`${op}: maskSize must be a positive integer, got ${maskSize}`);
}

/** Polygons (image coords) -> M×M row-major 0/1 mask covering `boxXyxy`. */
export function polygonsToMaskInBox(polygons: number[][], boxXyxy: ArrayLike<number>, maskSize: number, what = 'polygons'): Uint8Array {
  checkBoxAndSize(boxXyxy, maskSize, 'polygonsToMaskInBox');
  if (polygons.length === 0) throw new Error(`polygonsToMaskInBox: ${what} is an empty polygon list`);
  const [x1, y1, x2, y2] = [boxXyxy[0], boxXyxy[1], boxXyxy[2], boxXyxy[3]];
  // detectron2 guards degenerate boxes with max(side, 0.1).
  const ratioW = maskSize / Math.max(x2 - x1, 0.1);
  const ratioH = maskSize / Math.max(y2 - y1, 0.1);
  const parts: Rle[] = polygons.map((p, i) => {
    checkPolygon(p, `${what} polygon ${i}`);
    const q = new Float64Array(p.length);
    for (let j = 0; j < p.length; j += 2) { q[j] = (p[j] - x1) * ratioW; q[j + 1] = (p[j + 1] - y1) * ratioH; }
    return rleFrPoly(q, maskSize, maskSize);
  });
  return rleDecodeRowMajor(rleMerge(parts));
}

/** Full-image column-major mask -> M×M row-major via ROIAlign(aligned=True, sampling_ratio=0), >= 0.5. */
export function rleToMaskInBox(rle: Rle, boxXyxy: ArrayLike<number>, maskSize: number): Uint8Array {
  checkBoxAndSize(boxXyxy, maskSize, 'rleToMaskInBox');
  const { h: H, w: W } = rle;
  const col = rleDecodeColMajor(rle);
  const at = (yy: number, xx: number): number => col[xx * H + yy];
  const startX = boxXyxy[0] - 0.5; const startY = boxXyxy[1] - 0.5;
  const roiW = boxXyxy[2] - boxXyxy[0]; const roiH = boxXyxy[3] - boxXyxy[1];
  const binW = roiW / maskSize; const binH = roiH / maskSize;
  const gridH = Math.max(1, Math.ceil(roiH / maskSize)); const gridW = Math.max(1, Math.ceil(roiW / maskSize));
  const count = gridH * gridW;
  const out = new Uint8Array(maskSize * maskSize);
  const bilinear = (y: number, x: number): number => {
    if (y < -1 || y > H || x < -1 || x > W) return 0;
    if (y <= 0) y = 0; if (x <= 0) x = 0;
    let yLo = Math.floor(y); let xLo = Math.floor(x); let yHi: number; let xHi: number;
    if (yLo >= H - 1) { yHi = yLo = H - 1; y = yLo; } else yHi = yLo + 1;
    if (xLo >= W - 1) { xHi = xLo = W - 1; x = xLo; } else xHi = xLo + 1;
    const ly = y - yLo; const lx = x - xLo; const hy = 1 - ly; const hx = 1 - lx;
    return hy * hx * at(yLo, xLo) + hy * lx * at(yLo, xHi) + ly * hx * at(yHi, xLo) + ly * lx * at(yHi, xHi);
  };
  for (let ph = 0; ph < maskSize; ph++) {
    for (let pw = 0; pw < maskSize; pw++) {
      let acc = 0;
      for (let iy = 0; iy < gridH; iy++) {
        const y = startY + ph * binH + (iy + 0.5) * binH / gridH;
        for (let ix = 0; ix < gridW; ix++) acc += bilinear(y, startX + pw * binW + (ix + 0.5) * binW / gridW);
      }
      out[ph * maskSize + pw] = acc / count >= 0.5 ? 1 : 0;
    }
  }
  return out;
}

/** GT segmentation (polygons or RLE) -> M×M row-major target for the RoI `boxXyxy`. */
export function segmentationToMaskInBox(seg: Segmentation, imageH: number, imageW: number,
  boxXyxy: ArrayLike<number>, maskSize: number, what = 'segmentation'): Uint8Array {
  if (Array.isArray(seg)) return polygonsToMaskInBox(seg, boxXyxy, maskSize, what);
  return rleToMaskInBox(segmentationToRle(seg, imageH, imageW, { what }), boxXyxy, maskSize);
}

/** GT segmentation -> full-image row-major HxW 0/1 mask (coco.py annToMask, transposed to row-major). */
export function segmentationToFullMask(seg: Segmentation, imageH: number, imageW: number, what = 'segmentation'): Uint8Array {
  return rleDecodeRowMajor(segmentationToRle(seg, imageH, imageW, { what }));
}
