// GeneralizedRCNNTransform's job at the model boundary: a loader batch (already resized,
// normalised and padded to a multiple of 32 by data/loader.ts) becomes GPU tensors, with the GT in
// fixed-capacity tensors (capacity cfg.maxGtPerImage) plus validity masks, so every later shape is
// static. GT masks are rasterised in the resized frame (host; one upload per batch).
import * as E from '../engine/index.ts';
import type { Batch } from '../data/loader.ts';
import type { InstanceMask } from '../data/images.ts';
import { rleFrPoly } from '../data/polygon.ts';
import { rleDecodeColMajor, rleDecodeRowMajor, rleFromCoco, rleMerge } from '../data/rle.ts';
import type { ModelConfig } from './config.ts';

type Tensor = E.Tensor;

/** Per-image targets on the host in the resized frame (what the loader or a test provides). */
export interface HostTargets {
  boxesXyxy: Float32Array; // [n*4]
  labels: Int32Array; // [n], 1..K
  /** n masks, each heightPx*widthPx (resized frame) row-major 0/1; null when the dataset has none. */
  masks: Uint8Array[] | null;
  keypoints: Float32Array | null; // [n*K*3]
}

export interface ImageSize { heightPx: number; widthPx: number; origHeightPx: number; origWidthPx: number }

export interface GpuTargets {
  boxes: Tensor; // [B, G, 4]; padding rows [0, 0, 1, 1]
  labels: Tensor; // i32 [B, G]; padding 0
  valid: Tensor; // f32 [B, G]
  /** f32 [Nm + 1, 1, Hp, Wp]: every instance's mask, then one all-zero mask for padding rows. */
  masks: Tensor | null;
  /** i32 [B*G]: row of `masks` for GT (b, g); padding → the zero mask. */
  maskIndex: Tensor | null;
  keypoints: Tensor | null; // [B, G, K, 3]; padding v = 0
  /** Host-known instance counts (from the loader, not read back). */
  counts: number[];
}

export interface GpuBatch {
  images: Tensor; // [B, 3, Hp, Wp]
  B: number; Hp: number; Wp: number;
  sizes: ImageSize[];
  imageIds: number[];
  targets: GpuTargets | null;
}

const PAD_BOX = [0, 0, 1, 1];

export function gpuBatch(images: Float32Array, B: number, Hp: number, Wp: number, sizes: ImageSize[], targets: HostTargets[] | null, cfg: ModelConfig, imageIds: number[] = []): GpuBatch {
  if (B < 1) throw new Error('model input: empty batch (0 images)');
  if (images.length !== B * 3 * Hp * Wp) throw new Error(`model input: images hold ${images.length} values, expected [${B}, 3, ${Hp}, ${Wp}] = ${B * 3 * Hp * Wp}`);
  if (sizes.length !== B) throw new Error(`model input: ${sizes.length} image sizes for a batch of ${B}`);
  if (Hp % 32 || Wp % 32) throw new Error(`model input: padded size ${Hp}x${Wp} must be a multiple of 32 (FPN strides up to 64 with the pool level)`);
  for (let i = 0; i < images.length; i++) {
    if (!Number.isFinite(images[i])) {
      const per = 3 * Hp * Wp;
      throw new Error(`model input: image ${Math.floor(i / per)} (id ${imageIds[Math.floor(i / per)] ?? '?'}) has a non-finite value (${images[i]}) at channel ${Math.floor((i % per) / (Hp * Wp))}`);
    }
  }
  sizes.forEach((s, i) => {
    if (s.heightPx > Hp || s.widthPx > Wp || s.heightPx < 1 || s.widthPx < 1) throw new Error(`model input: image ${i} size ${s.heightPx}x${s.widthPx} does not fit the padded batch ${Hp}x${Wp}`);
  });
  const t = targets ? gpuTargets(targets, B, Hp, Wp, sizes, cfg, imageIds) : null;
  return { images: E.fromArray(images, [B, 3, Hp, Wp]), B, Hp, Wp, sizes, imageIds, targets: t };
}

function gpuTargets(ts: HostTargets[], B: number, Hp: number, Wp: number, sizes: ImageSize[], cfg: ModelConfig, ids: number[]): GpuTargets {
  if (ts.length !== B) throw new Error(`model targets: ${ts.length} target sets for a batch of ${B}`);
  const G = cfg.maxGtPerImage;
  const K = cfg.keypoint?.numKeypoints ?? 0;
  const boxes = new Float32Array(B * G * 4);
  const labels = new Int32Array(B * G);
  const valid = new Float32Array(B * G);
  const kps = cfg.keypoint ? new Float32Array(B * G * K * 3) : null;
  const counts: number[] = [];
  const wantMasks = !!cfg.mask;
  const maskList: Uint8Array[] = [];
  const maskIndex = new Int32Array(B * G);
  ts.forEach((t, b) => {
    const n = t.labels.length;
    const where = `image ${b}${ids[b] !== undefined ? ` (id ${ids[b]})` : ''}`;
    if (n > G) throw new Error(`model targets: ${where} has ${n} GT instances, over the capacity maxGtPerImage = ${G}; raise maxGtPerImage in the model config`);
    if (t.boxesXyxy.length !== n * 4) throw new Error(`model targets: ${where}: boxes [${t.boxesXyxy.length / 4}, 4] vs labels [${n}]`);
    counts.push(n);
    for (let g = 0; g < G; g++) {
      const o = (b * G + g) * 4;
      if (g < n) {
        const [x1, y1, x2, y2] = t.boxesXyxy.subarray(g * 4, g * 4 + 4);
        if (!(x2 > x1 && y2 > y1) || ![x1, y1, x2, y2].every(Number.isFinite)) throw new Error(`model targets: ${where} box ${g} [${x1}, ${y1}, ${x2}, ${y2}] has zero, negative or non-finite size`);
        const lab = t.labels[g];
        if (!(lab >= 1 && lab < cfg.numClasses)) throw new Error(`model targets: ${where} label ${lab} of instance ${g} outside 1..${cfg.numClasses - 1}`);
        boxes.set([x1, y1, x2, y2], o);
        labels[b * G + g] = lab;
        valid[b * G + g] = 1;
      } else boxes.set(PAD_BOX, o);
    }
    if (kps) {
      if (t.keypoints && t.keypoints.length !== n * K * 3) throw new Error(`model targets: ${where}: keypoints hold ${t.keypoints.length} values, expected ${n}x${K}x3`);
      if (t.keypoints) kps.set(t.keypoints, b * G * K * 3);
    }
    if (wantMasks) {
      if (!t.masks || t.masks.length !== n) throw new Error(`model targets: ${where}: the model has a mask head but the targets carry ${t.masks?.length ?? 'no'} masks for ${n} instances`);
      for (let g = 0; g < G; g++) maskIndex[b * G + g] = -1;
      t.masks.forEach((m, g) => {
        if (m.length !== sizes[b].heightPx * sizes[b].widthPx) throw new Error(`model targets: ${where} mask ${g} has ${m.length} pixels, expected ${sizes[b].heightPx}x${sizes[b].widthPx}`);
        maskIndex[b * G + g] = maskList.length;
        maskList.push(m);
      });
    }
  });
  let masks: Tensor | null = null;
  let maskIdx: Tensor | null = null;
  if (wantMasks) {
    const Nm = maskList.length;
    const m = new Float32Array((Nm + 1) * Hp * Wp);
    let at = 0;
    ts.forEach((t, b) => {
      const { heightPx: h, widthPx: w } = sizes[b];
      for (const mk of t.masks!) {
        const base = at * Hp * Wp;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[base + y * Wp + x] = mk[y * w + x];
        at++;
      }
    });
    for (let i = 0; i < maskIndex.length; i++) if (maskIndex[i] < 0) maskIndex[i] = Nm;
    masks = E.fromArray(m, [Nm + 1, 1, Hp, Wp]);
    maskIdx = E.fromArray(maskIndex, [B * G], 'i32');
  }
  return {
    boxes: E.fromArray(boxes, [B, G, 4]), labels: E.fromArray(labels, [B, G], 'i32'), valid: E.fromArray(valid, [B, G]),
    masks, maskIndex: maskIdx, keypoints: kps ? E.fromArray(kps, [B, G, K, 3]) : null, counts,
  };
}

/** Rasterises one loader mask in the resized frame (polygons are already scaled; RLE is nearest-resized as torchvision's interpolate). */
export function rasteriseMask(m: InstanceMask, heightPx: number, widthPx: number): Uint8Array {
  if (m.kind === 'polygons') {
    const parts = m.polygons.map((p) => rleFrPoly(p, heightPx, widthPx));
    return rleDecodeRowMajor(parts.length === 1 ? parts[0] : rleMerge(parts));
  }
  const rle = rleFromCoco(m.rle);
  const col = rleDecodeColMajor(rle);
  const out = new Uint8Array(heightPx * widthPx);
  // F.interpolate(mode="nearest"): src = floor(dst · in / out)
  for (let y = 0; y < heightPx; y++) {
    const sy = Math.min(rle.h - 1, Math.floor((y * rle.h) / heightPx));
    for (let x = 0; x < widthPx; x++) {
      const sx = Math.min(rle.w - 1, Math.floor((x * rle.w) / widthPx));
      out[y * widthPx + x] = col[sx * rle.h + sy];
    }
  }
  return out;
}

/** A data/loader.ts batch → GpuBatch (masks rasterised when the model has a mask head). */
export function batchToGpu(batch: Batch, cfg: ModelConfig, withTargets = true): GpuBatch {
  const sizes: ImageSize[] = batch.sizes.map((s) => ({ heightPx: s.heightPx, widthPx: s.widthPx, origHeightPx: s.origHeightPx, origWidthPx: s.origWidthPx }));
  const targets: HostTargets[] | null = withTargets ? batch.targets.map((t, b) => ({
    boxesXyxy: t.boxesXyxy, labels: t.labels, keypoints: t.keypoints,
    masks: cfg.mask ? (t.masks ?? []).map((m) => rasteriseMask(m, sizes[b].heightPx, sizes[b].widthPx)) : null,
  })) : null;
  if (targets && cfg.keypoint) {
    const K = cfg.keypoint.numKeypoints;
    targets.forEach((t) => { if (!t.keypoints) t.keypoints = new Float32Array(t.labels.length * K * 3); });
  }
  return gpuBatch(batch.images, batch.batchSize, batch.heightPadPx, batch.widthPadPx, sizes, targets, cfg, batch.imageIds);
}

export function disposeGpuBatch(b: GpuBatch): void {
  b.images.dispose();
  const t = b.targets;
  if (!t) return;
  [t.boxes, t.labels, t.valid, t.masks, t.maskIndex, t.keypoints].forEach((x) => x?.dispose());
}
