// Run-length encoded binary masks with pycocotools' exact semantics (common/maskApi.c).
// Masks are flattened column-major (index = x*h + y); counts alternate 0-runs and 1-runs,
// starting with a (possibly empty) 0-run.

import type { RleCompressed, RleUncompressed } from './coco-types.ts';

/** Decoded-counts RLE: `counts` are the run lengths (uint32, as maskApi.c stores them). */
export interface Rle { h: number; w: number; counts: Uint32Array }

const TWO32 = 4294967296;

/** maskApi.c rleEncode: column-major mask bytes (length h*w, nonzero = on) -> runs. */
export function rleEncodeColMajor(maskColMajor: Uint8Array, h: number, w: number): Rle {
  const a = h * w;
  if (maskColMajor.length !== a) {
    throw new Error(`rleEncodeColMajor: mask has ${maskColMajor.length} bytes, expected h*w = ${h}*${w} = ${a}`);
  }
  const cnts: number[] = [];
  let p = 0; let c = 0;
  for (let j = 0; j < a; j++) {
    const v = maskColMajor[j] ? 1 : 0;
    if (v !== p) { cnts.push(c); c = 0; p = v; }
    c++;
  }
  cnts.push(c);
  return { h, w, counts: Uint32Array.from(cnts) };
}

/** Row-major HxW mask (index = y*w + x, the usual image layout) -> RLE. */
export function rleEncodeRowMajor(maskRowMajor: Uint8Array, h: number, w: number): Rle {
  if (maskRowMajor.length !== h * w) {
    throw new Error(`rleEncodeRowMajor: mask has ${maskRowMajor.length} bytes, expected h*w = ${h}*${w} = ${h * w}`);
  }
  const col = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) col[x * h + y] = maskRowMajor[y * w + x] ? 1 : 0;
  return rleEncodeColMajor(col, h, w);
}

function checkRunsCoverImage(rle: Rle, op: string): void {
  let sum = 0;
  for (let i = 0; i < rle.counts.length; i++) sum += rle.counts[i];
  if (sum !== rle.h * rle.w) {
    throw new Error(`${op}: RLE counts sum to ${sum} but size [h=${rle.h}, w=${rle.w}] needs h*w = ${rle.h * rle.w}`);
  }
}

/**
 * maskApi.c rleDecode -> column-major bytes. pycocotools raises when runs overflow h*w and
 * leaves uninitialised memory when they fall short; both are rejected here.
 */
export function rleDecodeColMajor(rle: Rle): Uint8Array {
  checkRunsCoverImage(rle, 'rleDecode');
  const out = new Uint8Array(rle.h * rle.w);
  let pos = 0; let v = 0;
  for (let j = 0; j < rle.counts.length; j++) {
    const c = rle.counts[j];
    if (v) out.fill(1, pos, pos + c);
    pos += c; v ^= 1;
  }
  return out;
}

/** RLE -> row-major HxW bytes (index = y*w + x). */
export function rleDecodeRowMajor(rle: Rle): Uint8Array {
  checkRunsCoverImage(rle, 'rleDecodeRowMajor');
  const { h, w } = rle;
  const out = new Uint8Array(h * w);
  let pos = 0; let v = 0;
  for (let j = 0; j < rle.counts.length; j++) {
    const c = rle.counts[j];
    if (v) for (let i = pos; i < pos + c; i++) { const x = (i / h) | 0; out[(i - x * h) * w + x] = 1; }
    pos += c; v ^= 1;
  }
  return out;
}

/** maskApi.c rleArea: sum of the 1-runs (uint32 arithmetic). */
export function rleArea(rle: Rle): number {
  let a = 0;
  for (let j = 1; j < rle.counts.length; j += 2) a += rle.counts[j];
  return a % TWO32;
}

/**
 * maskApi.c rleToBbox (PyPI pycocotools >= 2.0.5 version: skips empty 1-runs; a 1-run that
 * spans columns widens y to the full height). Returns [x, y, w, h]; uint32 wrap-around of
 * `xe-xs+1` for masks whose only 1-runs are empty is reproduced.
 */
export function rleToBbox(rle: Rle): [number, number, number, number] {
  const { h, w } = rle;
  const m = Math.floor(rle.counts.length / 2) * 2;
  if (m === 0) return [0, 0, 0, 0];
  let xs = w; let ys = h; let xe = 0; let ye = 0; let cc = 0;
  for (let j = 0; j < m; j++) {
    const start = cc;
    cc += rle.counts[j];
    if (j % 2 === 0 || rle.counts[j] === 0) continue;
    const yStart = start % h; const xStart = (start - yStart) / h;
    const yEnd = (cc - 1) % h; const xEnd = (cc - 1 - yEnd) / h;
    xs = Math.min(xs, xStart); xe = Math.max(xe, xEnd);
    if (xStart < xEnd) { ys = 0; ye = h - 1; } else { ys = Math.min(ys, yStart); ye = Math.max(ye, yEnd); }
  }
  return [xs, ys, (xe - xs + 1) >>> 0, (ye - ys + 1) >>> 0];
}

/** maskApi.c rleMerge: union (intersect=false) or intersection of RLEs of one size. */
export function rleMerge(rles: readonly Rle[], intersect = false): Rle {
  const n = rles.length;
  if (n === 0) return { h: 0, w: 0, counts: new Uint32Array(0) };
  let { h, w } = rles[0];
  if (n === 1) return { h, w, counts: rles[0].counts.slice() };
  let cur: Uint32Array = rles[0].counts;
  for (let i = 1; i < n; i++) {
    const B = rles[i];
    if (B.h !== h || B.w !== w) {
      // maskApi.c: a size mismatch yields an empty 0x0 RLE rather than an error.
      h = 0; w = 0; cur = new Uint32Array(0); break;
    }
    const A = cur;
    const out: number[] = [];
    let ca = A[0]; let cb = B.counts[0];
    let v = 0; let va = 0; let vb = 0; let a = 1; let b = 1; let cc = 0; let ct = 1;
    while (ct > 0) {
      const c = Math.min(ca, cb); cc += c; ct = 0;
      ca -= c; if (!ca && a < A.length) { ca = A[a++]; va ^= 1; } ct += ca;
      cb -= c; if (!cb && b < B.counts.length) { cb = B.counts[b++]; vb ^= 1; } ct += cb;
      const vp = v; v = intersect ? (va & vb) : (va | vb);
      if (v !== vp || ct === 0) { out.push(cc); cc = 0; }
    }
    cur = Uint32Array.from(out);
  }
  return { h, w, counts: cur };
}

/**
 * maskApi.c bbIou for boxes [x,y,w,h] (no +1). Crowd GT: union = area(dt).
 * Returns D x G row-major (index d*G + g), pycocotools' `iou(dt, gt, iscrowd)` layout.
 */
export function bbIou(dtBoxesXywh: ArrayLike<number>[], gtBoxesXywh: ArrayLike<number>[], gtIsCrowd: ArrayLike<number>): Float64Array {
  const D = dtBoxesXywh.length; const G = gtBoxesXywh.length;
  if (gtIsCrowd.length !== G) throw new Error(`bbIou: iscrowd has ${gtIsCrowd.length} flags for ${G} GT boxes`);
  const o = new Float64Array(D * G);
  for (let g = 0; g < G; g++) {
    const Gb = gtBoxesXywh[g]; const ga = Gb[2] * Gb[3]; const crowd = !!gtIsCrowd[g];
    for (let d = 0; d < D; d++) {
      const Db = dtBoxesXywh[d]; const da = Db[2] * Db[3];
      const iw = Math.min(Db[2] + Db[0], Gb[2] + Gb[0]) - Math.max(Db[0], Gb[0]); if (iw <= 0) continue;
      const ih = Math.min(Db[3] + Db[1], Gb[3] + Gb[1]) - Math.max(Db[1], Gb[1]); if (ih <= 0) continue;
      const i = iw * ih; const u = crowd ? da : da + ga - i;
      o[d * G + g] = i / u;
    }
  }
  return o;
}

/** Intersection and union pixel counts of two same-size RLEs (maskApi.c rleIou inner loop). */
function rleInterUnion(A: Uint32Array, B: Uint32Array): [number, number] {
  let ca = A[0]; let cb = B[0]; let va = 0; let vb = 0; let a = 1; let b = 1;
  let inter = 0; let uni = 0; let ct = 1;
  while (ct > 0) {
    const c = Math.min(ca, cb);
    if (va || vb) { uni += c; if (va && vb) inter += c; }
    ct = 0;
    ca -= c; if (!ca && a < A.length) { ca = A[a++]; va ^= 1; } ct += ca;
    cb -= c; if (!cb && b < B.length) { cb = B[b++]; vb ^= 1; } ct += cb;
  }
  return [inter, uni];
}

/**
 * maskApi.c rleIou: box IoU of the RLE bboxes first, exact run intersection only where that is
 * > 0; differing h,w give -1; crowd GT: IoU = |dt ∩ gt| / |dt|. D x G row-major.
 */
export function rleIou(dts: readonly Rle[], gts: readonly Rle[], gtIsCrowd: ArrayLike<number>): Float64Array {
  const o = bbIou(dts.map(rleToBbox), gts.map(rleToBbox), gtIsCrowd);
  const G = gts.length;
  for (let d = 0; d < dts.length; d++) {
    for (let g = 0; g < G; g++) {
      if (!(o[d * G + g] > 0)) continue;
      const dt = dts[d]; const gt = gts[g];
      if (dt.h !== gt.h || dt.w !== gt.w) { o[d * G + g] = -1; continue; }
      const [inter, uni] = rleInterUnion(dt.counts, gt.counts);
      const u = inter === 0 ? 1 : (gtIsCrowd[g] ? rleArea(dt) : uni);
      o[d * G + g] = inter / u;
    }
  }
  return o;
}

/** maskApi.c rleToString: LEB128-like, 5 data bits per char in '0'..'o', counts delta-coded from the 4th on. */
export function rleToString(counts: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x = Math.floor(x / 32); // arithmetic shift on values that may exceed int32
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      parts.push(String.fromCharCode(c + 48));
    }
  }
  return parts.join('');
}

/** maskApi.c rleFrString, rejecting what the C code would silently mis-read. */
export function rleCountsFromString(s: string, what = 'RLE'): Uint32Array {
  const cnts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0; let k = 0; let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`rleFromString: ${what} counts string ends inside a value (continuation bit set on the last char, length ${s.length})`);
      const code = s.charCodeAt(p);
      if (code < 48 || code > 111) {
        throw new Error(`rleFromString: ${what} has char ${JSON.stringify(s[p])} (code ${code}) at ${p}; allowed range is 48..111 ('0'..'o')`);
      }
      const c = code - 48;
      if (k >= 7) throw new Error(`rleFromString: ${what} value at char ${p} needs more than 7 groups (> 35 bits)`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0; p++; k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k); // sign extension of the last group
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2];
    if (x < 0 || x >= TWO32) throw new Error(`rleFromString: ${what} count #${cnts.length} decodes to ${x}, outside uint32 [0, 2^32)`);
    cnts.push(x);
  }
  return Uint32Array.from(cnts);
}

export function rleToCompressed(rle: Rle): RleCompressed {
  return { size: [rle.h, rle.w], counts: rleToString(rle.counts) };
}

export function rleFromCompressed(obj: RleCompressed, what = 'RLE'): Rle {
  checkSizeField(obj.size, what);
  return { h: obj.size[0], w: obj.size[1], counts: rleCountsFromString(obj.counts, what) };
}

/** _mask.pyx frUncompressedRLE: counts list as uint32 with the object's own size. */
export function rleFromUncompressed(obj: RleUncompressed, what = 'RLE'): Rle {
  checkSizeField(obj.size, what);
  const c = obj.counts;
  for (let i = 0; i < c.length; i++) {
    if (!Number.isInteger(c[i]) || c[i] < 0 || c[i] >= TWO32) {
      throw new Error(`${what}: uncompressed count #${i} = ${c[i]} is not an integer in [0, 2^32)`);
    }
  }
  return { h: obj.size[0], w: obj.size[1], counts: Uint32Array.from(c) };
}

/** A COCO RLE object of either form ({size, counts: string} or {size, counts: number[]}) -> Rle. */
export function rleFromCoco(obj: RleCompressed | RleUncompressed, what = 'RLE'): Rle {
  return typeof obj.counts === 'string'
    ? rleFromCompressed(obj as RleCompressed, what)
    : rleFromUncompressed(obj as RleUncompressed, what);
}

/** Horizontal flip (pixel column x -> w-1-x): the column-major blocks of h pixels in reverse order. */
export function rleFlipHorizontal(rle: Rle): Rle {
  const { h, w } = rle;
  const col = rleDecodeColMajor(rle);
  const flipped = new Uint8Array(col.length);
  for (let x = 0; x < w; x++) flipped.set(col.subarray((w - 1 - x) * h, (w - x) * h), x * h);
  return rleEncodeColMajor(flipped, h, w);
}

function checkSizeField(size: unknown, what: string): void {
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`${what}: RLE size must be [height, width] non-negative integers, got ${JSON.stringify(size)}`);
  }
}

/**
 * Validates an RLE against its image: size must be [imageH, imageW] and the runs must cover
 * exactly h*w pixels. `what` names the item in the message (e.g. "annotation 17").
 */
export function checkRleForImage(rle: Rle, imageH: number, imageW: number, what = 'RLE'): void {
  if (rle.h !== imageH || rle.w !== imageW) {
    throw new Error(`${what}: RLE size [h=${rle.h}, w=${rle.w}] disagrees with image [h=${imageH}, w=${imageW}]`);
  }
  let sum = 0;
  for (let i = 0; i < rle.counts.length; i++) sum += rle.counts[i];
  if (sum !== imageH * imageW) {
    throw new Error(`${what}: RLE counts sum to ${sum}, image needs h*w = ${imageH}*${imageW} = ${imageH * imageW}`);
  }
}

/**
 * COCO (column-major) RLE of a bit-packed row-major mask: row y of the heightPx × widthPx mask
 * starts at word offsetWords + y·wordsPerRow and holds pixel x in bit x % 32 of its word x / 32
 * (the layout of engine pasteMasks). Equal to rleEncodeRowMajor of the unpacked mask.
 */
export function rleFromPackedRows(bits: Uint32Array, offsetWords: number, heightPx: number, widthPx: number, wordsPerRow: number): Rle {
  if (wordsPerRow * 32 < widthPx) throw new Error(`rleFromPackedRows: ${wordsPerRow} words per row hold ${wordsPerRow * 32} px < width ${widthPx}`);
  if (heightPx > 0 && offsetWords + (heightPx - 1) * wordsPerRow + Math.ceil(widthPx / 32) > bits.length) {
    throw new Error(`rleFromPackedRows: mask [h=${heightPx}, w=${widthPx}] at word ${offsetWords} (${wordsPerRow} words per row) runs past ${bits.length} words`);
  }
  const cnts: number[] = [];
  let p = 0; let c = 0;
  for (let x = 0; x < widthPx; x++) {
    const at = offsetWords + (x >>> 5); const bit = x & 31;
    for (let y = 0; y < heightPx; y++) {
      const v = (bits[at + y * wordsPerRow] >>> bit) & 1;
      if (v !== p) { cnts.push(c); c = 0; p = v; }
      c++;
    }
  }
  cnts.push(c);
  return { h: heightPx, w: widthPx, counts: Uint32Array.from(cnts) };
}
