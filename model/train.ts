// `npm run train`: will train Mask R-CNN on the embedded `shapes` dataset (default) or COCO.
// The model (backbone, FPN, RPN, RoI heads) is a later issue. Until it lands this entry point runs
// everything that exists up to the model's input — dataset generation, COCO loading with its
// bad-input report, the loader — and then stops with a non-zero exit, so nobody mistakes it for
// training.
import { resolveDataset, loadCoco } from '../data/coco.ts';
import { createLoader } from '../data/loader.ts';

const dataset = process.argv.includes('--dataset') ? process.argv[process.argv.indexOf('--dataset') + 1] : 'shapes';
const spec = await resolveDataset(dataset, 'train');
const loaded = loadCoco(spec);
const loader = createLoader(loaded, { batchSize: 2, seed: 0, numWorkers: 0, resize: null });
const batch = await loader.next();
console.log(`train: ${dataset}: ${loaded.trainIndices.length} training images, ${loaded.labelNames.length - 1} categories; first batch [${batch.images.length / (3 * batch.heightPadPx * batch.widthPadPx)}, 3, ${batch.heightPadPx}, ${batch.widthPadPx}]`);
await loader.close();
console.error('train: the Mask R-CNN model is not implemented yet (engine, kernels and data pipeline are); nothing was trained.');
process.exit(2);
