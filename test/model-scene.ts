// The tiny model configuration and synthetic 2-image scene shared by the model tests
// (model-train, model-gradcheck): a square (label 1, keypoints) and a disc (label 2) in a 64×64
// image, and a 60×50 image without annotations in the same batch.
import { shapesSmall, type ModelConfig } from '../model/config.ts';
import { gpuBatch, type HostTargets, type ImageSize } from '../model/transform.ts';

export function tinyConfig(mask: boolean, kp: boolean): ModelConfig {
  const c = shapesSmall(3);
  c.backbone = { ...c.backbone, baseWidth: 8, groups: 4 };
  c.fpn = { ...c.fpn, outChannels: 16 };
  c.rpn = { ...c.rpn, preNmsTopNTrain: 64, postNmsTopNTrain: 32, preNmsTopNTest: 64, postNmsTopNTest: 32, batchSizePerImage: 32 };
  c.box = { ...c.box, representation: 32, batchSizePerImage: 16, detectionsPerImage: 5, preNmsCandidates: 64 };
  c.mask = mask ? { ...c.mask!, convChannels: [8], predictorChannels: 8 } : null;
  c.keypoint = kp ? { ...c.keypoint!, convChannels: [8], numKeypoints: 3 } : null;
  c.maxGtPerImage = 3;
  // torchvision's poolers (the model gradcheck's step sizes and smoothness gate were calibrated on
  // this scene with them); the aligned poolers' backward is checked op by op in detect-roi*.test.ts
  c.box.aligned = false;
  if (c.mask) c.mask.aligned = false;
  if (c.keypoint) c.keypoint.aligned = false;
  return c;
}

/** Two 64×64 images: one with a square (label 1) and a disc (label 2), one with no annotations. */
export function scene(c: ModelConfig, shift = 0) {
  const H = 64, W = 64;
  const img = new Float32Array(2 * 3 * H * W);
  const sq = [8 + shift, 10, 30 + shift, 34];
  const disc = { cx: 46, cy: 44, r: 10 };
  const m1 = new Uint8Array(H * W), m2 = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const inSq = x >= sq[0] && x < sq[2] && y >= sq[1] && y < sq[3];
    const inDisc = (x + 0.5 - disc.cx) ** 2 + (y + 0.5 - disc.cy) ** 2 < disc.r ** 2;
    m1[y * W + x] = inSq ? 1 : 0; m2[y * W + x] = inDisc ? 1 : 0;
    for (let ch = 0; ch < 3; ch++) {
      img[ch * H * W + y * W + x] = inSq ? (ch === 0 ? 1.5 : -0.5) : inDisc ? (ch === 2 ? 1.5 : -0.5) : 0.1 * Math.sin(x * 0.7 + y * 0.3 + ch);
      img[3 * H * W + ch * H * W + y * W + x] = 0.1 * Math.cos(x * 0.5 + y * 0.9 + ch);
    }
  }
  const K = c.keypoint?.numKeypoints ?? 0;
  const t0: HostTargets = {
    boxesXyxy: Float32Array.from([...sq, disc.cx - disc.r, disc.cy - disc.r, disc.cx + disc.r, disc.cy + disc.r]),
    labels: Int32Array.from([1, 2]),
    masks: c.mask ? [m1, m2] : null,
    keypoints: K ? Float32Array.from([sq[0] + 2, sq[1] + 2, 2, sq[2] - 3, sq[1] + 4, 2, 20 + shift, 30, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]) : null,
  };
  const t1: HostTargets = { boxesXyxy: new Float32Array(0), labels: new Int32Array(0), masks: c.mask ? [] : null, keypoints: K ? new Float32Array(0) : null };
  const sizes: ImageSize[] = [{ heightPx: H, widthPx: W, origHeightPx: H, origWidthPx: W }, { heightPx: 60, widthPx: 50, origHeightPx: 120, origWidthPx: 100 }];
  return gpuBatch(img, 2, H, W, sizes, [t0, t1], c, [1, 2]);
}

