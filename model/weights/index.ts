// Weights in and out: .pth (zip and legacy) and safetensors readers, the safetensors writer,
// torchvision/Caffe name mapping, loading into modules, and atomic training checkpoints.
export { WeightsFormatError, CorruptCheckpointError, ConfigMismatchError, StateDictMismatchError } from './errors.ts';
export { type HostTensor, type HostData, type WeightsDType, WEIGHTS_DTYPES, toFloat32, bytesPerElement, numelOf, halfToFloat, bf16ToFloat } from './types.ts';
export { readWeights, readWeightsSync, readWeightsBuffer, detectFormat, loadIntoModule, compareStateDict, type LoadableModule, type LoadReport, type WeightsFileFormat } from './load.ts';
export { readSafetensors, readSafetensorsSync, parseSafetensors, writeSafetensors, writeSafetensorsSync, encodeSafetensors, type SafetensorsFile, type TensorIn } from './safetensors.ts';
export { parsePth, readPthBuffer, findStateDict, ALLOWED_GLOBALS, type PthOptions } from './pth.ts';
export { mapTorchvisionKeys, mapKeyName, detectSource, type MapOptions, type MapResult, type WeightsSource } from './names.ts';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, pruneCheckpoints, diffConfig, CHECKPOINT_FORMAT, type CheckpointSidecar, type CheckpointInfo, type LoadedCheckpoint, type LoadCheckpointOptions } from './checkpoint.ts';
