// Detections drawn on an image, Detectron-visualizer style: translucent per-instance masks with a
// solid contour, box outlines, "name 0.93" labels, keypoints with skeleton lines. Masks are
// blended here on the raw pixels; boxes, text and keypoints are an SVG that sharp composites.
import sharp from 'sharp';
import { checkDetections, type Detections } from './detections.ts';

export interface RgbImage {
  /** heightPx*widthPx*3, row-major RGB. */
  data: Uint8Array;
  widthPx: number;
  heightPx: number;
}

export interface DrawOptions {
  /** labelNames[label]; [0] is background (LoadedCoco.labelNames). Unknown labels print as '#label'. */
  labelNames: string[];
  /** Instances with score below are not drawn. Default 0.5 (the seed's demo.py). */
  scoreThresh?: number;
  /** 1-based keypoint index pairs (COCO category `skeleton`, data/shapes.ts COCO_SKELETON). */
  skeleton?: [number, number][];
  /** Keypoints with score at or below are not drawn. Default 0 (ground truth: v = 0 is unlabelled). */
  keypointScoreThresh?: number;
  /** Mask fill opacity; default 0.45. */
  maskAlpha?: number;
}

/** Instance colours: distinct hues, readable with white text on them. */
export const INSTANCE_COLORS: [number, number, number][] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [0, 160, 160], [188, 189, 34], [23, 190, 207], [120, 60, 200], [200, 130, 0],
];

const hex = (c: [number, number, number]): string => '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Blends `mask` into `out` (RGB) with `alpha`; contour pixels (a 4-neighbour outside the mask) get 0.9. */
function blendMask(out: Uint8Array, mask: Uint8Array, W: number, H: number, color: [number, number, number], alpha: number): void {
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!mask[i]) continue;
      const edge = x === 0 || y === 0 || x === W - 1 || y === H - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - W] || !mask[i + W];
      const a = edge ? 0.9 : alpha;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(out[i * 3 + c] * (1 - a) + color[c] * a);
    }
  }
}

/** PNG of `rgb` with the detections above `scoreThresh` drawn; larger boxes first so small ones stay visible. */
export async function drawDetections(rgb: RgbImage, dets: Detections, opts: DrawOptions): Promise<Buffer> {
  const W = rgb.widthPx, H = rgb.heightPx;
  if (!(Number.isInteger(W) && Number.isInteger(H) && W > 0 && H > 0)) throw new Error(`drawDetections: image size ${W}x${H} is not positive integers`);
  if (rgb.data.length !== W * H * 3) throw new Error(`drawDetections: image data has ${rgb.data.length} bytes, expected ${H}x${W}x3 = ${W * H * 3}`);
  const n = checkDetections(dets, W, H, 'drawDetections');
  const scoreThresh = opts.scoreThresh ?? 0.5;
  const kpThresh = opts.keypointScoreThresh ?? 0;
  const alpha = opts.maskAlpha ?? 0.45;
  const numKp = dets.keypoints && n > 0 ? dets.keypoints.length / (n * 3) : 0;
  if (opts.skeleton) {
    for (const [a, b] of opts.skeleton) {
      if (!(a >= 1 && b >= 1 && a <= numKp && b <= numKp) && numKp > 0) throw new Error(`drawDetections: skeleton pair [${a}, ${b}] outside 1..${numKp} (pairs are 1-based)`);
    }
  }
  const b = dets.boxesXyxy;
  const area = (i: number): number => Math.max(0, b[i * 4 + 2] - b[i * 4]) * Math.max(0, b[i * 4 + 3] - b[i * 4 + 1]);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    if (dets.scores[i] >= scoreThresh && [0, 1, 2, 3].every((k) => Number.isFinite(b[i * 4 + k]))) order.push(i);
  }
  order.sort((i, j) => area(j) - area(i) || i - j);

  const pixels = Uint8Array.from(rgb.data);
  const lineW = Math.max(2, Math.round(Math.min(W, H) / 250));
  const fontPx = Math.max(10, Math.round(Math.min(W, H) / 40));
  const svg: string[] = [];
  order.forEach((i, k) => {
    const color = INSTANCE_COLORS[k % INSTANCE_COLORS.length];
    if (dets.masks) blendMask(pixels, dets.masks[i], W, H, color, alpha);
    const [x1, y1, x2, y2] = [0, 1, 2, 3].map((c) => b[i * 4 + c]);
    svg.push(`<rect x="${x1}" y="${y1}" width="${Math.max(0, x2 - x1)}" height="${Math.max(0, y2 - y1)}" fill="none" stroke="${hex(color)}" stroke-width="${lineW}"/>`);
    if (numKp > 0) {
      const kp = dets.keypoints!;
      const base = i * numKp * 3;
      const shown = (j: number): boolean => kp[base + j * 3 + 2] > kpThresh && Number.isFinite(kp[base + j * 3]) && Number.isFinite(kp[base + j * 3 + 1]);
      for (const [p, q] of opts.skeleton ?? []) {
        if (!shown(p - 1) || !shown(q - 1)) continue;
        svg.push(`<line x1="${kp[base + (p - 1) * 3]}" y1="${kp[base + (p - 1) * 3 + 1]}" x2="${kp[base + (q - 1) * 3]}" y2="${kp[base + (q - 1) * 3 + 1]}" stroke="${hex(color)}" stroke-width="${lineW}" stroke-linecap="round"/>`);
      }
      for (let j = 0; j < numKp; j++) {
        if (shown(j)) svg.push(`<circle cx="${kp[base + j * 3]}" cy="${kp[base + j * 3 + 1]}" r="${lineW + 1.5}" fill="${hex(color)}" stroke="#ffffff" stroke-width="1"/>`);
      }
    }
  });
  // Labels last, so no box or skeleton covers them; above the box when there is room, else inside it.
  order.forEach((i, k) => {
    const color = INSTANCE_COLORS[k % INSTANCE_COLORS.length];
    const label = dets.labels[i];
    const name = opts.labelNames[label] ?? `#${label}`;
    const text = `${name} ${dets.scores[i].toFixed(2)}`;
    const tw = Math.ceil(text.length * fontPx * 0.6) + 6, th = fontPx + 4;
    const x1 = Math.min(Math.max(0, b[i * 4]), Math.max(0, W - tw));
    const y1 = b[i * 4 + 1];
    const ty = y1 - th >= 0 ? y1 - th : Math.max(0, Math.min(y1, H - th));
    svg.push(`<rect x="${x1}" y="${ty}" width="${tw}" height="${th}" fill="${hex(color)}" fill-opacity="0.85"/>`);
    svg.push(`<text x="${x1 + 3}" y="${ty + th - 4}" font-size="${fontPx}" fill="#ffffff">${esc(text)}</text>`);
  });

  const overlay = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif">${svg.join('')}</svg>`;
  const composed = await sharp(pixels, { raw: { width: W, height: H, channels: 3 } })
    .composite([{ input: Buffer.from(overlay), top: 0, left: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  // The composite comes back RGBA (opaque); the PNG is RGB like the input.
  return sharp(composed.data, { raw: { width: W, height: H, channels: composed.info.channels } }).removeAlpha().png().toBuffer();
}
