// Core engine kernels: matmul, elementwise, reductions, softmax/loss, layout, optimizer, RNG.
// Napkin math: matmul 2·M·N·K flops; elementwise/reductions count bytes that must move
// (each input read once, output written once).
import * as E from '../engine/index.ts';
import type { BenchCase, Tf } from './harness.ts';
import type { BenchSize } from './run.ts';

const F = 4; // bytes per f32

function keepAll(ts: E.Tensor[]): () => void {
  ts.forEach((t) => t.keep());
  return () => ts.forEach((t) => t.dispose());
}

function matmulCase(M: number, N: number, K: number, batch = 1, transB = false): BenchCase {
  return {
    family: 'matmul',
    name: transB ? 'matmul A·Bᵀ' : batch > 1 ? 'batched matmul' : 'matmul',
    shape: `${batch > 1 ? `${batch}×` : ''}${M}×${N}×${K}`,
    flops: 2 * batch * M * N * K,
    setup: () => {
      const a = E.randn(batch > 1 ? [batch, M, K] : [M, K]);
      const b = E.randn(transB ? [N, K] : batch > 1 ? [batch, K, N] : [K, N]);
      return { record: () => void E.matmul(a, transB ? E.transpose(b) : b), dispose: keepAll([a, b]) };
    },
    tfjs: (tf: Tf) => {
      const a = tf.randomNormal(batch > 1 ? [batch, M, K] : [M, K]);
      const b = tf.randomNormal(transB ? [N, K] : batch > 1 ? [batch, K, N] : [K, N]);
      return { run: () => tf.matMul(a, b, false, transB), dispose: () => tf.dispose([a, b]) };
    },
  };
}

function elementwiseCase(name: string, shapeA: number[], shapeB: number[] | null, ours: (a: E.Tensor, b: E.Tensor | null) => E.Tensor, theirs: (tf: Tf, a: any, b: any) => any): BenchCase {
  const n = shapeA.reduce((x, y) => x * y, 1);
  const nb = shapeB ? shapeB.reduce((x, y) => x * y, 1) : 0;
  return {
    family: 'elementwise',
    name,
    shape: `[${shapeA}]${shapeB ? `·[${shapeB}]` : ''}`,
    bytes: (2 * n + nb) * F,
    setup: () => {
      const a = E.randn(shapeA);
      const b = shapeB ? E.randn(shapeB) : null;
      return { record: () => void ours(a, b), dispose: keepAll(b ? [a, b] : [a]) };
    },
    tfjs: (tf: Tf) => {
      const a = tf.randomNormal(shapeA);
      const b = shapeB ? tf.randomNormal(shapeB) : null;
      return { run: () => theirs(tf, a, b), dispose: () => tf.dispose(b ? [a, b] : [a]) };
    },
  };
}

function reduceCase(name: string, shape: number[], ours: (x: E.Tensor) => E.Tensor, theirs: (tf: Tf, x: any) => any): BenchCase {
  const n = shape.reduce((x, y) => x * y, 1);
  return {
    family: 'reduce',
    name,
    shape: `[${shape}]`,
    bytes: n * F,
    setup: () => {
      const x = E.randn(shape);
      return { record: () => void ours(x), dispose: keepAll([x]) };
    },
    tfjs: (tf: Tf) => {
      const x = tf.randomNormal(shape);
      return { run: () => theirs(tf, x), dispose: () => x.dispose() };
    },
  };
}

export function cases(size: BenchSize): BenchCase[] {
  const big = size === 'full';
  const n = big ? 1 << 24 : 1 << 22;
  const rows = big ? 8192 : 2048;
  const cols = n / rows;
  const out: BenchCase[] = [
    matmulCase(1024, 1024, 1024),
    matmulCase(512, 512, 512),
    matmulCase(1024, 1024, 1024, 1, true),
    matmulCase(256, 256, 256, 8),
    // Box head fc6 on 512 RoIs: [512, 12544] · [12544, 1024] — scaled down on lavapipe.
    big ? matmulCase(512, 1024, 12544, 1, true) : matmulCase(128, 1024, 3136, 1, true),
    elementwiseCase('add', [n], [n], (a, b) => E.add(a, b!), (tf, a, b) => tf.add(a, b)),
    elementwiseCase('add broadcast row', [rows, cols], [cols], (a, b) => E.add(a, b!), (tf, a, b) => tf.add(a, b)),
    elementwiseCase('mul transposed view', [cols, rows], [rows, cols], (a, b) => E.mul(E.transpose(a), b!), (tf, a, b) => tf.mul(tf.transpose(a), b)),
    elementwiseCase('exp', [n], null, (a) => E.exp(a), (tf, a) => tf.exp(a)),
    elementwiseCase('relu', [n], null, (a) => E.relu(a), (tf, a) => tf.relu(a)),
    elementwiseCase('sigmoid', [n], null, (a) => E.sigmoid(a), (tf, a) => tf.sigmoid(a)),
    reduceCase('sum last dim', [rows, cols], (x) => E.sum(x, 1), (tf, x) => tf.sum(x, 1)),
    reduceCase('sum first dim', [rows, cols], (x) => E.sum(x, 0), (tf, x) => tf.sum(x, 0)),
    reduceCase('sum all', [n], (x) => E.sum(x), (tf, x) => tf.sum(x)),
    reduceCase('max last dim', [rows, cols], (x) => E.max(x, 1), (tf, x) => tf.max(x, 1)),
    reduceCase('argmax last dim', [rows, cols], (x) => E.argmax(x, 1), (tf, x) => tf.argMax(x, 1)),
    reduceCase('mean over N,H,W of NCHW', [8, 64, 64, 128], (x) => E.mean(x, [0, 2, 3]), (tf, x) => tf.mean(x, [0, 2, 3])),
    {
      family: 'softmax',
      name: 'softmax (rows)',
      shape: `[${rows}, ${cols}]`,
      bytes: 2 * rows * cols * F,
      setup: () => {
        const x = E.randn([rows, cols]);
        return { record: () => void E.softmax(x, 1), dispose: keepAll([x]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([rows, cols]);
        return { run: () => tf.softmax(x), dispose: () => x.dispose() };
      },
    },
    {
      family: 'loss',
      name: 'cross-entropy fwd+bwd',
      shape: '[512, 81]',
      bytes: 3 * 512 * 81 * F,
      setup: () => {
        const x = E.randn([512, 81]);
        x.requiresGrad = true;
        const y = E.cast(E.mul(E.rand([512]), 81), 'i32');
        return {
          record: () => {
            E.backward(E.crossEntropy(x, y));
            x.grad!.dispose();
            x.grad = null;
          },
          dispose: keepAll([x, y]),
        };
      },
    },
    {
      family: 'layout',
      name: 'transpose → contiguous',
      shape: `[${rows}, ${cols}]ᵀ`,
      bytes: 2 * n * F,
      setup: () => {
        const x = E.randn([rows, cols]);
        return { record: () => void E.contiguous(E.transpose(x)), dispose: keepAll([x]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([rows, cols]);
        return { run: () => tf.transpose(x), dispose: () => x.dispose() };
      },
    },
    {
      family: 'layout',
      name: 'indexSelect rows',
      shape: `[${rows * 4}, 256] → ${rows} rows`,
      bytes: 2 * rows * 256 * F,
      setup: () => {
        const x = E.randn([rows * 4, 256]);
        const idx = E.cast(E.mul(E.rand([rows]), rows * 4), 'i32');
        return { record: () => void E.indexSelect(x, 0, idx), dispose: keepAll([x, idx]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([rows * 4, 256]);
        const idx = tf.cast(tf.mul(tf.randomUniform([rows]), rows * 4), 'int32');
        return { run: () => tf.gather(x, idx), dispose: () => tf.dispose([x, idx]) };
      },
    },
    {
      family: 'layout',
      name: 'concat dim 1',
      shape: `2×[${rows}, ${cols / 2}]`,
      bytes: 2 * n * F,
      setup: () => {
        const a = E.randn([rows, cols / 2]);
        const b = E.randn([rows, cols / 2]);
        return { record: () => void E.concat([a, b], 1), dispose: keepAll([a, b]) };
      },
      tfjs: (tf) => {
        const a = tf.randomNormal([rows, cols / 2]);
        const b = tf.randomNormal([rows, cols / 2]);
        return { run: () => tf.concat([a, b], 1), dispose: () => tf.dispose([a, b]) };
      },
    },
    {
      family: 'optim',
      name: 'SGD momentum step (+clip norm)',
      shape: `${n} params`,
      bytes: 6 * n * F, // sum of squares reads g; update reads p, g, buf and writes p, buf
      setup: () => {
        const p = E.randn([n]).keep();
        p.requiresGrad = true;
        p.grad = E.randn([n]).keep();
        const opt = new E.SGD([{ params: [['p', p]], weightDecay: 1e-4 }], { baseLr: 0.01 }, { momentum: 0.9, maxGradNorm: 10 });
        return { record: () => opt.step(), dispose: () => { opt.dispose(); p.dispose(); } };
      },
    },
    {
      family: 'optim',
      name: 'AdamW step (+clip norm)',
      shape: `${n} params`,
      bytes: 8 * n * F, // sum of squares reads g; update reads p, g, m, v and writes p, m, v
      setup: () => {
        const p = E.randn([n]).keep();
        p.requiresGrad = true;
        p.grad = E.randn([n]).keep();
        const opt = new E.AdamW([{ params: [['p', p]], weightDecay: 0.05 }], { baseLr: 1e-4 }, { maxGradNorm: 10 });
        return { record: () => opt.step(), dispose: () => { opt.dispose(); p.dispose(); } };
      },
    },
    // One row per kernel: where(x > 0, x, y) is these two dispatches (a u32 mask between them).
    {
      family: 'elementwise',
      name: 'compare gt(x, 0) → mask',
      shape: `[${n}]`,
      bytes: 2 * n * F,
      setup: () => {
        const x = E.randn([n]);
        return { record: () => void E.gt(x, 0), dispose: keepAll([x]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([n]);
        return { run: () => tf.greater(x, 0), dispose: () => x.dispose() };
      },
    },
    {
      family: 'elementwise',
      name: 'where(mask, x, y)',
      shape: `[${n}]·[${n}]·[${n}]`,
      bytes: 4 * n * F, // u32 mask, x, y read; out written
      setup: () => {
        const x = E.randn([n]);
        const y = E.randn([n]);
        const m = E.gt(x, 0);
        return { record: () => void E.where(m, x, y), dispose: keepAll([x, y, m]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([n]);
        const y = tf.randomNormal([n]);
        const m = tf.greater(x, 0);
        return { run: () => tf.where(m, x, y), dispose: () => tf.dispose([x, y, m]) };
      },
    },
    elementwiseCase('cast f32→i32', [n], null, (a) => E.cast(a, 'i32'), (tf, a) => tf.cast(a, 'int32')),
    elementwiseCase('smoothL1 (none)', [n], [n], (a, b) => E.smoothL1(a, b!, 1 / 9, 'none'), (tf, a, b) => tf.losses.huberLoss(a, b, undefined, 1 / 9, tf.Reduction.NONE)),
    {
      family: 'softmax',
      name: 'log-softmax fwd+bwd',
      shape: `[${rows}, ${cols}]`,
      bytes: 5 * rows * cols * F,
      setup: () => {
        const x = E.randn([rows, cols]);
        x.requiresGrad = true;
        const w = E.randn([rows, cols]);
        return {
          record: () => {
            E.backward(E.sum(E.mul(E.logSoftmax(x, 1), w)));
            x.grad!.dispose();
            x.grad = null;
          },
          dispose: keepAll([x, w]),
        };
      },
    },
    {
      family: 'layout',
      name: 'pad 1 px each side',
      shape: `[8, 64, ${rows / 16}, ${cols / 16}]`,
      bytes: 2 * 8 * 64 * (rows / 16) * (cols / 16) * F,
      setup: () => {
        const x = E.randn([8, 64, rows / 16, cols / 16]);
        return { record: () => void E.pad(x, [1, 1, 1, 1]), dispose: keepAll([x]) };
      },
      tfjs: (tf) => {
        const x = tf.randomNormal([8, 64, rows / 16, cols / 16]);
        return { run: () => tf.pad(x, [[0, 0], [0, 0], [1, 1], [1, 1]]), dispose: () => x.dispose() };
      },
    },
    {
      family: 'layout',
      name: 'scatterAdd rows (CAS atomics)',
      shape: `${rows} rows of 256 into [${rows / 4}, 256]`,
      bytes: 3 * rows * 256 * F,
      setup: () => {
        const base = E.zeros([rows / 4, 256]);
        const src = E.randn([rows, 256]);
        const idx = E.cast(E.mul(E.rand([rows]), rows / 4), 'i32');
        return { record: () => void E.indexAdd(base, 0, idx, src), dispose: keepAll([base, src, idx]) };
      },
      tfjs: (tf) => {
        const src = tf.randomNormal([rows, 256]);
        const idx = tf.cast(tf.mul(tf.randomUniform([rows, 1]), rows / 4), 'int32');
        return { run: () => tf.scatterND(idx, src, [rows / 4, 256]), dispose: () => tf.dispose([src, idx]) };
      },
    },
    {
      family: 'random',
      name: 'randn',
      shape: `[${n}]`,
      bytes: n * F,
      setup: () => ({ record: () => void E.randn([n]), dispose: () => {} }),
      tfjs: (tf) => ({ run: () => tf.randomNormal([n]), dispose: () => {} }),
    },
  ];
  return out;
}
