// `tsx model/train.ts`: trains Mask R-CNN (boxes + masks + keypoints) on the embedded `shapes`
// dataset by default, or on COCO-format data, and ends with an evaluation. Flags follow the seed
// (trainval_net.py) and torchvision's references/detection where they make sense; `--help` lists
// them. Checkpoints are atomic (model/weights), resume is exact (weights, momentum, iteration,
// loader position; the samplers' seeds are a function of the iteration), a non-finite loss stops
// the run naming the loss, the iteration and the images.
import { mkdirSync, writeFileSync, appendFileSync, unlinkSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as E from '../engine/index.ts';
import { describeDevice } from '../engine/device.ts';
import { createLoader, type Batch, type LoaderState } from '../data/loader.ts';
import { parseFlags, type FlagSpec } from './args.ts';
import { DATASET_NAMES, loadToolDataset, type DatasetName } from './datasets.ts';
import { applyOverrides, maskrcnnResnet50Fpn, shapesSmall, type ModelConfig, type ResNetDepth } from './config.ts';
import { MaskRCNN } from './mask-rcnn.ts';
import { batchToGpu, disposeGpuBatch } from './transform.ts';
import { makeOptimizer, trainStep, type OptimizerKind } from './train-step.ts';
import { evaluateModel } from './evaluate.ts';
import { listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint, readWeights, mapTorchvisionKeys, loadIntoModule, detectSource, type TensorIn } from './weights/index.ts';
import { EventWriter } from './tools/tfevents.ts';
import { renderCurvesPng } from './tools/plot.ts';

export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  dataset: { kind: 'string', help: 'dataset name', default: 'shapes', choices: DATASET_NAMES },
  ann: { kind: 'string', help: 'COCO-format annotation file (with --images) instead of --dataset' },
  images: { kind: 'string', help: 'image folder for --ann' },
  net: { kind: 'string', help: 'backbone: res18 | res34 | res50 | res101', default: null, choices: ['res18', 'res34', 'res50', 'res101'] },
  arch: { kind: 'string', help: 'architecture', default: 'fpn', choices: ['fpn', 'c4'] },
  pooling_mode: { kind: 'string', help: 'RoI pooling', default: 'align', choices: ['align', 'pool', 'crop'] },
  bs: { kind: 'int', help: 'images per batch (default: shapes 8, otherwise 4)', min: 1 },
  nw: { kind: 'int', help: 'loader worker threads', default: 1, min: 0, max: 64 },
  optimizer: { kind: 'string', help: 'sgd (momentum 0.9, torchvision\'s recipe) or adamw (torch AdamW, betas 0.9/0.999) (default: shapes adamw, otherwise sgd)', choices: ['sgd', 'adamw'] },
  weight_decay: { kind: 'float', help: 'weight decay of conv/linear weights (biases and norms: 0) (default: 1e-4 sgd, 0.05 adamw)', min: 0 },
  lr: { kind: 'float', help: 'base learning rate (default: torchvision\'s rule 0.02 × bs / 16 for SGD, 1e-4 × bs / 16 for AdamW; shapes 1.5e-3 × bs / 8 for AdamW, 0.02 × bs / 4 for SGD)', min: 0 },
  lr_decay_step: { kind: 'list', help: 'iterations (comma-separated) where the lr is multiplied by --lr_decay_gamma (default: at 70% and 90% of the run)' },
  lr_decay_gamma: { kind: 'float', help: 'lr decay factor', default: 0.1, min: 0, max: 1 },
  lr_schedule: { kind: 'string', help: 'lr decay after warmup: step (× --lr_decay_gamma at --lr_decay_step) or cosine (half-cosine to 0 at the last iteration) (default: step)', choices: ['step', 'cosine'] },
  warmup_iters: { kind: 'int', help: 'linear warmup iterations (factor 1/1000 → 1) (default: shapes 50, otherwise 100)', min: 0 },
  epochs: { kind: 'int', help: 'epochs (ignored with --max_iter) (default: shapes 20 × 32 iterations of 8 images, sized for 15 minutes on 2 CPU cores; otherwise 10)', min: 1 },
  max_iter: { kind: 'int', help: 'total iterations', min: 1 },
  cag: { kind: 'bool', help: 'class-agnostic box regression (not implemented: error)' },
  keypoints: { kind: 'bool', help: 'keypoint head (default on for shapes; --no-keypoints disables)', default: true },
  masks: { kind: 'bool', help: 'mask head (--no-masks disables)', default: true },
  weights: { kind: 'string', help: 'initial weights: torchvision .pth or safetensors (names mapped)' },
  save_dir: { kind: 'string', help: 'run folder: checkpoints, logs, plots', default: 'runs/shapes' },
  resume: { kind: 'optional-string', help: 'checkpoint to resume from (no value: latest in --save_dir)' },
  ckpt_every: { kind: 'int', help: 'checkpoint every N iterations (0: only at the end)', default: 100, min: 0 },
  keep_ckpts: { kind: 'int', help: 'keep the last K checkpoints', default: 3, min: 1 },
  eval_every: { kind: 'int', help: 'evaluate every N iterations (0: only at the end)', default: 0, min: 0 },
  eval_images: { kind: 'int', help: 'evaluate on the first N val images (0: all)', default: 0, min: 0 },
  final_eval: { kind: 'bool', help: 'evaluate at the end (--no-final_eval skips it)', default: true },
  use_tfboard: { kind: 'bool', help: 'write TensorBoard event files into --save_dir' },
  seed: { kind: 'int', help: 'seed for init, loader order and samplers', default: 0 },
  adapter: { kind: 'string', help: 'GPU adapter name substring (MRCNN_ADAPTER)' },
  ls: { kind: 'bool', help: 'large scale: 800/1333 images (torchvision) instead of the preset size' },
  size: { kind: 'list', help: 'MIN,MAX image size (short side, long-side cap)' },
  set: { kind: 'multi', help: 'model config override path=value (JSON value; repeatable), e.g. --set box.batchSizePerImage=128 --set lossWeights.loss_keypoint=0.5; saved in the checkpoint sidecar' },
};

const log = (m: string) => console.log(m);

async function main(): Promise<void> {
  const { flags: f } = parseFlags('train', process.argv.slice(2), TRAIN_FLAGS);
  if (f.cag) throw new Error('train: --cag (class-agnostic regression) is not implemented; torchvision regresses per class');
  if (f.arch === 'c4') throw new Error('train: --arch c4 (the seed\'s C4 architecture) is a separate issue and not implemented yet; use --arch fpn');
  if (f.pooling_mode !== 'align') throw new Error(`train: --pooling_mode ${f.pooling_mode} is only available in the C4 architecture (not implemented yet); FPN uses RoI Align`);
  if (f.adapter) process.env.MRCNN_ADAPTER = String(f.adapter);
  const saveDir = String(f.save_dir);
  checkWritable(saveDir);
  const rt = await E.initEngine();
  log(`train: device ${describeDevice(rt.dev)}`);
  E.manualSeed(Number(f.seed));

  const dsName = f.dataset as DatasetName;
  const ds = await loadToolDataset({ dataset: dsName, ann: f.ann as string | undefined ?? undefined, images: f.images as string | undefined ?? undefined, keypoints: !!f.keypoints, split: 'train' }, log);
  const val = await loadToolDataset({ dataset: dsName, ann: f.ann ? String(f.ann).replace('train', 'val') : undefined, images: f.images ? String(f.images).replace('train', 'val') : undefined, keypoints: !!f.keypoints, split: 'val' }, null);
  const raw = f.weights ? await readWeights(String(f.weights)) : null;
  // torchvision's COCO_V1 detection weights need FrozenBN eps 0 (vision#2933); ImageNet ResNets use 1e-5
  const cfg = modelConfig(f, dsName, ds.loaded.labelNames.length, ds.hasMasks, ds.numKeypoints, raw ? (detectSource(raw.keys()) === 'detection' ? 0 : 1e-5) : null);
  const model = new MaskRCNN(cfg);
  if (raw) {
    const { mapped } = mapTorchvisionKeys(raw);
    const r = loadIntoModule(model, mapped, { strict: false });
    log(`train: --weights ${f.weights}: ${mapped.size - r.unexpected.length - r.mismatched.length} tensors loaded; missing ${r.missing.length}, unexpected ${r.unexpected.length}, shape mismatches ${r.mismatched.length}${r.mismatched.slice(0, 4).map((m) => ` (${m.key}: file [${m.fileShape}] vs model [${m.modelShape}])`).join('')}`);
  }

  const recipe = RECIPES[dsName === 'shapes' && !f.ann ? 'shapes' : 'torchvision'];
  const bs = f.bs !== null ? Number(f.bs) : recipe.bs;
  const perEpoch = Math.floor(ds.loaded.trainIndices.length / bs);
  const maxIter = f.max_iter ? Number(f.max_iter) : (f.epochs !== null ? Number(f.epochs) : recipe.epochs) * perEpoch;
  const optKind = (f.optimizer ?? recipe.optimizer) as OptimizerKind;
  const lr = f.lr !== null ? Number(f.lr) : recipe.lr(optKind, bs);
  const weightDecay = f.weight_decay !== null ? Number(f.weight_decay) : optKind === 'adamw' ? 0.05 : 1e-4;
  const warmupIters = f.warmup_iters !== null ? Number(f.warmup_iters) : recipe.warmupIters;
  const schedule = (f.lr_schedule ?? recipe.schedule) as 'step' | 'cosine';
  const milestones = f.lr_decay_step ? (f.lr_decay_step as string[]).map(Number) : [Math.floor(maxIter * 0.7), Math.floor(maxIter * 0.9)];
  const opt = makeOptimizer(model, { kind: optKind, lr, warmupIters, milestones, gamma: Number(f.lr_decay_gamma), decay: schedule, totalIters: maxIter, weightDecay, maxGradNorm: 10 });
  let loaderState: LoaderState = { seed: Number(f.seed), epoch: 0, iteration: 0 };

  if (f.resume !== null) {
    const path = f.resume === '' ? saveDir : String(f.resume);
    let ck;
    try {
      ck = loadCheckpoint(path, { config: cfg });
    } catch (e) {
      const others = listCheckpoints(dirname(path) === '.' ? saveDir : existsSync(path) && !path.endsWith('.json') && !path.endsWith('.safetensors') ? path : dirname(path)).map((c) => c.jsonPath);
      throw new Error(`${(e as Error).message}${others.length ? `\ntrain: checkpoints available: ${others.join(', ')} (pass one with --resume PATH, or --resume ${saveDir} for the newest that loads)` : ''}`);
    }
    for (const s of ck.skipped) log(`train: skipped checkpoint ${s.name}: ${s.error}`);
    const saved = (ck.sidecar.optimizer as { kind?: string } | undefined)?.kind ?? 'sgd';
    if (saved !== opt.kind) throw new Error(`train: --resume ${ck.jsonPath} was trained with --optimizer ${saved}; this run uses --optimizer ${opt.kind}`);
    const weights = new Map([...ck.tensors].filter(([k]) => !k.startsWith('optim.')));
    loadIntoModule(model, weights, { strict: true });
    opt.loadState(new Map([...ck.tensors].filter(([k]) => k.startsWith('optim.')).map(([k, t]) => [k.slice('optim.'.length), { shape: t.shape, data: t.data as Float32Array }])));
    opt.iteration = ck.sidecar.iteration;
    loaderState = ck.sidecar.loader as LoaderState;
    log(`train: resumed from ${ck.jsonPath} at iteration ${opt.iteration}`);
  }

  const loader = createLoader(ds.loaded, { batchSize: bs, seed: Number(f.seed), numWorkers: Number(f.nw), resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, state: loaderState, prefetchBatches: 2, log: null });
  const tb = f.use_tfboard ? new EventWriter(saveDir) : null;
  const jsonl = join(saveDir, 'metrics.jsonl');
  const curves = new Map<string, [number, number][]>();
  const apCurves = new Map<string, [number, number][]>();
  let stopRequested = false;
  process.on('SIGINT', () => { if (stopRequested) process.exit(130); stopRequested = true; log('\ntrain: Ctrl-C: finishing this step, saving a checkpoint, then exiting (Ctrl-C again to quit now)'); });

  let savedAt = -1;
  const save = async (why: string) => {
    if (savedAt === opt.iteration) return;
    savedAt = opt.iteration;
    const t0 = performance.now();
    const tensors = new Map<string, TensorIn>();
    const named = [...model.stateDict(), ...opt.state().map(([n, t]) => [`optim.${n}`, t] as [string, E.Tensor])];
    const arrs = await E.toArrays(named.map(([, t]) => t));
    named.forEach(([n, t], i) => tensors.set(n, { dtype: 'f32', shape: t.shape, data: arrs[i] as Float32Array }));
    const name = `ckpt_${String(opt.iteration).padStart(7, '0')}`;
    saveCheckpoint(saveDir, name, tensors, { config: cfg, iteration: opt.iteration, epoch: loaderState.epoch, loader: loaderState, schedule: opt.schedule, optimizer: { kind: opt.kind, weightDecay, ...(opt instanceof E.AdamW ? { betas: opt.betas, eps: opt.eps } : { momentum: (opt as E.SGD).opts.momentum }) } }, { overwrite: true });
    pruneCheckpoints(saveDir, Number(f.keep_ckpts));
    log(`train: checkpoint ${name} (${why}) in ${(performance.now() - t0).toFixed(0)} ms`);
  };

  const tty = process.stdout.isTTY;
  const tStart = performance.now();
  let waitMs = 0, stepMs = 0, steps = 0;
  let epochNow = loaderState.epoch, epochSteps = 0, epochLoss = 0, epochT0 = performance.now();
  log(`train: ${cfg.name} on ${dsName}: ${ds.loaded.trainIndices.length} images, batch ${bs}, ${maxIter} iterations, ${opt.kind} lr ${lr} wd ${weightDecay}, ${schedule === 'cosine' ? 'cosine decay' : `milestones [${milestones}]`}, save dir ${saveDir}`);
  try {
    // The next batch is fetched and uploaded while the GPU runs this step (uploads are queue-ordered
    // after it), so the step boundary leaves the GPU idle only for the first submit's recording.
    const fetchBatch = async () => {
      const tw = performance.now();
      const batch: Batch = await loader.next();
      return { batch, waitMs: performance.now() - tw, gb: batchToGpu(batch, cfg) };
    };
    let next: Awaited<ReturnType<typeof fetchBatch>> | null = null;
    while (opt.iteration < maxIter && !stopRequested) {
      const { batch, waitMs: w, gb } = next ?? await fetchBatch();
      const t0 = performance.now();
      next = null;
      waitMs += w;
      const out = trainStep(model, opt, gb);
      const read = E.toArrays([out.values]); // the step's one batched readback (logged scalars)
      if (opt.iteration < maxIter && !stopRequested) next = await fetchBatch();
      const [vals] = await read;
      out.values.dispose();
      disposeGpuBatch(gb);
      const dt = performance.now() - t0;
      stepMs += dt; steps++;
      if (batch.epoch !== epochNow) {
        if (epochSteps) log(`\nepoch ${epochNow}: ${epochSteps} steps, mean loss ${(epochLoss / epochSteps).toFixed(3)}, ${((epochSteps * bs) / ((performance.now() - epochT0) / 1000)).toFixed(2)} images/s`);
        epochNow = batch.epoch; epochSteps = 0; epochLoss = 0; epochT0 = performance.now();
      }
      loaderState = batch.stateAfter;
      const it = opt.iteration;
      const rec: Record<string, number> = {};
      out.names.forEach((n, i) => { rec[n] = vals[i]; });
      epochSteps++; epochLoss += vals[out.names.indexOf('loss')];
      const bad = out.names.find((n, i) => !Number.isFinite(vals[i]));
      if (bad) throw new Error(`train: non-finite ${bad} = ${rec[bad]} at iteration ${it}, images ${batch.imageIds.join(', ')}; stopping (the last checkpoint in ${saveDir} is the last good state)`);
      const lrNow = E.lrAt(opt.schedule, it - 1);
      appendFileSync(jsonl, JSON.stringify({ iter: it, epoch: batch.epoch, lr: lrNow, ...rec, stepMs: +dt.toFixed(1), waitMs: +w.toFixed(1) }) + '\n');
      for (const [k, v] of Object.entries(rec)) { if (!curves.has(k)) curves.set(k, []); curves.get(k)!.push([it, v]); tb?.scalar(`train/${k}`, v, it); }
      tb?.scalar('train/lr', lrNow, it);
      const ips = (steps * bs) / (stepMs / 1000);
      const eta = ((maxIter - it) * (stepMs / steps)) / 1000;
      const mem = E.runtime().pool.memoryStats();
      E.runtime().pool.resetPeak(); // the next line shows the next step's own peak
      const line = `ep ${batch.epoch} it ${it}/${maxIter} ${out.names.map((n) => `${n.replace('loss_', '')} ${rec[n].toFixed(n === 'grad_norm' ? 1 : 3)}`).join(' ')} lr ${lrNow.toExponential(2)} ${ips.toFixed(2)} im/s eta ${fmtTime(eta)} gpu mem ${(mem.peakBytesInUse / 2 ** 20).toFixed(0)}MB peak`;
      if (tty) process.stdout.write(`\r${line.slice(0, (process.stdout.columns || 200) - 1)}\x1b[K`);
      else if (it % 10 === 0 || it === 1) log(line);
      if (Number(f.ckpt_every) > 0 && it % Number(f.ckpt_every) === 0) await save('schedule');
      if (Number(f.eval_every) > 0 && it % Number(f.eval_every) === 0 && it < maxIter) await runEval(it);
    }
    if (next) disposeGpuBatch(next.gb); // fetched before a Ctrl-C stop
    if (tty) process.stdout.write('\n');
    await save(stopRequested ? 'interrupted' : 'end');
  } catch (e) {
    await loader.close();
    tb?.close();
    const msg = (e as Error).message;
    if (/out of memory|OutOfMemory|allocation failed|Failed to allocate/i.test(msg)) {
      throw new Error(`${msg}\ntrain: the GPU ran out of memory at batch ${bs}, size ${cfg.minSizePx}/${cfg.maxSizePx}: try a smaller --bs or --size MIN,MAX (no checkpoint was written for this state)`);
    }
    if (!msg.includes('non-finite')) {
      // weights are still those of the last completed step: keep them (a loader or I/O failure should not lose the run)
      try { await save('error'); } catch (se) { console.error(`train: could not save on error: ${(se as Error).message}`); }
    }
    throw e;
  }
  await loader.close();
  const trainSec = (performance.now() - tStart) / 1000;
  log(`train: ${steps} steps in ${trainSec.toFixed(0)} s: step ${(stepMs / Math.max(steps, 1)).toFixed(0)} ms, loader wait ${(waitMs / Math.max(steps, 1)).toFixed(1)} ms/step, ${((steps * bs) / (stepMs / 1000)).toFixed(2)} images/s`);
  if (!stopRequested && f.final_eval) await runEval(opt.iteration);
  tb?.close();

  async function runEval(it: number): Promise<void> {
    const t0 = performance.now();
    const r = await evaluateModel(model, val, { batchSize: bs, numWorkers: Number(f.nw), maxImages: Number(f.eval_images) || undefined, log });
    const sec = (performance.now() - t0) / 1000;
    const aps: Record<string, number> = {};
    if (r.bbox) aps.bbox = r.bbox.stats[0];
    if (r.segm) aps.segm = r.segm.stats[0];
    if (r.keypoints) aps.keypoints = r.keypoints.stats[0];
    log(`eval @ ${it}: ${Object.entries(aps).map(([k, v]) => `${k} AP ${v.toFixed(3)}`).join(', ')} (${r.images} images in ${sec.toFixed(1)} s)`);
    for (const [k, v] of Object.entries(aps)) { if (!apCurves.has(k)) apCurves.set(k, []); apCurves.get(k)!.push([it, v]); tb?.scalar(`eval/${k}_AP`, v, it); }
    appendFileSync(jsonl, JSON.stringify({ iter: it, eval: aps, evalSec: +sec.toFixed(1) }) + '\n');
    writeFileSync(join(saveDir, `results_${it}.json`), JSON.stringify(r.results.bbox.concat(r.results.segm, r.results.keypoints)));
    await renderCurvesPng(join(saveDir, 'curves.png'), [
      { title: 'losses', xLabel: 'iteration', logY: true, series: [...curves].filter(([name]) => name !== 'grad_norm').map(([name, points]) => ({ name, points })) },
      { title: 'gradient norm (before clipping at 10)', xLabel: 'iteration', logY: true, series: [{ name: 'grad_norm', points: curves.get('grad_norm') ?? [] }] },
      { title: 'learning rate', xLabel: 'iteration', series: [{ name: 'lr', points: [...curves.get('loss') ?? []].map(([x]) => [x, E.lrAt(opt.schedule, x - 1)] as [number, number]) }] },
      { title: 'AP@[.5:.95]', xLabel: 'iteration', series: [...apCurves].map(([name, points]) => ({ name, points })) },
    ]);
  }
}

function modelConfig(f: Record<string, unknown>, ds: DatasetName, numClasses: number, hasMasks: boolean, numKeypoints: number, frozenEps: number | null): ModelConfig {
  const small = ds === 'shapes' && !f.ann && !f.ls;
  const c = small ? shapesSmall(numClasses) : maskrcnnResnet50Fpn(numClasses);
  // pretrained: torchvision's FrozenBN + trainable_backbone_layers 3; from scratch: GroupNorm, all layers train
  if (!small) c.backbone = { ...c.backbone, norm: frozenEps !== null ? 'frozen' : 'group', normEps: frozenEps ?? 1e-5, trainableLayers: frozenEps !== null ? 3 : 5 };
  if (f.net) c.backbone = { ...c.backbone, depth: Number(String(f.net).slice(3)) as ResNetDepth, blocks: small ? c.backbone.blocks : undefined };
  if (!f.masks || !hasMasks) c.mask = null;
  if (!f.keypoints || !numKeypoints) c.keypoint = null;
  else if (!c.keypoint) c.keypoint = { poolSize: 14, samplingRatio: 2, aligned: false, convChannels: Array(8).fill(512), numKeypoints, norm: 'none' };
  if (f.ls) { c.minSizePx = 800; c.maxSizePx = 1333; }
  if (f.size) {
    const [mn, mx] = (f.size as string[]).map(Number);
    if (!(mn > 0 && mx >= mn)) throw new Error(`train: --size ${(f.size as string[]).join(',')}: expected MIN,MAX with 0 < MIN <= MAX`);
    c.minSizePx = mn; c.maxSizePx = mx;
  }
  return applyOverrides(c, f.set as string[]);
}

/**
 * Defaults for the flags left unset. torchvision: its detection reference (SGD, lr 0.02 × bs / 16;
 * AdamW 1e-4 × bs / 16, DETR-style). shapes: the measured 15-minute recipe on 2 CPU cores
 * (model/README-model.md: batch 8 amortises lavapipe's per-dispatch cost, AdamW converges faster
 * than SGD here; SGD 0.02 × bs / 4 was the best of 0.04 / 0.02 / 0.01 at batch 4).
 */
export const RECIPES = {
  torchvision: { bs: 4, epochs: 10, warmupIters: 100, schedule: 'step', optimizer: 'sgd', lr: (kind: OptimizerKind, bs: number) => (kind === 'sgd' ? 0.02 : 1e-4) * bs / 16 },
  shapes: { bs: 8, epochs: 20, warmupIters: 50, schedule: 'step', optimizer: 'adamw', lr: (kind: OptimizerKind, bs: number) => (kind === 'sgd' ? 0.02 * bs / 4 : 1.5e-3 * bs / 8) },
} as const satisfies Record<string, { bs: number; epochs: number; warmupIters: number; schedule: 'step' | 'cosine'; optimizer: OptimizerKind; lr: (kind: OptimizerKind, bs: number) => number }>;

/** Fails before training starts, not at the first checkpoint. */
function checkWritable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, 'ok');
    unlinkSync(probe);
  } catch (e) {
    throw new Error(`train: --save_dir ${dir} is not writable (${(e as Error).message}); choose another with --save_dir`);
  }
}

const fmtTime = (s: number) => (s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}` : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`);

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().then(() => E.shutdownEngine()).catch(async (e) => {
    console.error(`\n${(e as Error).message}`);
    if (process.env.MRCNN_DEBUG) console.error((e as Error).stack);
    await E.shutdownEngine().catch(() => {});
    process.exit(1);
  });
}
