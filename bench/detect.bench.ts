// Detection kernels: RoI Align fwd/bwd (single map and 4 FPN levels), NMS, top-k, IoU matrix.
// Peers on the same adapter: tfjs-backend-webgpu cropAndResize on RoI Align's sample grid + avgPool
// (the same output; tfjs has no gradient) for RoI Align forward, nonMaxSuppressionAsync (reads boxes back, runs on the
// CPU) for NMS, tf.topk for top-k. Napkin bytes: RoI Align moves at least its output (plus
// the sampled input footprint, which caches); NMS/top-k rows are latency-bound.
import * as E from '../engine/index.ts';
import { boxIou, compact, matcher, multiScaleRoiAlign, nms, pasteMasks, roiAlign, sampler, topk } from '../engine/ops-detect.ts';
import { mulberry32 } from '../kernels/common.ts';
import type { BenchCase, Tf } from './harness.ts';
import type { BenchSize } from './run.ts';

const F = 4;
const IMG_H = 800, IMG_W = 1216;

function keepAll(ts: E.Tensor[]): () => void {
  ts.forEach((t) => t.keep());
  return () => ts.forEach((t) => t.dispose());
}

/** RPN-like proposals in an 800×1216 image: [R, 5] (batch 0), sides 16..400 px. */
function proposals(R: number, seed: number, minSide = 16, maxSide = 400): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(R * 5);
  for (let i = 0; i < R; i++) {
    const w = minSide * (maxSide / minSide) ** r(), h = minSide * (maxSide / minSide) ** r();
    const x = r() * (IMG_W - w), y = r() * (IMG_H - h);
    out.set([0, x, y, x + w, y + h], i * 5);
  }
  return out;
}

/**
 * Normalised cropAndResize boxes [R, 4] (y1, x1, y2, x2 over H−1, W−1) whose (sr·P)² grid is exactly
 * RoI Align's sample points (aligned=false, torchvision): sample k of n = sr·P along an axis sits
 * at start + (k + 0.5)·size/n with size clamped to >= 1; cropAndResize puts its first and last
 * samples on the box edges, so the box spans the first to the last sample.
 */
export function cropBoxesForRoiAlign(rois: ArrayLike<number>, o: { P: number; sr: number; spatialScale: number; H: number; W: number }): number[][] {
  const n = o.sr * o.P;
  const axis = (lo: number, hi: number, extent: number): [number, number] => {
    const start = lo * o.spatialScale;
    const size = Math.max((hi - lo) * o.spatialScale, 1);
    return [(start + 0.5 * size / n) / (extent - 1), (start + (n - 0.5) * size / n) / (extent - 1)];
  };
  return Array.from({ length: rois.length / 5 }, (_, i) => {
    const [y1, y2] = axis(rois[i * 5 + 2], rois[i * 5 + 4], o.H);
    const [x1, x2] = axis(rois[i * 5 + 1], rois[i * 5 + 3], o.W);
    return [y1, x1, y2, x2];
  });
}

/**
 * RoI Align's output computed by tfjs: cropAndResize at (sr·P)² on the sample grid, then a sr×sr
 * average pool (RoI Align averages the sr² samples of each bin). img: [N, H, W, C] → [R, P, P, C],
 * returned as RoI chunks: the crops of one chunk stay under `maxCropBytes` (Dawn's default
 * maxStorageBufferBindingSize, 128 MiB; 512 RoIs × 28² × 256 ch would be 411 MB and fail
 * validation). Equal to roiAlign (NCHW) wherever every sample is inside [0, H−1]×[0, W−1];
 * outside, tfjs returns 0 where torchvision clamps samples within one pixel of the border.
 */
export function tfjsRoiAlign(tf: Tf, img: ReturnType<Tf['zeros']>, boxes: ReturnType<Tf['zeros']>, boxInd: ReturnType<Tf['zeros']>, P: number, sr: number, maxCropBytes = 2 ** 27): ReturnType<Tf['zeros']>[] {
  const [R, C] = [boxes.shape[0], img.shape[3] ?? 1];
  const perRoi = (sr * P) ** 2 * C * 4;
  const chunk = Math.max(1, Math.floor(maxCropBytes / perRoi));
  const outs: ReturnType<Tf['zeros']>[] = [];
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const n = Math.min(chunk, R - r0);
    outs.push(tf.tidy(() => {
      const b = n === R ? boxes : tf.slice(boxes, [r0, 0], [n, 4]);
      const ind = n === R ? boxInd : tf.slice(boxInd, [r0], [n]);
      const crops = tf.image.cropAndResize(img as any, b as any, ind as any, [sr * P, sr * P]);
      return sr === 1 ? crops : tf.avgPool(crops as any, sr, sr, 'valid');
    }));
  }
  return outs;
}

/**
 * peer 'same': tfjs computes the same output (the same sample points, see tfjsRoiAlign);
 * 'onesample': one cropAndResize sample per bin whatever sr is (the comparison earlier sessions
 * reported; at sr 2 tfjs then does a quarter of the sampling work and returns a different output).
 */
function roiAlignCase(R: number, C: number, P: number, dir: 'fwd' | 'bwd', note: string, sr = 2, peer: 'same' | 'onesample' = 'same'): BenchCase {
  const H = 200, W = 304;
  const rois = proposals(R, 7);
  return {
    family: 'detect',
    name: `roiAlign ${dir === 'fwd' ? 'fwd' : 'fwd+bwd'} ${P}×${P}${sr === 2 ? '' : ` sr ${sr}`}${peer === 'same' ? '' : ' (tfjs: 1 sample/bin)'}`,
    shape: `${R} RoIs × ${C} ch from [1,${C},${H},${W}], sr ${sr}${note}`,
    bytes: (dir === 'fwd' ? 1 : 2) * R * C * P * P * F,
    setup: () => {
      const x = E.randn([1, C, H, W]);
      const r = E.fromArray(rois, [R, 5]);
      if (dir === 'fwd') return { record: () => void roiAlign(x, r, { outputSize: P, spatialScale: 0.25, samplingRatio: sr }), dispose: keepAll([x, r]) };
      x.requiresGrad = true;
      const g = E.randn([R, C, P, P]);
      return {
        // record() = forward + backward (zero fill + atomic scatter): subtract the fwd row for the backward alone
        record: () => { const y = roiAlign(x, r, { outputSize: P, spatialScale: 0.25, samplingRatio: sr }); E.backward(y, g); x.grad?.dispose(); x.grad = null; },
        dispose: keepAll([x, r, g]),
      };
    },
    tfjs: dir === 'fwd' ? (tf: Tf) => {
      const img = tf.randomNormal([1, H, W, C]);
      const boxes = peer === 'same'
        ? tf.tensor2d(cropBoxesForRoiAlign(rois, { P, sr, spatialScale: 0.25, H, W }), [R, 4])
        // one sample per bin, boxes scaled to the image corners: not RoI Align's sample points
        : tf.tensor2d(Array.from({ length: R }, (_, i) => [rois[i * 5 + 2] / IMG_H, rois[i * 5 + 1] / IMG_W, rois[i * 5 + 4] / IMG_H, rois[i * 5 + 3] / IMG_W]), [R, 4]);
      const ind = tf.zeros([R], 'int32');
      const run = peer === 'same'
        ? () => tfjsRoiAlign(tf, img, boxes, ind, P, sr)
        : () => tf.image.cropAndResize(img as any, boxes as any, ind as any, [P, P]);
      return { run, dispose: () => tf.dispose([img, boxes, ind]) };
    } : undefined,
  };
}

function multiLevelCase(R: number, C: number, note: string, dir: 'fwd' | 'bwd'): BenchCase {
  const sizes = [[200, 304], [100, 152], [50, 76], [25, 38]];
  const rois = proposals(R, 9, 16, 800);
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  return {
    family: 'detect',
    name: `multiScaleRoiAlign ${dir === 'fwd' ? 'fwd' : 'fwd+bwd'} 7×7`,
    shape: `${R} RoIs × ${C} ch, 4 FPN levels (P2–P5 of 800×1216), sr 2${note}`,
    bytes: R * C * 49 * F,
    setup: () => {
      const feats = sizes.map(([h, w]) => E.randn([1, C, h, w]));
      const r = E.fromArray(rois, [R, 5]);
      if (dir === 'fwd') return { record: () => void multiScaleRoiAlign(feats, r, { outputSize: 7, scales }), dispose: keepAll([...feats, r]) };
      feats.forEach((f) => (f.requiresGrad = true));
      const g = E.randn([R, C, 7, 7]);
      return {
        // includes the forward (one dispatch) and the zero fills of the 4 level grads
        record: () => {
          E.backward(multiScaleRoiAlign(feats, r, { outputSize: 7, scales }), g);
          feats.forEach((f) => { f.grad?.dispose(); f.grad = null; });
        },
        dispose: keepAll([...feats, r, g]),
      };
    },
  };
}

function nmsCase(N: number): BenchCase {
  const p = proposals(N, N + 3, 16, 300);
  const boxes = new Float32Array(N * 4);
  for (let i = 0; i < N; i++) boxes.set(p.subarray(i * 5 + 1, i * 5 + 5), i * 4);
  const r = mulberry32(N);
  const scores = Float32Array.from({ length: N }, () => r());
  return {
    family: 'detect',
    name: 'nms (IoU 0.7)',
    shape: `${N} boxes`,
    setup: () => {
      const b = E.fromArray(boxes, [N, 4]);
      const s = E.fromArray(scores, [N]);
      return { record: () => void nms(b, s, 0.7), dispose: keepAll([b, s]) };
    },
    // tfjs's CPU NMS is O(N·kept): ~4.5 s at 12k on lavapipe's host, so minutes at 120k ×4 runs
    tfjs: N > 20000 ? undefined : (tf: Tf) => {
      const yx = Array.from({ length: N }, (_, i) => [boxes[4 * i + 1], boxes[4 * i], boxes[4 * i + 3], boxes[4 * i + 2]]);
      const b = tf.tensor2d(yx, [N, 4]);
      const s = tf.tensor1d(scores);
      // nonMaxSuppressionAsync returns a Promise; the harness awaits `.data()` of what run returns
      return {
        run: () => {
          const pr = tf.image.nonMaxSuppressionAsync(b, s, N, 0.7);
          return { data: async () => { const t = await pr; await t.data(); t.dispose(); } };
        },
        dispose: () => tf.dispose([b, s]),
      };
    },
  };
}

/** Inference mask paste (> 0.5, bit-packed rows): bytes are the output's; no tfjs peer. */
function pasteCase(R: number, M: number, H: number, W: number): BenchCase {
  const r = mulberry32(11);
  const probs = Float32Array.from({ length: R * M * M }, () => r());
  const boxes = new Float32Array(R * 4);
  for (let i = 0; i < R; i++) {
    const w = 20 * (15 ** r()), h = 20 * (15 ** r()); // sides 20..300 px
    const x = r() * (W - w), y = r() * (H - h);
    boxes.set([x, y, x + w, y + h], 4 * i);
  }
  const sizes = Int32Array.from({ length: R * 2 }, (_, i) => (i % 2 ? W : H));
  return {
    family: 'detect',
    name: 'pasteMasks (> 0.5, bit-packed)',
    shape: `${R} masks ${M}×${M} into ${H}×${W}, boxes 20–300 px`,
    bytes: R * H * Math.ceil(W / 32) * F,
    setup: () => {
      const p = E.fromArray(probs, [R, M, M]), b = E.fromArray(boxes, [R, 4]), s = E.fromArray(sizes, [R, 2], 'i32');
      return { record: () => void pasteMasks(p, b, s, [H, W]), dispose: keepAll([p, b, s]) };
    },
  };
}

/**
 * Balanced pos/neg sampler on labels shaped like the shapes preset's targets (RPN: ~14k anchors,
 * few positives, most negative, some ignored; box head: ~160 proposals). Bytes: labels read once,
 * both masks written once (the least any implementation moves); no tfjs peer.
 */
function samplerCase(N: number, pPos: number, pIgn: number, batch: number, what: string): BenchCase {
  const r = mulberry32(N);
  const labels = Int32Array.from({ length: N }, () => { const u = r(); return u < pPos ? 1 : u < pPos + pIgn ? -1 : 0; });
  return {
    family: 'detect',
    name: `sampler (${what})`,
    shape: `${N} labels, ${+(pPos * 100).toFixed(1)}% pos, ${(pIgn * 100).toFixed(0)}% ignored, batch ${batch}`,
    bytes: 3 * N * F,
    setup: () => {
      const l = E.fromArray(labels, [N], 'i32');
      let seed = 0;
      return {
        record: () => { const s = sampler(l, { batchSizePerImage: batch, positiveFraction: 0.5, seed: seed++ }); s.pos.dispose(); s.neg.dispose(); },
        dispose: keepAll([l]),
      };
    },
  };
}

/**
 * Training-target chain of a batch of B images, batched ops (one dispatch each for all images)
 * beside the per-image loop the model ran before: boxIou of G GT (a quarter of them padding) with
 * N shared anchors (RPN) or with each image's N proposals + its G GT (box head), padding rows set
 * to -1, matcher, sampler (one seed per image), and for the box head the compaction of the sampled
 * rows. On lavapipe the loop's cost is mostly per-dispatch overhead. Bytes: the IoU matrix written
 * and read once.
 */
function targetsCase(what: 'RPN' | 'box head', B: number, G: number, N: number, form: 'batched' | 'loop'): BenchCase {
  const rpn = what === 'RPN';
  const Nc = rpn ? N : N + G; // box head: proposals + appended GT
  const r = mulberry32(B * 1000 + N);
  const boxes = (n: number) => Float32Array.from(proposals(n, Math.floor(r() * 1e9), 8, 200).filter((_, i) => i % 5 !== 0));
  return {
    family: 'detect',
    name: `${what} targets ${form === 'batched' ? 'batched' : 'per-image loop'} (iou, matcher, sampler${rpn ? '' : ', compact'})`,
    shape: `B ${B}, ${G} GT × ${Nc} ${rpn ? 'shared anchors' : 'proposals+GT'}`,
    bytes: 2 * B * G * Nc * F,
    setup: () => {
      const gt = E.fromArray(boxes(B * G), [B, G, 4]);
      const valid = E.fromArray(Float32Array.from({ length: B * G }, (_, i) => (i % G < (3 * G) / 4 ? 1 : 0)), [B, G, 1]);
      const cand = rpn ? E.fromArray(boxes(N), [N, 4]) : E.fromArray(boxes(B * Nc), [B, Nc, 4]);
      const o = rpn ? { high: 0.7, low: 0.3, allowLowQualityMatches: true } : { high: 0.5, low: 0.5, allowLowQualityMatches: false };
      const so = rpn ? { batchSizePerImage: 256, positiveFraction: 0.5 } : { batchSizePerImage: 64, positiveFraction: 0.25 };
      const one = (g: E.Tensor, v: E.Tensor, c: E.Tensor, seed: number | number[]) => {
        const m = matcher(E.where(v, boxIou(g, c), E.full([], -1)), o);
        const s = sampler(m.labels, { ...so, seed });
        if (!rpn) compact(E.add(s.pos, s.neg));
      };
      const row = (t: E.Tensor, b: number) => E.reshape(E.narrow(t, 0, b, 1), t.shape.slice(1));
      let step = 0;
      const record = () => E.tidy(() => {
        step++;
        if (form === 'batched') one(gt, valid, cand, Array.from({ length: B }, (_, b) => step * 31 + b));
        else for (let b = 0; b < B; b++) one(row(gt, b), row(valid, b), rpn ? cand : row(cand, b), step * 31 + b);
      });
      return { record, dispose: keepAll([gt, valid, cand]) };
    },
  };
}

export function cases(size: BenchSize): BenchCase[] {
  const full = size === 'full';
  const [R, C] = full ? [512, 256] : [256, 64];
  const note = full ? '' : ' (small: 256 RoIs × 64 ch)';
  const out: BenchCase[] = [
    roiAlignCase(R, C, 7, 'fwd', note),
    // sr 2 against a cheaper tfjs op (one sample per bin, a different output): the lower bound
    roiAlignCase(R, C, 7, 'fwd', note, 2, 'onesample'),
    roiAlignCase(R, C, 7, 'bwd', note),
    roiAlignCase(R, C, 7, 'fwd', note, 1),
    roiAlignCase(R, C, 14, 'fwd', note),
    roiAlignCase(R, C, 14, 'bwd', note),
    multiLevelCase(R, C, note, 'fwd'),
    multiLevelCase(R, C, note, 'bwd'),
    ...(full ? [1000, 12000, 120000] : [1000, 12000]).map(nmsCase),
    {
      family: 'detect',
      name: 'topk 2000',
      shape: `[1, 200000]`,
      bytes: 200000 * F,
      setup: () => {
        const x = E.rand([1, 200000]);
        return { record: () => void topk(x, 2000), dispose: keepAll([x]) };
      },
      tfjs: (tf: Tf) => {
        const x = tf.randomUniform([1, 200000]);
        return { run: () => tf.topk(x, 2000).indices, dispose: () => x.dispose() };
      },
    },
    {
      family: 'detect',
      name: 'box IoU matrix',
      shape: '2000×100',
      bytes: (2000 * 100 + 2100 * 4) * F,
      setup: () => {
        const a = E.fromArray(proposals(2000, 1).filter((_, i) => i % 5 !== 0), [2000, 4]);
        const b = E.fromArray(proposals(100, 2).filter((_, i) => i % 5 !== 0), [100, 4]);
        return { record: () => void boxIou(a, b), dispose: keepAll([a, b]) };
      },
    },
    pasteCase(100, 28, 480, 640),
    samplerCase(14000, 0.005, 0.1, 256, 'RPN'),
    samplerCase(160, 0.3, 0, 128, 'box head'),
    // shapes_small at batch 8: ~14k anchors, maxGtPerImage 8, 150 post-NMS proposals per image
    ...(['loop', 'batched'] as const).flatMap((form) => [targetsCase('RPN', 8, 8, 14000, form), targetsCase('box head', 8, 8, 150, form)]),
  ];
  return out;
}
