// Public engine API: `import * as E from '../engine/index.ts'`.
export * from './ops.ts';
export * from './ops-nn.ts';
export { Tensor, tidy, empty, fromArray, setPoison, type DType } from './tensor.ts';
export { noGrad, isGradEnabled, freeGraph, setTag, tagNow, type OpDef } from './autograd.ts';
export { initEngine, runtime } from './runtime.ts';
export { shutdownEngine, describeDevice } from './device.ts';
export * from './nn.ts';
export * from './optim.ts';
