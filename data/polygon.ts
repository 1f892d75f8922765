// Polygon / box rasterisation to RLE with pycocotools' exact rounding (maskApi.c rleFrPoly,
// rleFrBbox) and the frPyObjects / annToRLE dispatch of _mask.pyx and coco.py.

import type { Polygons, RleUncompressed, Segmentation } from './coco-types.ts';
import { type Rle, checkRleForImage, rleFromCoco, rleFromUncompressed, rleMerge } from './rle.ts';

/** Validates one flat [x0,y0,x1,y1,...] polygon; `what` names it in the message. */
export function checkPolygon(poly: ArrayLike<number>, what = 'polygon'): void {
  if (poly.length % 2 !== 0) {
    throw new Error(`${what}: polygon has an odd coordinate count (${poly.length}); expected x,y pairs`);
  }
  if (poly.length < 6) {
    throw new Error(`${what}: polygon has ${poly.length / 2} points; at least 3 are required`);
  }
  for (let i = 0; i < poly.length; i++) {
    if (!Number.isFinite(poly[i])) throw new Error(`${what}: coordinate #${i} is ${poly[i]}, not a finite number`);
  }
}

/** C `(int)` conversion: truncation toward zero, int32 wrap. */
const cInt = (v: number): number => Math.trunc(v) | 0;

/**
 * maskApi.c rleFrPoly: upsample ×5 with (int)(5x+.5), walk every edge densely, keep the
 * crossings of pixel-centre columns, and turn the sorted boundary indices into runs. A pixel
 * is on when its centre lies inside the polygon (even-odd rule at 1/5 px resolution).
 * No validation here (pycocotools accepts any k); use `checkPolygon` for input data.
 */
export function rleFrPoly(polyXy: ArrayLike<number>, h: number, w: number): Rle {
  const k = polyXy.length >> 1;
  const scale = 5;
  const x = new Int32Array(k + 1); const y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = cInt(scale * polyXy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = cInt(scale * polyXy[j * 2 + 1] + 0.5);
  y[k] = y[0];
  let m = 0;
  for (let j = 0; j < k; j++) m += Math.max(Math.abs(x[j] - x[j + 1]), Math.abs(y[j] - y[j + 1])) + 1;
  const u = new Int32Array(m); const v = new Int32Array(m);
  m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j]; let xe = x[j + 1]; let ys = y[j]; let ye = y[j + 1];
    const dx = Math.abs(xe - xs); const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) { let t = xs; xs = xe; xe = t; t = ys; ys = ye; ye = t; }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) { const t = flip ? dx - d : d; u[m] = t + xs; v[m] = cInt(ys + s * t + 0.5); m++; }
    } else {
      for (let d = 0; d <= dy; d++) { const t = flip ? dy - d : d; v[m] = t + ys; u[m] = cInt(xs + s * t + 0.5); m++; }
    }
  }
  // Boundary points where the upsampled x crosses a pixel-centre column, downsampled.
  const bounds: number[] = [];
  for (let j = 1; j < m; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0; else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    bounds.push((xd * h + yd) >>> 0);
  }
  bounds.push((h * w) >>> 0);
  const a = Uint32Array.from(bounds).sort();
  let p = 0;
  for (let j = 0; j < a.length; j++) { const t = a[j]; a[j] = t - p; p = t; }
  // Zero-length runs are folded into the previous run (maskApi.c).
  const b: number[] = [a[0]];
  let j = 1;
  while (j < a.length) {
    if (a[j] > 0) b.push(a[j++]);
    else { j++; if (j < a.length) b[b.length - 1] += a[j++]; }
  }
  return { h, w, counts: Uint32Array.from(b) };
}

/** maskApi.c rleFrBbox: the box [x,y,w,h] rasterised as the polygon (xs,ys),(xs,ye),(xe,ye),(xe,ys). */
export function rleFrBbox(boxXywh: ArrayLike<number>, h: number, w: number): Rle {
  const xs = boxXywh[0]; const xe = xs + boxXywh[2];
  const ys = boxXywh[1]; const ye = ys + boxXywh[3];
  return rleFrPoly([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

export type PyObject = number[][] | number[] | RleUncompressed | RleUncompressed[];

/**
 * _mask.pyx frPyObjects dispatch: a list whose first element has length 4 goes to frBbox, which
 * raises for python lists (so a 2-point polygon is an error, not a box); length > 4 is a list of
 * polygons, dicts are uncompressed RLE (keeping their own size); a flat list of 4 is one box,
 * of > 4 one polygon.
 */
export function frPyObjects(obj: PyObject, h: number, w: number): Rle | Rle[] {
  if (Array.isArray(obj)) {
    if (obj.length === 0) throw new Error('frPyObjects: empty list (pycocotools indexes pyobj[0] and fails)');
    const first = obj[0] as unknown;
    if (Array.isArray(first)) {
      const list = obj as number[][];
      if (first.length === 4) {
        // _mask.pyx sends this to frBbox, whose typed signature rejects python lists (TypeError).
        throw new Error('frPyObjects: first element has 4 numbers, so pycocotools dispatches the list to frBbox and fails '
          + '(a 2-point polygon is not a valid segmentation); use rleFrBbox for boxes');
      }
      if (first.length > 4) return list.map((p) => rleFrPoly(p, h, w));
      throw new Error(`frPyObjects: first element has ${first.length} numbers; boxes need 4, polygons > 4`);
    }
    if (typeof first === 'object' && first !== null) {
      return (obj as RleUncompressed[]).map((r, i) => rleFromUncompressed(r, `frPyObjects item ${i}`));
    }
    const flat = obj as number[];
    if (flat.length === 4) return rleFrBbox(flat, h, w);
    if (flat.length > 4) return rleFrPoly(flat, h, w);
    throw new Error(`frPyObjects: flat list of ${flat.length} numbers is neither a box (4) nor a polygon (> 4)`);
  }
  if (obj && typeof obj === 'object' && 'counts' in obj && 'size' in obj) return rleFromUncompressed(obj, 'frPyObjects');
  throw new Error('frPyObjects: input type is not supported');
}

function isPolygons(seg: Segmentation): seg is Polygons {
  return Array.isArray(seg);
}

/**
 * coco.py annToRLE: polygons -> frPyObjects at the image size then union-merge; uncompressed
 * RLE -> compressed with its own size; compressed RLE used as is. With `validate`, polygons
 * with < 3 points / odd counts and RLEs whose size or run total disagree with the image throw.
 */
export function segmentationToRle(seg: Segmentation, imageH: number, imageW: number,
  opts: { what?: string; validate?: boolean } = {}): Rle {
  const what = opts.what ?? 'segmentation';
  const validate = opts.validate ?? true;
  if (isPolygons(seg)) {
    if (validate) {
      if (seg.length === 0) throw new Error(`${what}: polygon list is empty`);
      seg.forEach((p, i) => checkPolygon(p, `${what} polygon ${i}`));
    }
    const parts = frPyObjects(seg, imageH, imageW) as Rle[];
    return rleMerge(parts, false);
  }
  const rle = rleFromCoco(seg, what);
  if (validate) checkRleForImage(rle, imageH, imageW, what);
  return rle;
}
