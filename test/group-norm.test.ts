// Group norm (+ fused ReLU): GPU vs the float64 reference with outputs poisoned (odd sizes, N 1 and
// 3, G = 1, G = C, C/G > 1, 1×1 spatial, rank 2-5, non-contiguous input, scalar and vec4 paths,
// several partial threads per segment, large offset); grads of x, γ, β vs central differences;
// the GroupNorm module; BasicBlock / Bottleneck with GroupNorm vs a composition of the single ops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { batchNorm, conv2d, groupNorm, groupNormBackwardRaw, groupNormRaw } from '../engine/ops-conv.ts';
import { BasicBlock, Bottleneck, GroupNorm } from '../engine/nn-conv.ts';
import { planGroupNorm, refGroupNorm } from '../kernels/group-norm.ts';
import { TARGET_THREADS_CPU, TARGET_THREADS_GPU } from '../kernels/reduce.ts';
import { assertClose, checkOp, numericGrad, randArray, weighted } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const spatial = (s: number[]) => numel(s.slice(2));

// [shape, G]: S odd (scalar paths), S % 4 == 0 (vec4 paths), L % 4 == 0 with S odd (vec4 stats, scalar rows).
const CASES: [number[], number][] = [
  [[3, 6, 5, 7], 3], [[1, 5, 3, 3], 1], [[3, 5, 2, 3], 5], [[2, 8, 1, 1], 4], [[3, 12, 4, 4], 3],
  [[2, 8, 3, 5], 2], [[5, 6], 2], [[1, 6], 6], [[2, 6, 10], 3], [[2, 4, 2, 3, 4], 2], [[2, 16, 13, 19], 4],
];

test('plans: vector widths per case, several partial threads per segment on both device kinds', () => {
  const p = planGroupNorm(3, 6, 35, 3, TARGET_THREADS_CPU, true);
  assert.equal([p.wL, p.wS, p.statsP > 1, p.rowsP > 1], [1, 1, true, true]);
  const q = planGroupNorm(2, 16, 247, 4, TARGET_THREADS_GPU, false);
  assert.equal([q.wL, q.wS, q.statsP > 1, q.rowsP > 1], [4, 1, true, true]);
  const big = planGroupNorm(2, 256, 50 * 76, 32, TARGET_THREADS_CPU, true);
  assert.ok(big.statsP >= 8, `[2,256,50,76] G=32 stats pass uses ${big.statsP} threads per group`);
});

test('groupNorm forward (± ReLU, ± affine) vs float64 reference, outputs poisoned', async () => {
  for (const [shape, G] of CASES) {
    const C = shape[1];
    const xd = randArray(numel(shape), 1 + shape.length + C, -2, 3);
    const gd = randArray(C, 2, 0.5, 1.5), bd = randArray(C, 3);
    const x = E.fromArray(f32(xd), shape), g = E.fromArray(f32(gd), [C]), b = E.fromArray(f32(bd), [C]);
    for (const relu of [false, true]) {
      const y = groupNorm(x, G, g, b, { eps: 1e-5, relu });
      assertClose(await E.toArray(y), refGroupNorm(xd, shape, G, gd, bd, 1e-5, relu).y, `groupNorm [${shape}] G=${G} relu=${relu}`, 1e-5, 1e-4);
      y.dispose();
    }
    const y0 = groupNorm(x, G, null, null, { eps: 1e-3 });
    assertClose(await E.toArray(y0), refGroupNorm(xd, shape, G, null, null, 1e-3).y, `groupNorm [${shape}] G=${G} no affine`, 1e-5, 1e-4);
    for (const t of [x, g, b, y0]) t.dispose();
  }
});

test('groupNorm reads a non-contiguous view (permuted NHWC storage, spatial slice)', async () => {
  const [N, H, W, C] = [3, 5, 7, 8];
  const base = randArray(N * H * W * C, 21);
  const nhwc = E.fromArray(f32(base), [N, H, W, C]);
  const x = E.permute(nhwc, [0, 3, 1, 2]);
  assert.not.ok(x.isContiguous);
  const xd = Float64Array.from(await E.toArray(E.contiguous(x)));
  const y = groupNorm(x, 4, null, null, { relu: true });
  assertClose(await E.toArray(y), refGroupNorm(xd, [N, C, H, W], 4, null, null, 1e-5, true).y, 'groupNorm of permuted view');
  const sl = E.slice(x, [null, null, null, [1, 6]]); // [N, C, H, 5] at an offset
  const sd = Float64Array.from(await E.toArray(E.contiguous(sl)));
  assertClose(await E.toArray(groupNorm(sl, 2)), refGroupNorm(sd, [N, C, H, 5], 2, null, null, 1e-5).y, 'groupNorm of sliced view');
  nhwc.dispose();
});

test('groupNorm grads (x, γ, β) vs central differences, ± ReLU', async () => {
  const gradCases: [number[], number][] = [[[3, 6, 5, 7], 3], [[1, 4, 3, 3], 1], [[3, 5, 2, 3], 5], [[2, 8, 4, 4], 2], [[3, 4, 1, 1], 2], [[2, 4, 2, 3, 2], 2]];
  for (const [shape, G] of gradCases) {
    const C = shape[1];
    for (const relu of [false, true]) {
      await checkOp(`groupNorm [${shape}] G=${G} relu=${relu}`, [{ shape, lo: -2, hi: 3 }, { shape: [C], lo: 0.5, hi: 1.5 }, { shape: [C] }],
        ([x, g, b]) => groupNorm(x, G, g, b, { relu }),
        ([x, g, b]) => refGroupNorm(x, shape, G, g, b, 1e-5, relu).y, { atol: 1e-4, gatol: 5e-4, grtol: 2e-3, h: 1e-5 });
    }
  }
  // Only x requires grad (no γ/β grads asked for), and only γ/β (dx skipped).
  const shape = [2, 6, 3, 5];
  await checkOp('groupNorm x only', [{ shape }, { shape: [6], grad: false }, { shape: [6], grad: false }], ([x, g, b]) => groupNorm(x, 3, g, b), ([x, g, b]) => refGroupNorm(x, shape, 3, g, b, 1e-5).y, { gatol: 5e-4, grtol: 2e-3, h: 1e-5 });
  await checkOp('groupNorm γ/β only', [{ shape, grad: false }, { shape: [6] }, { shape: [6] }], ([x, g, b]) => groupNorm(x, 3, g, b, { relu: true }), ([x, g, b]) => refGroupNorm(x, shape, 3, g, b, 1e-5, true).y, { gatol: 5e-4, grtol: 2e-3, h: 1e-5 });
});

/** Analytic float64 backward of refGroupNorm (checked against central differences below). */
function refGroupNormBackward(x: Float64Array, shape: number[], G: number, gamma: Float64Array, beta: Float64Array, eps: number, relu: boolean, dy: Float64Array): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const [N, C] = shape;
  const S = spatial(shape);
  const L = (C / G) * S;
  const { y, mean, varB } = refGroupNorm(x, shape, G, gamma, beta, eps, relu);
  const dx = new Float64Array(x.length), dgamma = new Float64Array(C), dbeta = new Float64Array(C);
  for (let gi = 0; gi < N * G; gi++) {
    const rstd = 1 / Math.sqrt(varB[gi] + eps);
    let m1 = 0, m2 = 0;
    const at = (i: number) => {
      const e = gi * L + i;
      const c = Math.floor(e / S) % C;
      const g = relu && !(y[e] > 0) ? 0 : dy[e];
      return { e, c, g, xh: (x[e] - mean[gi]) * rstd };
    };
    for (let i = 0; i < L; i++) {
      const { c, g, xh } = at(i);
      m1 += g * gamma[c] / L;
      m2 += g * gamma[c] * xh / L;
      dbeta[c] += g;
      dgamma[c] += g * xh;
    }
    for (let i = 0; i < L; i++) {
      const { e, c, g, xh } = at(i);
      dx[e] = rstd * (g * gamma[c] - m1 - xh * m2);
    }
  }
  return { dx, dgamma, dbeta };
}

test('every partial layout (contiguous blocks / interleaved, 1 to many threads per segment) gives the same forward and backward', async () => {
  const sd = [3, 6, 5, 7];
  const xs = randArray(numel(sd), 61), gs = randArray(6, 62, 0.5, 1.5), bs = randArray(6, 63), ws = randArray(numel(sd), 64);
  assertClose(refGroupNormBackward(xs, sd, 3, gs, bs, 1e-5, true, ws).dx, numericGrad((v) => weighted(refGroupNorm(v, sd, 3, gs, bs, 1e-5, true).y, ws), xs), 'float64 analytic dx vs central differences', 1e-6, 1e-5);
  for (const [shape, G] of [[[3, 6, 5, 7], 3], [[2, 16, 13, 19], 4], [[3, 12, 8, 8], 3], [[1, 8, 1, 1], 8]] as [number[], number][]) {
    const [N, C] = shape;
    const xd = randArray(numel(shape), 71, -2, 3), gd = randArray(C, 72, 0.5, 1.5), bd = randArray(C, 73), dyd = randArray(numel(shape), 74);
    const want = refGroupNormBackward(xd, shape, G, gd, bd, 1e-5, true, dyd);
    const [x, g, b, dy] = [E.fromArray(f32(xd), shape), E.fromArray(f32(gd), [C]), E.fromArray(f32(bd), [C]), E.fromArray(f32(dyd), shape)];
    for (const [target, blocked] of [[TARGET_THREADS_CPU, true], [TARGET_THREADS_GPU, false], [TARGET_THREADS_CPU, false], [TARGET_THREADS_GPU, true], [1, true]] as [number, boolean][]) {
      const p = planGroupNorm(N, C, spatial(shape), G, target, blocked);
      const what = `[${shape}] G=${G} statsP=${p.statsP} rowsP=${p.rowsP} ${blocked ? 'blocked' : 'interleaved'}`;
      const { y, rowStats } = groupNormRaw(p, x, g, b, 1e-5, true);
      assertClose(await E.toArray(y), refGroupNorm(xd, shape, G, gd, bd, 1e-5, true).y, `${what} y`);
      const [dx, dg, db] = groupNormBackwardRaw(p, dy, x, g, rowStats, true, [true, true, true]);
      assertClose(await E.toArray(dx!), want.dx, `${what} dx`, 1e-4, 1e-3);
      assertClose(await E.toArray(dg!), want.dgamma, `${what} dγ`, 1e-4, 1e-3);
      assertClose(await E.toArray(db!), want.dbeta, `${what} dβ`, 1e-4, 1e-3);
      for (const t of [y, rowStats, dx!, dg!, db!]) t.dispose();
    }
    for (const t of [x, g, b, dy]) t.dispose();
  }
});

test('groupNorm with a large constant offset: variance and grads survive (no E[x²] − E[x]²)', async () => {
  // Offset 1000, unit spread: a one-pass f32 E[x²] − E[x]² keeps no digit of the variance.
  for (const [shape, G] of [[[2, 8, 40, 41], 2], [[3, 6, 5, 7], 3], [[2, 8, 4, 4], 2]] as [number[], number][]) {
    const C = shape[1];
    const xd = Float64Array.from(f32(randArray(numel(shape), 31).map((v) => 1000 + v)));
    const big = numel(shape) > 2000;
    await checkOp(`groupNorm offset 1000 [${shape}]`, [{ shape, data: xd }, { shape: [C], lo: 0.5, hi: 1.5 }, { shape: [C] }],
      ([x, g, b]) => groupNorm(x, G, g, b, { relu: true }),
      ([x, g, b]) => refGroupNorm(x, shape, G, g, b, 1e-5, true).y, { atol: 1e-4, rtol: 1e-4, gatol: 5e-4, grtol: 2e-3, h: 1e-4, grad: !big });
  }
});

test('groupNorm: empty batch, errors name the shapes', async () => {
  const x = E.zeros([0, 4, 3, 3]);
  x.requiresGrad = true;
  const g = E.ones([4]);
  g.requiresGrad = true;
  const y = groupNorm(x, 2, g, null);
  assert.equal(y.shape, [0, 4, 3, 3]);
  E.backward(E.sum(y));
  assert.equal(Array.from(await E.toArray(g.grad!)), [0, 0, 0, 0]);
  assert.throws(() => groupNorm(E.zeros([2, 6, 3, 3]), 4), /numGroups 4 must divide the 6 channels of input \[2,6,3,3\]/);
  assert.throws(() => groupNorm(E.zeros([6]), 2), /rank 2-5/);
  assert.throws(() => groupNorm(E.zeros([2, 6, 3]), 3, E.ones([5])), /per-channel tensor \[5\] != \[6\]/);
  assert.throws(() => new GroupNorm(4, 6), /numGroups 4 must divide numChannels 6/);
});

test('GroupNorm module: torch names, affine=false has no params, forwardRelu', async () => {
  const m = new GroupNorm(2, 6, 1e-3);
  assert.equal(m.namedParameters().map(([n]) => n), ['weight', 'bias']);
  assert.equal(new GroupNorm(3, 6, 1e-5, false).namedParameters().length, 0);
  const shape = [2, 6, 3, 4];
  const xd = randArray(numel(shape), 41);
  const x = E.fromArray(f32(xd), shape);
  assertClose(await E.toArray(m.forward(x)), refGroupNorm(xd, shape, 2, null, null, 1e-3).y, 'GroupNorm.forward');
  assertClose(await E.toArray(m.forwardRelu(x)), refGroupNorm(xd, shape, 2, null, null, 1e-3, true).y, 'GroupNorm.forwardRelu');
  m.dispose();
});

/** The same weights through the single ops: conv2d → norm (→ ReLU) ..., the block's definition. */
async function compareBlock(name: string, block: E.Module & { forward(x: E.Tensor): E.Tensor }, shape: number[], compose: (x: E.Tensor, w: (n: string) => E.Tensor) => E.Tensor): Promise<void> {
  const xd = randArray(numel(shape), 51);
  const x1 = E.fromArray(f32(xd), shape);
  const x2 = E.fromArray(f32(xd), shape);
  x1.requiresGrad = x2.requiresGrad = true;
  const params = new Map(block.namedParameters());
  const copies = new Map([...params].map(([n, t]) => {
    const c = E.contiguous(t).keep();
    c.requiresGrad = true;
    return [n, c] as const;
  }));
  const y1 = block.forward(x1);
  const y2 = compose(x2, (n) => copies.get(n) ?? assert.unreachable(`${name}: no param ${n}`) as never);
  const want = await E.toArray(y2);
  assertClose(await E.toArray(y1), want, `${name} forward`, 1e-5, 1e-4);
  const wd = E.fromArray(f32(randArray(want.length, 52)), y1.shape);
  E.backward(E.sum(E.mul(y1, wd)));
  E.backward(E.sum(E.mul(y2, wd)));
  assertClose(await E.toArray(x1.grad!), await E.toArray(x2.grad!), `${name} dL/dx`, 1e-5, 1e-3);
  for (const [n, t] of params) assertClose(await E.toArray(t.grad!), await E.toArray(copies.get(n)!.grad!), `${name} dL/d${n}`, 1e-4, 1e-3);
  for (const t of [x1, x2, wd, ...copies.values()]) t.dispose();
  block.dispose();
}

test('BasicBlock (GroupNorm, stride 2 + downsample; BN train, identity) and Bottleneck (GroupNorm) vs composed ops', async () => {
  const cv = (x: E.Tensor, w: E.Tensor, stride = 1, padding = 1) => conv2d(x, w, null, { stride, padding });
  const gn = (G: number) => (x: E.Tensor, w: (n: string) => E.Tensor, p: string, relu = false) => groupNorm(x, G, w(`${p}.weight`), w(`${p}.bias`), { relu });
  const bn = (x: E.Tensor, w: (n: string) => E.Tensor, p: string, relu = false) => {
    const y = batchNorm(x, w(`${p}.weight`), w(`${p}.bias`), null, null, { training: true });
    return relu ? E.relu(y) : y;
  };
  type Norm = (x: E.Tensor, w: (n: string) => E.Tensor, p: string, relu?: boolean) => E.Tensor;
  const basic = (norm: Norm, stride: number, ds: boolean) => (x: E.Tensor, w: (n: string) => E.Tensor) => {
    const h = norm(cv(x, w('conv1.weight'), stride), w, 'bn1', true);
    const y = norm(cv(h, w('conv2.weight')), w, 'bn2');
    const s = ds ? norm(cv(x, w('downsample.0.weight'), stride, 0), w, 'downsample.1') : x;
    return E.relu(E.add(y, s));
  };
  const b1 = new BasicBlock(4, 6, 2, 'group', 1e-5, 3);
  assert.equal(b1.namedParameters().map(([n]) => n), ['conv1.weight', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'bn2.weight', 'bn2.bias', 'downsample.0.weight', 'downsample.1.weight', 'downsample.1.bias']);
  await compareBlock('BasicBlock GN stride 2', b1, [2, 4, 7, 9], basic(gn(3), 2, true));
  await compareBlock('BasicBlock BN identity', new BasicBlock(6, 6, 1, 'batch'), [2, 6, 5, 5], basic(bn, 1, false));
  const neck = (x: E.Tensor, w: (n: string) => E.Tensor) => {
    const n = gn(2);
    const h1 = n(cv(x, w('conv1.weight'), 1, 0), w, 'bn1', true);
    const h2 = n(cv(h1, w('conv2.weight'), 2), w, 'bn2', true);
    const y = n(cv(h2, w('conv3.weight'), 1, 0), w, 'bn3');
    return E.relu(E.add(y, n(cv(x, w('downsample.0.weight'), 2, 0), w, 'downsample.1')));
  };
  await compareBlock('Bottleneck GN stride 2', new Bottleneck(8, 4, 2, 'group', 1e-5, 2), [2, 8, 6, 5], neck);
});

test.run();
