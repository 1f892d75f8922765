// The batched training-target code (RPN anchor targets, RoI sampling: each op once for all images)
// against the per-image loops it replaced (model/rpn.ts targetsPath 'perImage'): 3 SGD steps of
// shapes_small at batch 4 from the same seed and batches give every loss (each step) and every
// parameter bit for bit equal, with fewer dispatches. The committed recipe's AP numbers were
// measured with the loop, so the batched code must not change a single bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { createLoader } from '../data/loader.ts';
import { preset } from '../model/config.ts';
import { loadToolDataset } from '../model/datasets.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { targetsPath } from '../model/rpn.ts';
import { batchToGpu, disposeGpuBatch, type GpuBatch } from '../model/transform.ts';
import { makeOptimizer, trainStep } from '../model/train-step.ts';

test.before(async () => {
  await E.initEngine();
});

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

test('batched targets = per-image loop, bit for bit: losses of 3 shapes_small steps at batch 4 and every parameter after them', async () => {
  const ds = await loadToolDataset({ dataset: 'shapes', keypoints: true, split: 'train' }, null);
  const cfg = preset('shapes_small');
  cfg.numClasses = ds.loaded.labelNames.length;
  const loader = createLoader(ds.loaded, { batchSize: 4, seed: 1, numWorkers: 0, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, log: null });
  const batches: GpuBatch[] = [];
  for (let i = 0; i < 3; i++) batches.push(batchToGpu(await loader.next(), cfg));
  await loader.close();

  const train = async (impl: 'batched' | 'perImage') => {
    targetsPath.impl = impl;
    E.manualSeed(0);
    const model = new MaskRCNN(cfg);
    const opt = makeOptimizer(model, { lr: 0.02 });
    const losses: Float32Array[] = [];
    const dispatches: number[] = [];
    let names: string[] = [];
    for (const b of batches) {
      const d0 = E.runtime().stats.dispatches;
      const o = trainStep(model, opt, b);
      dispatches.push(E.runtime().stats.dispatches - d0);
      const [v] = await E.toArrays([o.values]);
      o.values.dispose();
      losses.push(v as Float32Array);
      names = o.names;
    }
    const named = model.namedParameters();
    const params = (await E.toArrays(named.map(([, t]) => t))) as Float32Array[];
    opt.dispose();
    model.dispose();
    return { losses, names, dispatches, params: new Map(named.map(([n], i) => [n, params[i]])) };
  };
  try {
    const loop = await train('perImage');
    const batched = await train('batched');
    assert.equal(batched.names, loop.names);
    for (let s = 0; s < loop.losses.length; s++) {
      const detail = loop.names.map((n, i) => `${n} ${loop.losses[s][i]} / ${batched.losses[s][i]}`).join(', ');
      assert.equal(Array.from(bits(batched.losses[s])), Array.from(bits(loop.losses[s])), `step ${s} losses (loop / batched): ${detail}`);
      assert.ok(loop.losses[s].every(Number.isFinite));
    }
    assert.equal([...batched.params.keys()], [...loop.params.keys()]);
    let elems = 0;
    for (const [n, p] of loop.params) {
      const q = batched.params.get(n)!;
      const a = bits(p), b = bits(q);
      const at = a.findIndex((v, i) => v !== b[i]);
      assert.is(at, -1, `parameter ${n} [${p.length}] differs at ${at}: ${p[at]} vs ${q[at]}`);
      elems += p.length;
    }
    assert.ok(elems > 5e5, `${elems} parameter elements compared`);
    // the loss must have moved the weights at all, or equal parameters would prove nothing
    assert.ok(loop.losses[2][loop.names.indexOf('loss')] !== loop.losses[0][loop.names.indexOf('loss')]);
    const saved = loop.dispatches[2] - batched.dispatches[2];
    assert.ok(saved > 0, `dispatches per step: loop ${loop.dispatches}, batched ${batched.dispatches}`);
    console.log(`dispatches per batch-4 step: per-image loop ${loop.dispatches.join('/')}, batched ${batched.dispatches.join('/')}`);
  } finally {
    targetsPath.impl = 'batched';
    batches.forEach(disposeGpuBatch);
  }
});

test.run();
