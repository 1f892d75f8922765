// One training/eval sample: decode -> check size against the JSON -> flip -> resize ->
// normalise, with the targets transformed the same way. Runs in loader workers or in-process.
import { decodeImage, flipTargets, resizedSize, scaleTargets, toPlanarResized, type InstanceTargets, type NormMode, type ResizeSpec } from './images.ts';

export interface SampleInput {
  recordIndex: number;
  imageId: number;
  filePath: string;
  /** Size the annotation JSON claims; checked against the decoded image. */
  heightPx: number;
  widthPx: number;
  targets: InstanceTargets;
  flip: boolean;
}

export interface SampleConfig {
  resize: ResizeSpec | null;
  norm: NormMode;
  honourExifOrientation: boolean;
  keypointFlipMap: readonly number[];
}

export interface ImageSizeInfo {
  origHeightPx: number;
  origWidthPx: number;
  /** Size after resize, before padding. */
  heightPx: number;
  widthPx: number;
  /** resized / original per axis. */
  scaleX: number;
  scaleY: number;
  flipped: boolean;
}

export interface PreparedSample {
  recordIndex: number;
  imageId: number;
  /** Planar [3, heightPx, widthPx], normalised. */
  image: Float32Array;
  size: ImageSizeInfo;
  /** In the resized (and flipped) frame; see InstanceMask for RLE's frame. */
  targets: InstanceTargets;
}

/** A decode-time problem with one image; the loader skips and counts it by `kind`. */
export class BadImageError extends Error {
  constructor(readonly kind: 'decodeFailed' | 'imageSizeMismatch', message: string) { super(message); }
}

export async function prepareSample(s: SampleInput, cfg: SampleConfig): Promise<PreparedSample> {
  let img;
  try {
    img = await decodeImage(s.filePath, { honourExifOrientation: cfg.honourExifOrientation });
  } catch (e) {
    throw new BadImageError('decodeFailed', `image ${s.imageId}: ${(e as Error).message}`);
  }
  if (img.heightPx !== s.heightPx || img.widthPx !== s.widthPx) {
    throw new BadImageError('imageSizeMismatch',
      `image ${s.imageId}: ${s.filePath} decodes to ${img.widthPx}x${img.heightPx} (WxH) but the annotation file says ${s.widthPx}x${s.heightPx}`);
  }
  const out = resizedSize(img.heightPx, img.widthPx, cfg.resize);
  const image = toPlanarResized(img, out.heightPx, out.widthPx, cfg.norm, s.flip);
  let t = s.targets;
  if (s.flip) t = flipTargets(t, img.widthPx, cfg.keypointFlipMap);
  t = scaleTargets(t, out.scaleX, out.scaleY);
  return {
    recordIndex: s.recordIndex, imageId: s.imageId, image, targets: t,
    size: { origHeightPx: img.heightPx, origWidthPx: img.widthPx, heightPx: out.heightPx, widthPx: out.widthPx, scaleX: out.scaleX, scaleY: out.scaleY, flipped: s.flip },
  };
}
