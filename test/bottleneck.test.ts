// Integration: a ResNet bottleneck (stride 2 with downsample, batch-norm in train mode) forward and
// backward against a float64 reference of the whole block; grads vs central differences.
import { test } from 'uvu';
import * as E from '../engine/index.ts';
import { Bottleneck } from '../engine/nn-conv.ts';
import { refConv2d, type ConvGeom } from '../kernels/conv.ts';
import { refBatchNormTrain } from '../kernels/norm.ts';
import { assertClose, numericGrad, randArray, weighted } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const geom = (N: number, Cin: number, H: number, Cout: number, k: number, s: number, p: number): ConvGeom => {
  const Ho = Math.floor((H + 2 * p - k) / s) + 1;
  return { N, Cin, H, W: H, Cout, KH: k, KW: k, strideH: s, strideW: s, padT: p, padL: p, dilH: 1, dilW: 1, groups: 1, Ho, Wo: Ho };
};
const reluA = (a: Float64Array) => a.map((v) => Math.max(v, 0));
const bn = (x: Float64Array, shape: number[]) => refBatchNormTrain(x, shape, new Float64Array(shape[1]).fill(1), new Float64Array(shape[1]), 1e-5).y;

test('Bottleneck(8 → 4×4, stride 2, downsample, BN train): forward + backward vs float64 block', async () => {
  const [N, Cin, H, planes, s] = [2, 8, 7, 4, 2];
  const block = new Bottleneck(Cin, planes, s, 'batch');
  const w = new Map<string, Float64Array>();
  for (const [n, t] of block.namedParameters()) w.set(n, Float64Array.from(await E.toArray(t)));
  const Ho = Math.floor((H - 1) / s) + 1;
  const g1 = geom(N, Cin, H, planes, 1, 1, 0), g2 = geom(N, planes, H, planes, 3, s, 1), g3 = geom(N, planes, Ho, 4 * planes, 1, 1, 0), gd = geom(N, Cin, H, 4 * planes, 1, s, 0);
  const ref = (x: Float64Array, w2 = w.get('conv2.weight')!) => {
    const h1 = reluA(bn(refConv2d(g1, x, w.get('conv1.weight')!), [N, planes, H, H]));
    const h2 = reluA(bn(refConv2d(g2, h1, w2), [N, planes, Ho, Ho]));
    const h3 = bn(refConv2d(g3, h2, w.get('conv3.weight')!), [N, 4 * planes, Ho, Ho]);
    const id = bn(refConv2d(gd, x, w.get('downsample.0.weight')!), [N, 4 * planes, Ho, Ho]);
    return reluA(h3.map((v, i) => v + id[i]));
  };
  const xd = randArray(N * Cin * H * H, 3);
  const x = E.fromArray(Float32Array.from(xd), [N, Cin, H, H]);
  x.requiresGrad = true;
  const y = block.forward(x);
  const want = ref(xd);
  assertClose(await E.toArray(y), want, 'bottleneck forward', 1e-4, 1e-3);
  const wts = randArray(want.length, 4);
  const loss = E.sum(E.mul(y, E.fromArray(Float32Array.from(wts), y.shape)));
  E.backward(loss);
  assertClose(await E.toArray(x.grad!), numericGrad((v) => weighted(ref(v), wts), xd), 'bottleneck dL/dx', 1e-3, 1e-2);
  const w2 = w.get('conv2.weight')!;
  assertClose(await E.toArray(block.conv2.weight.grad!), numericGrad((v) => weighted(ref(xd, v), wts), w2), 'bottleneck dL/dconv2.weight', 1e-3, 1e-2);
  for (const t of [x, y, loss]) t.dispose();
  block.dispose();
});

test.run();
