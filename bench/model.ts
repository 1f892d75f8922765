// Model benchmark: training step (forward + losses + backward + SGD) and inference per preset on
// real `shapes` batches (or torchvision's 800×1216 batch 2 with --full): wall time per step,
// images/s, dispatches per step, peak GPU memory per image, and the per-phase GPU time from a
// profiled step (one timestamp pair per dispatch; backward attributed to the forward phase that
// recorded the op). torchvision's CPU numbers on the same machine come from bench/model_peer.py.
//   npx tsx bench/model.ts [--full] [--steps N] [--bs N] [--size MIN,MAX] [--preset shapes_small|maskrcnn_resnet50_fpn|keypointrcnn_resnet50_fpn] [--out FILE]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as E from '../engine/index.ts';
import { describeDevice } from '../engine/device.ts';
import { createLoader } from '../data/loader.ts';
import { preset, type PresetName, type ModelConfig } from '../model/config.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { batchToGpu, disposeGpuBatch, gpuBatch, type GpuBatch } from '../model/transform.ts';
import { makeOptimizer, trainStep } from '../model/train-step.ts';
import { predict } from '../model/postprocess.ts';
import { loadToolDataset } from '../model/datasets.ts';

const arg = (n: string) => { const i = process.argv.indexOf(n); return i >= 0 ? process.argv[i + 1] : undefined; };
const full = process.argv.includes('--full');
const steps = Number(arg('--steps') ?? (full ? 2 : 5));
const presetName = (arg('--preset') ?? (full ? 'maskrcnn_resnet50_fpn' : 'shapes_small')) as PresetName;
const outPath = arg('--out') ?? `bench/out/model-${presetName}${full ? '-full' : ''}.json`;

const rt = await E.initEngine();
E.manualSeed(0);
const cfg: ModelConfig = preset(presetName);
const ds = await loadToolDataset({ dataset: 'shapes', keypoints: true, split: 'train' }, null);
if (presetName === 'shapes_small') cfg.numClasses = ds.loaded.labelNames.length;
if (arg('--size')) [cfg.minSizePx, cfg.maxSizePx] = arg('--size')!.split(',').map(Number);
const model = new MaskRCNN(cfg);
const bs = Number(arg('--bs') ?? (full ? 2 : 4));
if (full && bs !== 2) throw new Error(`bench/model: --full uses torchvision's benchmark batch of 2 images; --bs ${bs} is for the shapes batches`);

async function batches(n: number): Promise<GpuBatch[]> {
  if (full) return Array.from({ length: n }, (_, i) => syntheticFull(i));
  const loader = createLoader(ds.loaded, { batchSize: bs, seed: 1, numWorkers: 0, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, log: null });
  const out: GpuBatch[] = [];
  for (let i = 0; i < n; i++) out.push(batchToGpu(await loader.next(), cfg));
  await loader.close();
  return out;
}

/** torchvision's benchmark shape: 2 images 800×1216 with 8 boxes each (masks as boxes, keypoints when the model has them). */
function syntheticFull(seed: number): GpuBatch {
  const H = 800, W = 1216, G = 8;
  const img = Float32Array.from({ length: 2 * 3 * H * W }, (_, i) => Math.sin(i * 0.001 + seed));
  const t = [0, 1].map((b) => {
    const boxes = new Float32Array(G * 4);
    const masks: Uint8Array[] = [];
    for (let g = 0; g < G; g++) {
      const x1 = 40 + 130 * g + 7 * b, y1 = 60 + 70 * g, x2 = x1 + 90 + 10 * g, y2 = y1 + 120 + 20 * g;
      boxes.set([x1, y1, x2, y2], g * 4);
      if (cfg.mask) {
        const m = new Uint8Array(H * W);
        for (let y = y1; y < y2; y++) m.fill(1, y * W + x1, y * W + x2);
        masks.push(m);
      }
    }
    const K = cfg.keypoint?.numKeypoints ?? 0;
    const kps = K ? Float32Array.from({ length: G * K * 3 }, (_, i) => (i % 3 === 2 ? 2 : boxes[Math.floor(i / (K * 3)) * 4 + (i % 3)] + 20)) : null;
    return { boxesXyxy: boxes, labels: Int32Array.from({ length: G }, (_, g) => 1 + (g % (cfg.numClasses - 1))), masks: cfg.mask ? masks : null, keypoints: kps };
  });
  return gpuBatch(img, 2, H, W, [0, 1].map(() => ({ heightPx: H, widthPx: W, origHeightPx: H, origWidthPx: W })), t, cfg);
}

const bs0 = await batches(steps + (full ? 1 : 2));
const opt = makeOptimizer(model, { lr: 0.01 });
// warm-up: compiles pipelines, allocates momentum and cached anchors
const warm = full ? 1 : 2;
for (const b of bs0.slice(0, warm)) { const o = trainStep(model, opt, b); await E.toArrays([o.values]); o.values.dispose(); }
rt.pool.resetPeak?.();
const d0 = rt.stats.dispatches;
const stepMs: number[] = [];
for (const b of bs0.slice(warm, warm + steps)) {
  const t0 = performance.now();
  const o = trainStep(model, opt, b);
  await E.toArrays([o.values]);
  o.values.dispose();
  stepMs.push(performance.now() - t0);
}
const dispatchesPerStep = (rt.stats.dispatches - d0) / steps;
const peak = rt.pool.memoryStats().peakBytesInUse;
// profiled step: per-phase GPU time
rt.startProfile();
{ const o = trainStep(model, opt, bs0[warm]); await E.toArrays([o.values]); o.values.dispose(); }
const recs = await rt.stopProfile();
const byPhase = new Map<string, number>();
const byKey = new Map<string, number>();
for (const r of recs) {
  const phase = r.tag.replace(/:bwd$/, '') + (r.tag.endsWith(':bwd') ? ' bwd' : r.tag === 'optimizer' || r.tag === 'loss' ? '' : ' fwd');
  byPhase.set(phase, (byPhase.get(phase) ?? 0) + r.ms);
  byKey.set(r.key.split(':').slice(0, 2).join(':'), (byKey.get(r.key.split(':').slice(0, 2).join(':')) ?? 0) + r.ms);
}
// inference
const inferMs: number[] = [];
await predict(model, bs0[0]); // warm-up: inference-only pipelines (NMS, paste, decode) compile here, not in the timed calls
for (const b of bs0.slice(warm, warm + steps)) { const t0 = performance.now(); await predict(model, b); inferMs.push(performance.now() - t0); }
model.train();
const med = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gpuTotal = [...byPhase.values()].reduce((a, b) => a + b, 0);
const flops = model.flopsPerImage(bs0[warm].Hp, bs0[warm].Wp);
const peerPath = 'bench/model-peer-results.json';
// Python's json writes NaN for missing values; JSON.parse does not accept it
const peer = existsSync(peerPath) ? JSON.parse(readFileSync(peerPath, 'utf8').replace(/\bNaN\b/g, 'null')) : null;
const result = {
  device: describeDevice(rt.dev), date: new Date().toISOString(), command: `npx tsx bench/model.ts ${process.argv.slice(2).join(' ')}`.trim(),
  preset: presetName, batch: bs, imageSize: `${bs0[warm].Hp}x${bs0[warm].Wp}`, heads: { mask: !!cfg.mask, keypoint: !!cfg.keypoint },
  trainStepMs: med(stepMs), trainImagesPerSec: (bs * 1000) / med(stepMs), inferMs: med(inferMs), inferImagesPerSec: (bs * 1000) / med(inferMs),
  dispatchesPerStep, peakMBPerImage: peak / bs / 2 ** 20, profiledGpuMs: gpuTotal,
  phasesMs: Object.fromEntries([...byPhase].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +v.toFixed(1)])),
  topKernelsMs: Object.fromEntries([...byKey].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => [k, +v.toFixed(1)])),
  gflopsPerImageFwd: Object.fromEntries(Object.entries(flops).map(([k, v]) => [k, +(v / 1e9).toFixed(3)])),
  loadAvg: (await import('node:os')).loadavg().map((x) => +x.toFixed(2)),
  peer,
};
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify(result, null, 1));
console.log(JSON.stringify(result, null, 1));
bs0.forEach(disposeGpuBatch);
await E.shutdownEngine();
