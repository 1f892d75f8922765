// Public model API: `import * as M from './model/index.ts'`.
export { MaskRCNN, totalLoss, type Losses, type LossName, type Phase } from './mask-rcnn.ts';
export { preset, shapesSmall, maskrcnnResnet50Fpn, keypointrcnnResnet50Fpn, validateConfig, type ModelConfig, type PresetName } from './config.ts';
export { batchToGpu, gpuBatch, disposeGpuBatch, type GpuBatch, type HostTargets, type ImageSize } from './transform.ts';
export { trainStep, makeOptimizer, type StepOutput } from './train-step.ts';
export { predict, toCocoResults, maskBitmap, type ImageDetections } from './postprocess.ts';
export { loadToolDataset, type ToolDataset } from './datasets.ts';
export { evaluateModel } from './evaluate.ts';
