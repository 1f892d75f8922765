// Diagnostic: recall of the RPN proposals and of the final detections (any label / right label) at
// IoU 0.5 / 0.7 / 0.8 against the GT of shapes val, in the resized frame: tells whether misses come
// from the RPN or from the box head.   npx tsx scripts/recall.ts RUN_DIR_OR_CKPT
import * as E from '../engine/index.ts';
import { createLoader } from '../data/loader.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { batchToGpu } from '../model/transform.ts';
import { loadToolDataset } from '../model/datasets.ts';
import { loadCheckpoint, loadIntoModule } from '../model/weights/index.ts';
import type { ModelConfig } from '../model/config.ts';
await E.initEngine();
const ck = loadCheckpoint(process.argv[2]);
const cfg = ck.sidecar.config as ModelConfig;
const model = new MaskRCNN(cfg);
loadIntoModule(model, new Map([...ck.tensors].filter(([k]) => !k.startsWith('optim.'))), { strict: true });
model.eval?.();
const ds = await loadToolDataset({ dataset: 'shapes', keypoints: true, split: 'val' }, null);
const loader = createLoader(ds.loaded, { batchSize: 4, subset: 'eval', numWorkers: 0, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx }, log: null });
const th = [0.5, 0.7, 0.8];
const hitP = th.map(() => 0), hitD = th.map(() => 0), hitDc = th.map(() => 0); let nGt = 0;
const iou = (a: ArrayLike<number>, b: ArrayLike<number>) => { const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])), ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1])); const I = iw * ih; return I / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - I); };
for (let it = 0; it < 16; it++) {
  let batch; try { batch = await loader.next(); } catch { break; }
  if (batch.epoch > 0) break;
  const gb = batchToGpu(batch, cfg);
  const r = model.forwardInfer(gb);
  const [pb, pv, db, dl, ds2, gtb, gtl, gtv] = await E.toArrays([r.proposals.boxes, r.proposals.valid, r.boxes, r.labels, r.scores, gb.targets!.boxes, gb.targets!.labels, gb.targets!.valid]);
  const P = r.proposals.boxes.shape[1], D = r.boxes.shape[1], G = gb.targets!.boxes.shape[1];
  for (let b = 0; b < gb.B; b++) for (let g = 0; g < G; g++) {
    if (!gtv[b * G + g]) continue;
    nGt++;
    const gbx = gtb.subarray((b * G + g) * 4, (b * G + g) * 4 + 4);
    let bp = 0, bd = 0, bdc = 0;
    for (let p = 0; p < P; p++) if (pv[b * P + p]) bp = Math.max(bp, iou(pb.subarray((b * P + p) * 4, (b * P + p) * 4 + 4), gbx));
    for (let d = 0; d < D; d++) if (ds2[b * D + d] > 0.05) { const v = iou(db.subarray((b * D + d) * 4, (b * D + d) * 4 + 4), gbx); bd = Math.max(bd, v); if (dl[b * D + d] === gtl[b * G + g]) bdc = Math.max(bdc, v); }
    th.forEach((t, i) => { if (bp >= t) hitP[i]++; if (bd >= t) hitD[i]++; if (bdc >= t) hitDc[i]++; });
  }
}
console.log('GT', nGt);
th.forEach((t, i) => console.log(`IoU>=${t}: proposals recall ${(hitP[i] / nGt).toFixed(3)}  detections(any label) ${(hitD[i] / nGt).toFixed(3)}  detections(right label) ${(hitDc[i] / nGt).toFixed(3)}`));
await loader.close(); await E.shutdownEngine();
