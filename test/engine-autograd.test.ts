// Autograd semantics, memory (pool back to baseline), host-sync discipline, RNG determinism,
// optimizer kernels vs float64 references, and a tiny MLP that must learn a spiral to 100%.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { assertClose, mulberry32, randArray } from './util.ts';
import { refSgd } from '../kernels/optim.ts';
import { refRandomUniform } from '../kernels/random.ts';

const t = suite('engine autograd, memory, optim');
t.before(async () => {
  await E.initEngine();
});

t('grads accumulate across backward calls and when a tensor is reused', async () => {
  const x = E.fromArray([1, -2, 3], [3]);
  x.requiresGrad = true;
  E.tidy(() => E.backward(E.sum(E.mul(x, x))));
  assertClose(await E.toArray(x.grad!), [2, -4, 6], 'first backward');
  E.tidy(() => E.backward(E.sum(E.add(x, x))));
  assertClose(await E.toArray(x.grad!), [4, -2, 8], 'accumulated');
  x.dispose();
});

t('noGrad records nothing; requiresGrad off blocks grads', async () => {
  const x = E.fromArray([1, 2], [2]);
  x.requiresGrad = true;
  const y = E.noGrad(() => E.mul(x, 3));
  assert.is(y.requiresGrad, false);
  assert.is(y.node, null);
  const c = E.fromArray([5, 6], [2]);
  const z = E.sum(E.mul(x, c));
  E.backward(z);
  assert.is(c.grad, null);
  assertClose(await E.toArray(x.grad!), [5, 6], 'grad wrt x only');
  for (const v of [x, y, c, z]) v.dispose();
});

t('backward on a non-scalar needs an explicit grad', () => {
  const x = E.fromArray([1, 2], [2]);
  x.requiresGrad = true;
  const y = E.mul(x, 2);
  assert.throws(() => E.backward(y), /non-scalar/);
  E.freeGraph(y);
  x.dispose();
  y.dispose();
});

t('tidy + backward return the pool to its baseline', async () => {
  const rt = E.runtime();
  const w = E.fromArray(randArray(12, 1), [4, 3]).keep();
  w.requiresGrad = true;
  await rt.sync();
  const before = rt.pool.memoryStats();
  for (let i = 0; i < 3; i++) {
    E.tidy(() => {
      const x = E.randn([5, 4]);
      const y = E.relu(E.matmul(x, w));
      E.backward(E.mean(E.square(y)));
    });
    w.grad!.dispose();
    w.grad = null;
  }
  const after = rt.pool.memoryStats();
  assert.is(after.bytesInUse, before.bytesInUse, `bytes in use ${after.bytesInUse} != baseline ${before.bytesInUse}`);
  assert.is(after.buffersInUse, before.buffersInUse);
  assert.ok(after.peakBytesInUse >= before.bytesInUse);
  w.dispose();
});

t('dispose twice is harmless; using a disposed tensor names it', () => {
  const x = E.fromArray([1], [1]);
  x.dispose();
  x.dispose();
  assert.throws(() => E.add(x, 1), /disposed/);
});

t('shape errors name the op and both shapes', () => {
  const a = E.zeros([2, 3]);
  const b = E.zeros([4, 3]);
  assert.throws(() => E.add(a, b), /add: shapes \[2,3\] and \[4,3\] do not broadcast/);
  assert.throws(() => E.matmul(a, a), /matmul: inner dims differ/);
  assert.throws(() => E.reshape(a, [4, 2]), /reshape: cannot view \[2,3\]/);
  a.dispose();
  b.dispose();
});

t('rand is seeded and matches the CPU hash; randn has the right moments', async () => {
  E.manualSeed(123);
  const a = await E.toArray(E.rand([1000]));
  E.manualSeed(123);
  const b = await E.toArray(E.rand([1000]));
  assertClose(a, b, 'same seed', 0, 0);
  assertClose(a, refRandomUniform(1000, 123, 0), 'GPU vs CPU hash', 1e-7, 0);
  const n = Array.from(await E.toArray(E.randn([20000], 1, 2)));
  const mean = n.reduce((s, v) => s + v, 0) / n.length;
  const sd = Math.sqrt(n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length);
  assert.ok(Math.abs(mean - 1) < 0.05 && Math.abs(sd - 2) < 0.05, `randn moments ${mean}, ${sd}`);
});

t('SGD step (momentum, weight decay, nesterov, clipping) matches the float64 reference', async () => {
  for (const [nesterov, maxNorm] of [[false, 0], [true, 0.5]] as [boolean, number][]) {
    const pv = randArray(10, 3);
    const gv = randArray(10, 4);
    const p = E.fromArray(pv, [10]).keep();
    p.requiresGrad = true;
    const opt = new E.SGD([{ params: [['p', p]], weightDecay: 0.01 }], { baseLr: 0.1 }, { momentum: 0.9, nesterov, maxGradNorm: maxNorm });
    let wantP: Float64Array = Float64Array.from(pv);
    let buf: Float64Array = new Float64Array(10);
    for (let step = 0; step < 3; step++) {
      p.grad = E.fromArray(gv, [10]).keep();
      opt.step();
      const norm = Math.hypot(...gv);
      const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
      ({ p: wantP, buf } = refSgd(wantP, gv, buf, 0.1, 0.9, 0.01, nesterov, coef));
      opt.zeroGrad();
    }
    assertClose(await E.toArray(p), wantP, `sgd nesterov=${nesterov} clip=${maxNorm}`, 1e-6, 1e-5);
    const [norm] = await E.toArray(opt.clipState);
    assertClose([norm], [Math.hypot(...gv)], 'clip norm', 1e-5, 1e-5);
    opt.dispose();
    p.dispose();
  }
});

t('LR schedule: linear warmup then half-cosine to 0 (torchvision CosineAnnealingLR after warmup)', () => {
  const s = { baseLr: 0.02, warmupIters: 100, warmupFactor: 0.001, decay: 'cosine' as const, totalIters: 300 };
  assertClose([E.lrAt(s, 0), E.lrAt(s, 100), E.lrAt(s, 200), E.lrAt(s, 300), E.lrAt(s, 400)], [0.02 * 0.001, 0.02, 0.01, 0, 0], 'cosine', 1e-12, 1e-15);
  assertClose([E.lrAt(s, 150)], [0.02 * 0.5 * (1 + Math.cos(Math.PI / 4))], 'quarter', 1e-12, 0);
  let threw = '';
  try { E.lrAt({ baseLr: 1, warmupIters: 10, decay: 'cosine' }, 5); } catch (e) { threw = (e as Error).message; }
  assert.ok(threw.includes('totalIters'), threw);
});

t('LR schedule: linear warmup then multi-step decay (torchvision recipe)', () => {
  const s = { baseLr: 0.02, warmupIters: 100, warmupFactor: 0.001, milestones: [200, 300], gamma: 0.1 };
  assertClose([E.lrAt(s, 0)], [0.02 * 0.001], 'iter 0', 1e-12, 0);
  assertClose([E.lrAt(s, 50)], [0.02 * (0.001 * 0.5 + 0.5)], 'iter 50', 1e-12, 0);
  assertClose([E.lrAt(s, 150), E.lrAt(s, 200), E.lrAt(s, 301)], [0.02, 0.002, 0.0002], 'decay', 1e-12, 1e-12);
});

t('default param groups: no weight decay on 1-D params', () => {
  const lin = new E.Linear(3, 2);
  const groups = E.defaultGroups(lin.namedParameters(), 1e-4);
  assert.equal(groups[0].params.map(([n]) => n), ['weight']);
  assert.equal(groups[1].params.map(([n]) => n), ['bias']);
  assert.is(groups[1].weightDecay, 0);
  lin.dispose();
});

/** Two interleaved spirals (classic toy set): 2-D points, labels 0/1. */
function spiral(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const r = mulberry32(seed);
  const x = new Float32Array(2 * n);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const t = (i / n) * 3 * Math.PI + 0.5;
    const rad = t / (3 * Math.PI);
    const a = t + cls * Math.PI + (r() - 0.5) * 0.1;
    x[2 * i] = rad * Math.cos(a) * 2;
    x[2 * i + 1] = rad * Math.sin(a) * 2;
    y[i] = cls;
  }
  return { x, y };
}

t('a tiny MLP learns two spirals to 100% with zero host syncs per step', async () => {
  E.manualSeed(7);
  const rt = E.runtime();
  const { x, y } = spiral(200, 11);
  const X = E.fromArray(x, [200, 2]).keep();
  const Y = E.fromArray(y, [200], 'i32').keep();
  const l1 = new E.Linear(2, 64);
  const l2 = new E.Linear(64, 64);
  const l3 = new E.Linear(64, 2);
  const named = [...l1.namedParameters('l1.'), ...l2.namedParameters('l2.'), ...l3.namedParameters('l3.')];
  const opt = new E.SGD(E.defaultGroups(named, 0), { baseLr: 0.5, warmupIters: 20, warmupFactor: 0.1 }, { momentum: 0.9, maxGradNorm: 5 });
  const forward = () => l3.forward(E.tanh(l2.forward(E.tanh(l1.forward(X)))));
  await rt.sync();
  const baseline = rt.pool.memoryStats().bytesInUse;
  const syncs0 = rt.stats.hostSyncs;
  let lossT: E.Tensor | null = null;
  for (let step = 0; step < 400; step++) {
    lossT?.dispose();
    lossT = E.tidy(() => {
      const loss = E.crossEntropy(forward(), Y);
      E.backward(loss);
      opt.step();
      opt.zeroGrad();
      return loss;
    });
  }
  assert.is(rt.stats.hostSyncs, syncs0, 'no host syncs inside training steps');
  const [lossV] = await E.toArray(lossT!);
  lossT!.dispose();
  const predT = E.tidy(() => E.argmax(forward(), 1));
  const pred = Array.from(await E.toArray(predT));
  predT.dispose();
  const acc = pred.reduce((s, p, i) => s + (p === y[i] ? 1 : 0), 0) / y.length;
  assert.is(acc, 1, `accuracy ${acc}, final loss ${lossV}`);
  opt.dispose();
  for (const m of [l1, l2, l3]) m.dispose();
  X.dispose();
  Y.dispose();
  await rt.sync();
  assert.ok(rt.pool.memoryStats().bytesInUse <= baseline, 'training leaves no live buffers behind');
});

t('loadStateDict writes by name and rejects shape mismatches', async () => {
  const lin = new E.Linear(2, 3);
  lin.loadStateDict(new Map([['weight', { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] }], ['bias', { shape: [3], data: [0.5, 0, -0.5] }]]));
  assertClose(await E.toArray(lin.weight), [1, 2, 3, 4, 5, 6], 'weight');
  assert.throws(() => lin.loadStateDict(new Map([['weight', { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }]]), false), /weight: checkpoint shape \[2,3\] != model shape \[3,2\]/);
  assert.throws(() => lin.loadStateDict(new Map([['weight', { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] }]])), /missing keys: bias/);
  lin.dispose();
});

t.run();
