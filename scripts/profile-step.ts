// Per-(phase, kernel) GPU time of one shapes_small training step (batch 4, after 3 warm-up steps):
// which kernels dominate where. Totals include lavapipe's per-dispatch cost; run on a quiet machine.
//   npx tsx scripts/profile-step.ts
import * as E from '../engine/index.ts';
import { createLoader } from '../data/loader.ts';
import { shapesSmall } from '../model/config.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { batchToGpu } from '../model/transform.ts';
import { makeOptimizer, trainStep } from '../model/train-step.ts';
import { loadToolDataset } from '../model/datasets.ts';
const rt = await E.initEngine();
E.manualSeed(0);
const ds = await loadToolDataset({ dataset: 'shapes', keypoints: true, split: 'train' }, null);
const cfg = shapesSmall(ds.loaded.labelNames.length);
const model = new MaskRCNN(cfg);
const loader = createLoader(ds.loaded, { batchSize: 4, seed: 1, numWorkers: 0, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, log: null });
const bs = [];
for (let i = 0; i < 4; i++) bs.push(batchToGpu(await loader.next(), cfg));
const opt = makeOptimizer(model, { lr: 0.01 });
for (const b of bs.slice(0, 3)) { const o = trainStep(model, opt, b); await E.toArrays([o.values]); o.values.dispose(); }
rt.startProfile();
{ const o = trainStep(model, opt, bs[3]); await E.toArrays([o.values]); o.values.dispose(); }
const recs = await rt.stopProfile();
const m = new Map<string, [number, number]>();
for (const r of recs) { const k = `${r.tag} | ${r.key.split(':').slice(0, 2).join(':')}`; const v = m.get(k) ?? [0, 0]; v[0] += r.ms; v[1]++; m.set(k, v); }
const byTag = new Map<string, [number, number]>();
for (const r of recs) { const v = byTag.get(r.tag) ?? [0, 0]; v[0] += r.ms; v[1]++; byTag.set(r.tag, v); }
console.log([...byTag].sort((a, b) => b[1][1] - a[1][1]).map(([t, [ms, n]]) => `${t} ${n} (${ms.toFixed(0)} ms)`).join(", "));
const tot = recs.reduce((a, r) => a + r.ms, 0);
console.log('total', tot.toFixed(0), 'dispatches', recs.length);
for (const [k, [ms, n]] of [...m].sort((a, b) => b[1][0] - a[1][0]).slice(0, 400)) console.log(ms.toFixed(1).padStart(7), String(n).padStart(5), k);
await loader.close();
await E.shutdownEngine();
