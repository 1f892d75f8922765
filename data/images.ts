// Image decoding (sharp), resize (own bilinear, half-pixel centres), normalisation and the
// matching geometric transforms of boxes / polygons / RLE / keypoints.
//
// Why our own resize: sharp/libvips `resize` with kernel 'linear' is an antialiased reduce
// (shrink + filter over the whole footprint) when downscaling, so it does not equal
// torch.nn.functional.interpolate(mode='bilinear', align_corners=False) nor cv2 INTER_LINEAR,
// which both sample 4 neighbours at src = (dst + 0.5) * in/out - 0.5. We implement that
// mapping exactly (PyTorch's clamp of negative src to 0 included) on the decoded bytes.
import sharp from 'sharp';
import type { RleCompressed, RleUncompressed } from './coco-types.ts';
import { rleFlipHorizontal, rleFromCoco, rleToCompressed } from './rle.ts';

export interface DecodedImage { rgbHwc: Uint8Array; heightPx: number; widthPx: number }

export interface DecodeOptions {
  /** Apply the EXIF orientation tag. Off by default: COCO's tools and annotations ignore it. */
  honourExifOrientation?: boolean;
}

/** Decodes JPEG/PNG (any channel count) to 8-bit RGB HWC. Errors name the file. */
export async function decodeImage(filePath: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  try {
    // failOn 'warning' turns libjpeg's "premature end of data" on truncated files into an error
    // instead of a silently grey bottom half.
    let img = sharp(filePath, { failOn: 'warning' });
    if (opts.honourExifOrientation) img = img.autoOrient();
    const { data, info } = await img.toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const n = info.width * info.height;
    let rgb: Uint8Array;
    if (info.channels === 3) rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
    else {
      rgb = new Uint8Array(n * 3);
      const c = info.channels;
      for (let i = 0; i < n; i++) {
        const g = data[i * c];
        rgb[i * 3] = g; rgb[i * 3 + 1] = c >= 3 ? data[i * c + 1] : g; rgb[i * 3 + 2] = c >= 3 ? data[i * c + 2] : g;
      }
    }
    return { rgbHwc: rgb, heightPx: info.height, widthPx: info.width };
  } catch (e) {
    throw new Error(`images: decode ${filePath}: ${(e as Error).message}`);
  }
}

export interface ResizeSpec { shortSidePx: number; maxLongSidePx: number }

/** seed = mask-rcnn.pytorch defaults (600/1000; its `_ls` 800/1333); torchvision = 800/1333. */
export const RESIZE_PRESETS = {
  seed: { shortSidePx: 600, maxLongSidePx: 1000 },
  seedLarge: { shortSidePx: 800, maxLongSidePx: 1333 },
  torchvision: { shortSidePx: 800, maxLongSidePx: 1333 },
  shapes: { shortSidePx: 256, maxLongSidePx: 384 },
} as const satisfies Record<string, ResizeSpec>;

export interface ResizedSize { heightPx: number; widthPx: number; scaleY: number; scaleX: number }

/**
 * torchvision GeneralizedRCNNTransform: scale = min(S/short, M/long), out = floor(in*scale)
 * (interpolate with recompute_scale_factor=True). Per-axis scale = out/in, as torchvision
 * rescales boxes and keypoints by the size ratio.
 */
export function resizedSize(heightPx: number, widthPx: number, spec: ResizeSpec | null): ResizedSize {
  if (!spec) return { heightPx, widthPx, scaleY: 1, scaleX: 1 };
  const scale = Math.min(spec.shortSidePx / Math.min(heightPx, widthPx), spec.maxLongSidePx / Math.max(heightPx, widthPx));
  const h = Math.max(1, Math.floor(heightPx * scale));
  const w = Math.max(1, Math.floor(widthPx * scale));
  return { heightPx: h, widthPx: w, scaleY: h / heightPx, scaleX: w / widthPx };
}

export type NormMode = 'caffe' | 'torchvision' | 'rgb255';
/** caffe: BGR 0..255 minus mean (Detectron1 / the seed). torchvision: RGB/255, ImageNet mean/std. */
export const CAFFE_MEAN_BGR = [102.9801, 115.9465, 122.7717] as const;
export const IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD_RGB = [0.229, 0.224, 0.225] as const;

/** Per output plane: value = src[srcChannel] * mul + add. */
function normCoefficients(mode: NormMode): { srcChannel: number[]; mul: number[]; add: number[] } {
  if (mode === 'caffe') return { srcChannel: [2, 1, 0], mul: [1, 1, 1], add: CAFFE_MEAN_BGR.map((m) => -m) };
  if (mode === 'torchvision') {
    return {
      srcChannel: [0, 1, 2],
      mul: IMAGENET_STD_RGB.map((s) => 1 / (255 * s)),
      add: IMAGENET_MEAN_RGB.map((m, c) => -m / IMAGENET_STD_RGB[c]),
    };
  }
  return { srcChannel: [0, 1, 2], mul: [1, 1, 1], add: [0, 0, 0] };
}

/** Source index pairs and weights for half-pixel bilinear along one axis (PyTorch semantics). */
function axisTable(inPx: number, outPx: number): { i0: Int32Array; i1: Int32Array; w1: Float32Array } {
  const i0 = new Int32Array(outPx), i1 = new Int32Array(outPx), w1 = new Float32Array(outPx);
  const ratio = inPx / outPx;
  for (let o = 0; o < outPx; o++) {
    const src = Math.max(0, (o + 0.5) * ratio - 0.5);
    const a = Math.min(Math.floor(src), inPx - 1);
    i0[o] = a; i1[o] = Math.min(a + 1, inPx - 1); w1[o] = src - a;
  }
  return { i0, i1, w1 };
}

/**
 * Decoded RGB HWC bytes -> planar float32 [3, outH, outW]: bilinear (half-pixel, align_corners
 * = false) resize, optional horizontal flip, normalisation, fused in one pass. Flip is applied
 * after resampling, which equals flip-then-resize since the sampling grid is mirror-symmetric.
 */
export function toPlanarResized(img: DecodedImage, outHeightPx: number, outWidthPx: number, mode: NormMode, flip: boolean): Float32Array {
  const { rgbHwc, heightPx: H, widthPx: W } = img;
  const out = new Float32Array(3 * outHeightPx * outWidthPx);
  const ty = axisTable(H, outHeightPx), tx = axisTable(W, outWidthPx);
  const { srcChannel, mul, add } = normCoefficients(mode);
  const plane = outHeightPx * outWidthPx;
  for (let oy = 0; oy < outHeightPx; oy++) {
    const r0 = ty.i0[oy] * W * 3, r1 = ty.i1[oy] * W * 3, wy = ty.w1[oy], wy0 = 1 - wy;
    const rowBase = oy * outWidthPx;
    for (let ox = 0; ox < outWidthPx; ox++) {
      const c0 = tx.i0[ox] * 3, c1 = tx.i1[ox] * 3, wx = tx.w1[ox], wx0 = 1 - wx;
      const dst = rowBase + (flip ? outWidthPx - 1 - ox : ox);
      for (let c = 0; c < 3; c++) {
        const s = srcChannel[c];
        const top = rgbHwc[r0 + c0 + s] * wx0 + rgbHwc[r0 + c1 + s] * wx;
        const bot = rgbHwc[r1 + c0 + s] * wx0 + rgbHwc[r1 + c1 + s] * wx;
        out[c * plane + dst] = (top * wy0 + bot * wy) * mul[c] + add[c];
      }
    }
  }
  return out;
}

// ---- instance targets and their geometric transforms ---------------------------------------

/**
 * Mask of one instance, NOT rasterised (the model rasterises per RoI, detectron2's memory
 * lesson). Polygons live in the same frame as the boxes (resized, flipped). RLE stays at the
 * original resolution (flipped if the image was): resized-frame coordinates map into it by
 * x_rle = x / scaleX, y_rle = y / scaleY.
 */
export type InstanceMask =
  | { kind: 'polygons'; polygons: number[][] }
  | { kind: 'rle'; rle: RleCompressed | RleUncompressed; scaleX: number; scaleY: number };

export interface InstanceTargets {
  /** [n*4] x1,y1,x2,y2 in continuous pixel coordinates (no +1), torchvision convention. */
  boxesXyxy: Float32Array;
  /** [n] contiguous labels 1..K (0 = background is never a target). */
  labels: Int32Array;
  /** [n] source annotation ids (for debugging and export). */
  annIds: Int32Array;
  masks: InstanceMask[] | null;
  /** [n*K*3] (x, y, v) or null when the dataset has no keypoints. */
  keypoints: Float32Array | null;
}

/** COCO person keypoints flip permutation (left <-> right), reference §5 and torchvision. */
export const COCO_KEYPOINT_FLIP_MAP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15] as const;

/**
 * Horizontal flip in an image of width `widthPx`: x -> W - x for boxes, polygons and keypoints
 * (torchvision's convention, also for integer keypoints), pixel-column mirror for RLE, keypoint
 * left/right swap via `flipMap`, and (x, y, v) zeroed where v == 0 as torchvision does.
 */
export function flipTargets(t: InstanceTargets, widthPx: number, flipMap: readonly number[] = COCO_KEYPOINT_FLIP_MAP): InstanceTargets {
  const n = t.labels.length;
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    boxes[i * 4] = widthPx - t.boxesXyxy[i * 4 + 2];
    boxes[i * 4 + 1] = t.boxesXyxy[i * 4 + 1];
    boxes[i * 4 + 2] = widthPx - t.boxesXyxy[i * 4];
    boxes[i * 4 + 3] = t.boxesXyxy[i * 4 + 3];
  }
  const masks = t.masks && t.masks.map((m): InstanceMask => m.kind === 'polygons'
    ? { kind: 'polygons', polygons: m.polygons.map((p) => p.map((v, j) => (j & 1 ? v : widthPx - v))) }
    : { kind: 'rle', rle: rleToCompressed(rleFlipHorizontal(rleFromCoco(m.rle))), scaleX: m.scaleX, scaleY: m.scaleY });
  let keypoints: Float32Array | null = null;
  if (t.keypoints) {
    const k = n > 0 ? t.keypoints.length / (n * 3) : flipMap.length;
    if (k !== flipMap.length) throw new Error(`images: flip: ${k} keypoints per instance but flip map has ${flipMap.length}`);
    keypoints = new Float32Array(t.keypoints.length);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        const src = (i * k + flipMap[j]) * 3, dst = (i * k + j) * 3;
        const v = t.keypoints[src + 2];
        if (v === 0) continue;
        keypoints[dst] = widthPx - t.keypoints[src];
        keypoints[dst + 1] = t.keypoints[src + 1];
        keypoints[dst + 2] = v;
      }
    }
  }
  return { boxesXyxy: boxes, labels: t.labels, annIds: t.annIds, masks, keypoints };
}

/** Per-axis scaling of boxes, polygons and keypoint x,y (v kept); RLE records the factors. */
export function scaleTargets(t: InstanceTargets, scaleX: number, scaleY: number): InstanceTargets {
  const boxes = new Float32Array(t.boxesXyxy.length);
  for (let i = 0; i < boxes.length; i++) boxes[i] = t.boxesXyxy[i] * (i & 1 ? scaleY : scaleX);
  const masks = t.masks && t.masks.map((m): InstanceMask => m.kind === 'polygons'
    ? { kind: 'polygons', polygons: m.polygons.map((p) => p.map((v, j) => v * (j & 1 ? scaleY : scaleX))) }
    : { kind: 'rle', rle: m.rle, scaleX: m.scaleX * scaleX, scaleY: m.scaleY * scaleY });
  let keypoints: Float32Array | null = null;
  if (t.keypoints) {
    keypoints = new Float32Array(t.keypoints);
    for (let i = 0; i < keypoints.length; i += 3) { keypoints[i] *= scaleX; keypoints[i + 1] *= scaleY; }
  }
  return { boxesXyxy: boxes, labels: t.labels, annIds: t.annIds, masks, keypoints };
}
