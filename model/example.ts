// The README's API example, runnable: `npx tsx model/example.ts` (a few steps on shapes, then
// predict and COCO results). Optional: `--weights FILE` (torchvision .pth or safetensors).
import * as E from '../engine/index.ts';
import * as M from './index.ts';
import { createLoader } from '../data/loader.ts';
import { readWeights, mapTorchvisionKeys, loadIntoModule } from './weights/index.ts';

await E.initEngine();
const ds = await M.loadToolDataset({ dataset: 'shapes', keypoints: true, split: 'train' }, null);
const cfg = M.shapesSmall(ds.loaded.labelNames.length);             // or M.preset('maskrcnn_resnet50_fpn')
const model = new M.MaskRCNN(cfg);
const wi = process.argv.indexOf('--weights');
if (wi > 0) loadIntoModule(model, mapTorchvisionKeys(await readWeights(process.argv[wi + 1])).mapped, { strict: false });

const loader = createLoader(ds.loaded, { batchSize: 2, resize: { shortSidePx: cfg.minSizePx, maxLongSidePx: cfg.maxSizePx } });
const opt = M.makeOptimizer(model, { lr: 0.02, warmupIters: 10 });
const batch = M.batchToGpu(await loader.next(), cfg);                // images [2,3,H,W] + fixed-capacity targets
const step = M.trainStep(model, opt, batch);                         // forward, losses, backward, SGD: no host sync
const [values] = await E.toArrays([step.values]);                    // the one readback of logged scalars
console.log(Object.fromEntries(step.names.map((n, i) => [n, +values[i].toFixed(4)])));

const dets = await M.predict(model, batch);                          // per image, original-image coordinates
console.log(dets.map((d) => `image ${d.imageId}: ${d.scores.length} detections`).join('\n'));
const coco = M.toCocoResults(dets, ds.loaded.labelToCatId, { keypointLabels: ds.keypointLabels });
console.log(`${coco.bbox.length} bbox, ${coco.segm.length} segm (RLE), ${coco.keypoints.length} keypoint results`);
await loader.close();
await E.shutdownEngine();
