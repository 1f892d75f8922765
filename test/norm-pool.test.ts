// Batch norm (train with running stats over several steps, eval, frozen with eps 0), per-channel
// affine, max/avg/adaptive pools (ceil mode, padding): GPU vs float64 references, grads vs
// central differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { adaptiveAvgPool2d, avgPool2d, batchNorm, channelAffine, frozenBatchNorm, globalAvgPool2d, maxPool2d } from '../engine/ops-conv.ts';
import { refBatchNormTrain, refChannelAffine } from '../kernels/norm.ts';
import { poolOutSize, refAdaptiveAvgPool, refAvgPool, refMaxPool, type PoolGeom } from '../kernels/pool.ts';
import { assertClose, checkOp, randArray } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const f32 = (a: Float64Array) => Float32Array.from(a);

test('batchNorm train: forward, grads vs finite differences (odd sizes, batch 1 and 3)', async () => {
  for (const shape of [[3, 5, 3, 7], [1, 3, 5, 5]]) {
    const C = shape[1];
    await checkOp(`batchNorm train [${shape}]`, [{ shape }, { shape: [C], lo: 0.5, hi: 1.5 }, { shape: [C] }],
      ([x, g, b]) => batchNorm(x, g, b, null, null, { training: true, eps: 1e-5 }),
      ([x, g, b]) => refBatchNormTrain(x, shape, g, b, 1e-5).y, { atol: 1e-4, gatol: 5e-4, grtol: 2e-3, h: 1e-5 });
  }
});

test('batchNorm train: stable variance with a large offset; running stats after 4 steps (momentum, unbiased var)', async () => {
  const shape = [3, 6, 5, 7];
  const [N, C, H, W] = shape;
  const n = N * C * H * W;
  const rm = E.zeros([C]).keep();
  const rv = E.ones([C]).keep();
  const wantM = new Float64Array(C);
  const wantV = new Float64Array(C).fill(1);
  const gamma = E.fromArray(f32(randArray(C, 5, 0.5, 1.5)), [C]);
  const beta = E.fromArray(f32(randArray(C, 6)), [C]);
  for (let step = 0; step < 4; step++) {
    // Offset 1000 with unit spread: E[x²] − E[x]² in f32 would lose every digit of the variance.
    const xd = randArray(n, 40 + step).map((v) => 1000 + v);
    const x = E.fromArray(f32(xd), shape);
    const y = batchNorm(x, gamma, beta, rm, rv, { training: true, momentum: 0.1 });
    const ref = refBatchNormTrain(Float64Array.from(f32(xd)), shape, await E.toArray(gamma), await E.toArray(beta), 1e-5);
    assertClose(await E.toArray(y), ref.y, `step ${step} y`, 2e-3, 1e-3);
    const M = N * H * W;
    for (let c = 0; c < C; c++) {
      wantM[c] = 0.9 * wantM[c] + 0.1 * ref.mean[c];
      wantV[c] = 0.9 * wantV[c] + 0.1 * ref.varB[c] * (M / (M - 1));
    }
    x.dispose();
    y.dispose();
  }
  assertClose(await E.toArray(rm), wantM, 'running_mean', 1e-3, 1e-5);
  assertClose(await E.toArray(rv), wantV, 'running_var', 1e-4, 1e-3);
  for (const t of [rm, rv, gamma, beta]) t.dispose();
});

test('batchNorm eval and frozenBatchNorm (eps 0 as torchvision COCO weights): affine of running stats, grads', async () => {
  const shape = [3, 5, 4, 3];
  const C = 5;
  const rmD = randArray(C, 11), rvD = randArray(C, 12, 0.5, 2);
  const rm = E.fromArray(f32(rmD), [C]);
  const rv = E.fromArray(f32(rvD), [C]);
  for (const eps of [0, 1e-5]) {
    const ref = (x: Float64Array, g: Float64Array, b: Float64Array) => {
      const scale = g.map((v, c) => v / Math.sqrt(rvD[c] + eps));
      return refChannelAffine(x, shape, scale, b.map((v, c) => v - rmD[c] * scale[c]));
    };
    await checkOp(`batchNorm eval eps ${eps}`, [{ shape }, { shape: [C] }, { shape: [C] }],
      ([x, g, b]) => batchNorm(x, g, b, rm, rv, { training: false, eps }), ([x, g, b]) => ref(x, g, b), { gatol: 2e-4 });
    const w = randArray(C, 13), b = randArray(C, 14);
    const wt = E.fromArray(f32(w), [C]), bt = E.fromArray(f32(b), [C]);
    await checkOp(`frozenBatchNorm eps ${eps}`, [{ shape }], ([x]) => frozenBatchNorm(x, wt, bt, rm, rv, eps), ([x]) => ref(x, w, b), { gatol: 2e-4 });
    await checkOp(`frozenBatchNorm+relu eps ${eps}`, [{ shape }], ([x]) => frozenBatchNorm(x, wt, bt, rm, rv, eps, true), ([x]) => ref(x, w, b).map((v) => Math.max(v, 0)), { gatol: 2e-4 });
    wt.dispose();
    bt.dispose();
  }
  await checkOp('channelAffine', [{ shape }, { shape: [C] }, { shape: [C] }], ([x, s, t]) => channelAffine(x, s, t), ([x, s, t]) => refChannelAffine(x, shape, s, t), { gatol: 2e-4 });
  rm.dispose();
  rv.dispose();
});

test('poolOutSize: torch ceil_mode rule (last window starts inside input or left padding)', () => {
  assert.is(poolOutSize(112, 3, 2, 0, true), 56); // Caffe ResNet stem: 112 → 56
  assert.is(poolOutSize(5, 2, 2, 0, true), 3);
  assert.is(poolOutSize(5, 2, 2, 0, false), 2);
  assert.is(poolOutSize(6, 3, 2, 1, true), 4); // last window starts at 5 < 6: kept
  assert.is(poolOutSize(4, 2, 2, 1, true), 3);
});

const poolCases = [
  { shape: [1, 2, 7, 9], k: 3, s: 2, p: 0, ceil: true },
  { shape: [3, 1, 6, 5], k: 3, s: 2, p: 1, ceil: false },
  { shape: [1, 3, 5, 7], k: 2, s: 2, p: 1, ceil: true },
  { shape: [2, 2, 5, 6], k: 1, s: 2, p: 0, ceil: false }, // FPN LastLevelMaxPool
  { shape: [1, 2, 8, 7], k: 3, s: 1, p: 1, ceil: false },
];

test('maxPool2d / avgPool2d: kernel, stride, padding, ceil_mode; grads vs finite differences', async () => {
  for (const c of poolCases) {
    const [N, C, H, W] = c.shape;
    const g: PoolGeom = { planes: N * C, H, W, Ho: poolOutSize(H, c.k, c.s, c.p, c.ceil), Wo: poolOutSize(W, c.k, c.s, c.p, c.ceil), kH: c.k, kW: c.k, sH: c.s, sW: c.s, pH: c.p, pW: c.p };
    const o = { kernel: c.k, stride: c.s, padding: c.p, ceilMode: c.ceil };
    await checkOp(`maxPool2d ${JSON.stringify(c)}`, [{ shape: c.shape }], ([x]) => maxPool2d(x, o), ([x]) => refMaxPool(x, g));
    for (const inc of [true, false]) {
      await checkOp(`avgPool2d incPad=${inc} ${JSON.stringify(c)}`, [{ shape: c.shape }], ([x]) => avgPool2d(x, { ...o, countIncludePad: inc }), ([x]) => refAvgPool(x, g, inc));
    }
  }
});

test('adaptiveAvgPool2d (incl. non-divisible sizes) and global average pool', async () => {
  for (const [shape, out] of [[[2, 3, 7, 5], [3, 2]], [[1, 2, 5, 9], [4, 4]], [[3, 2, 6, 4], [1, 1]], [[1, 1, 3, 3], [5, 4]]] as [number[], [number, number]][]) {
    const [N, C, H, W] = shape;
    await checkOp(`adaptiveAvgPool2d [${shape}] → ${out}`, [{ shape }], ([x]) => adaptiveAvgPool2d(x, out), ([x]) => refAdaptiveAvgPool(x, N * C, H, W, out[0], out[1]));
  }
  await checkOp('globalAvgPool2d', [{ shape: [3, 4, 5, 3] }], ([x]) => globalAvgPool2d(x), ([x]) => refAdaptiveAvgPool(x, 12, 5, 3, 1, 1));
});

test.run();
