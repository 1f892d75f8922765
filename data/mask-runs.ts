// Minimal COCO RLE helpers the data pipeline needs on its own (encode the shapes generator's
// exact masks, flip RLE masks horizontally). Semantics follow pycocotools maskApi.c
// (reference/coco-format-and-eval.md §4.7): column-major runs starting with zeros, string
// counts with 5-bit groups and delta-against-two-back for i > 2. The full RLE toolkit
// (merge, iou, polygon rasterisation) lives in data/rle.ts / data/mask.ts.
import type { RleCompressed, RleUncompressed } from './coco-types.ts';

/** Run lengths of a column-major binary mask (index x*h + y), first run counts zeros. */
export function countsFromColumnMajor(maskCm: Uint8Array): number[] {
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let i = 0; i < maskCm.length; i++) {
    const v = maskCm[i] ? 1 : 0;
    if (v !== current) { counts.push(run); run = 0; current = v; }
    run++;
  }
  counts.push(run);
  return counts;
}

/** Same runs from a row-major mask (index y*w + x), as rendered by the shapes generator. */
export function countsFromRowMajor(maskRm: Uint8Array, heightPx: number, widthPx: number): number[] {
  const cm = new Uint8Array(heightPx * widthPx);
  for (let y = 0; y < heightPx; y++) {
    for (let x = 0; x < widthPx; x++) cm[x * heightPx + y] = maskRm[y * widthPx + x];
  }
  return countsFromColumnMajor(cm);
}

/** pycocotools rleToString. */
export function countsToString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** pycocotools rleFrString. Throws on characters outside the 48..111 alphabet. */
export function countsFromString(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`rle: counts string ends inside a number at char ${p}`);
      const code = s.charCodeAt(p);
      if (code < 48 || code > 111) throw new Error(`rle: counts char ${p} is code ${code}, outside 48..111`);
      const c = code - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

export function rleCounts(rle: RleCompressed | RleUncompressed): number[] {
  return typeof rle.counts === 'string' ? countsFromString(rle.counts) : rle.counts.slice();
}

/** Dense column-major mask from runs; throws if the runs do not cover exactly h*w pixels. */
export function decodeToColumnMajor(counts: readonly number[], heightPx: number, widthPx: number): Uint8Array {
  const n = heightPx * widthPx;
  const out = new Uint8Array(n);
  let p = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c < 0 || p + c > n) throw new Error(`rle: runs cover more than ${heightPx}x${widthPx}=${n} pixels (run ${i})`);
    if (i & 1) out.fill(1, p, p + c);
    p += c;
  }
  if (p !== n) throw new Error(`rle: runs cover ${p} pixels, size says ${heightPx}x${widthPx}=${n}`);
  return out;
}

export function rleArea(rle: RleCompressed | RleUncompressed): number {
  const counts = rleCounts(rle);
  let a = 0;
  for (let i = 1; i < counts.length; i += 2) a += counts[i];
  return a;
}

/** Horizontal flip (x -> w-1-x per pixel column): reverses the order of the column blocks. */
export function flipRleHorizontal(rle: RleCompressed | RleUncompressed): RleCompressed {
  const [h, w] = rle.size;
  const cm = decodeToColumnMajor(rleCounts(rle), h, w);
  const flipped = new Uint8Array(cm.length);
  for (let x = 0; x < w; x++) flipped.set(cm.subarray((w - 1 - x) * h, (w - x) * h), x * h);
  return { size: [h, w], counts: countsToString(countsFromColumnMajor(flipped)) };
}

/** pycocotools rleToBbox: [x, y, w, h] of the set pixels, or zeros for an empty mask. */
export function rleBbox(rle: RleCompressed | RleUncompressed): [number, number, number, number] {
  const [h, w] = rle.size;
  const cm = decodeToColumnMajor(rleCounts(rle), h, w);
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      if (!cm[x * h + y]) continue;
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}
