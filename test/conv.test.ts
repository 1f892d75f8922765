// conv2d / convTranspose2d: GPU forward vs float64 reference, GPU grads vs the reference adjoint
// and vs central differences, over random configurations (stride, padding incl. asymmetric,
// dilation, groups incl. depthwise, odd sizes, batch 1 and 3, channels not multiples of 4).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { conv2d, conv2dRelu, convGeom, convTranspose2d, convWeightGradRaw } from '../engine/ops-conv.ts';
import { type ConvGeom, refConv2d, refConv2dGrads } from '../kernels/conv.ts';
import { assertClose, checkOp, mulberry32, randArray } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

interface Cfg { N: number; Cin: number; Cout: number; H: number; W: number; k: [number, number]; stride: [number, number]; pad: [number, number, number, number]; dil: [number, number]; groups: number; bias: boolean }

const attrs = (c: Cfg) => ({ stride: c.stride, pad: c.pad, dil: c.dil, groups: c.groups, relu: false });
const geomOf = (c: Cfg): ConvGeom => convGeom('test', [c.N, c.Cin, c.H, c.W], [c.Cout, c.Cin / c.groups, ...c.k], attrs(c));
const name = (c: Cfg) => `N${c.N} ${c.Cin}->${c.Cout} ${c.H}x${c.W} k${c.k} s${c.stride} p${c.pad} d${c.dil} g${c.groups}${c.bias ? ' +b' : ''}`;

/** Random configurations over the brief's axes (seeded, so failures reproduce). */
function randomCfgs(count: number, seed: number): Cfg[] {
  const r = mulberry32(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const out: Cfg[] = [];
  while (out.length < count) {
    const groupsKind = pick(['1', '1', '2', 'C']);
    const base = pick([1, 3, 5, 6]);
    // Channel counts per group both off and on multiples of 4 (the vec4 kernels take the latter).
    const Cin = groupsKind === '2' ? 2 * pick([base, 4, 8]) : groupsKind === 'C' ? pick([3, 5, 6]) : pick([1, 3, 5, 7, 8, 12]);
    const groups = groupsKind === '1' ? 1 : groupsKind === '2' ? 2 : Cin;
    const Cout = groupsKind === 'C' ? Cin * pick([1, 2, 4]) : groups * pick([1, 3, 5, 18, 8, 20]);
    const kh = pick([1, 2, 3]);
    const kw = pick([1, 3, 5]);
    const p = pick([0, 1, 3]);
    const pad: [number, number, number, number] = r() < 0.25 ? [p, pick([0, 1, 2]), pick([0, 2]), p] : [p, p, p, p];
    const c: Cfg = { N: pick([1, 3]), Cin, Cout, H: pick([5, 7, 9]), W: pick([4, 7, 11]), k: [kh, kw], stride: [pick([1, 2]), pick([1, 2])], pad, dil: [pick([1, 2]), pick([1, 2])], groups, bias: r() < 0.5 };
    const Ho = Math.floor((c.H + pad[0] + pad[1] - c.dil[0] * (kh - 1) - 1) / c.stride[0]) + 1;
    const Wo = Math.floor((c.W + pad[2] + pad[3] - c.dil[1] * (kw - 1) - 1) / c.stride[1]) + 1;
    if (Ho > 0 && Wo > 0) out.push(c);
  }
  return out;
}

async function checkAgainstAdjoint(c: Cfg, seed: number): Promise<void> {
  const g = geomOf(c);
  const xd = randArray(c.N * c.Cin * c.H * c.W, seed);
  const wd = randArray(c.Cout * (c.Cin / c.groups) * c.k[0] * c.k[1], seed + 1);
  const bd = c.bias ? randArray(c.Cout, seed + 2) : null;
  const gyd = randArray(c.N * c.Cout * g.Ho * g.Wo, seed + 3);
  const x = E.fromArray(Float32Array.from(xd), [c.N, c.Cin, c.H, c.W]);
  const w = E.fromArray(Float32Array.from(wd), [c.Cout, c.Cin / c.groups, ...c.k]);
  const b = bd ? E.fromArray(Float32Array.from(bd), [c.Cout]) : null;
  for (const t of [x, w, b]) if (t) t.requiresGrad = true;
  const y = conv2d(x, w, b, { stride: c.stride, padding: c.pad, dilation: c.dil, groups: c.groups });
  const gy = E.fromArray(Float32Array.from(gyd), y.shape);
  E.backward(y, gy);
  const [yv, dx, dw, db] = await E.toArrays([y, x.grad!, w.grad!, ...(b ? [b.grad!] : [])]);
  const ref = refConv2dGrads(g, xd, wd, gyd);
  const K = (c.Cin / c.groups) * c.k[0] * c.k[1];
  assertClose(yv, refConv2d(g, xd, wd, bd), `${name(c)} forward`, 1e-5 * K, 1e-4);
  assertClose(dx, ref.dx, `${name(c)} dx`, 1e-5 * c.Cout * c.k[0] * c.k[1], 1e-4);
  assertClose(dw, ref.dw, `${name(c)} dw`, 1e-5 * c.N * g.Ho * g.Wo, 1e-4);
  if (db) {
    const dbRef = new Float64Array(c.Cout);
    for (let i = 0; i < gyd.length; i++) dbRef[Math.floor(i / (g.Ho * g.Wo)) % c.Cout] += gyd[i];
    assertClose(db, dbRef, `${name(c)} db`, 1e-4, 1e-4);
  }
  for (const t of [x, w, b, y, gy]) t?.dispose();
}

test('conv2d: 30 random configurations, forward + dX/dW/db vs float64 adjoint', async () => {
  const cfgs = randomCfgs(30, 1234);
  for (let i = 0; i < cfgs.length; i++) await checkAgainstAdjoint(cfgs[i], 100 + i);
});

test('conv2d: tile edges (rows > 16, columns over many tiles), ResNet-like shapes', async () => {
  const cases: Cfg[] = [
    { N: 3, Cin: 19, Cout: 37, H: 13, W: 11, k: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], dil: [1, 1], groups: 1, bias: true },
    { N: 1, Cin: 6, Cout: 17, H: 17, W: 15, k: [7, 7], stride: [2, 2], pad: [3, 3, 3, 3], dil: [1, 1], groups: 1, bias: false },
    { N: 2, Cin: 33, Cout: 18, H: 9, W: 9, k: [1, 1], stride: [2, 2], pad: [0, 0, 0, 0], dil: [1, 1], groups: 1, bias: false },
    { N: 1, Cin: 24, Cout: 24, H: 8, W: 10, k: [3, 3], stride: [1, 1], pad: [2, 2, 2, 2], dil: [2, 2], groups: 24, bias: true },
    // vec4 kernels: Cog 36 (TN 4), 144 (TN 16 over 9 column vec4 groups), grouped 8/12, 7x7 (tap loop).
    { N: 3, Cin: 20, Cout: 36, H: 13, W: 11, k: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], dil: [1, 1], groups: 1, bias: true },
    { N: 2, Cin: 16, Cout: 144, H: 7, W: 9, k: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1], dil: [1, 1], groups: 1, bias: false },
    { N: 3, Cin: 16, Cout: 24, H: 9, W: 7, k: [3, 2], stride: [2, 1], pad: [1, 0, 1, 1], dil: [1, 2], groups: 2, bias: true },
    { N: 1, Cin: 4, Cout: 8, H: 15, W: 13, k: [7, 7], stride: [2, 2], pad: [3, 3, 3, 3], dil: [1, 1], groups: 1, bias: false },
    { N: 2, Cin: 32, Cout: 16, H: 6, W: 5, k: [1, 1], stride: [1, 1], pad: [0, 0, 0, 0], dil: [1, 1], groups: 1, bias: false },
  ];
  for (let i = 0; i < cases.length; i++) await checkAgainstAdjoint(cases[i], 500 + i);
});

test('conv2d dX stride phases: phases with no valid taps (stride > kernel, dilation = stride), 1x1 matmul route, grid spill', async () => {
  const c = (N: number, Cin: number, Cout: number, H: number, W: number, k: [number, number], stride: [number, number], pad: [number, number, number, number], dil: [number, number] = [1, 1], groups = 1): Cfg => ({ N, Cin, Cout, H, W, k, stride, pad, dil, groups, bias: false });
  const cases: Cfg[] = [
    c(2, 8, 12, 9, 8, [1, 1], [1, 1], [0, 0, 0, 0]), // 1x1 stride 1: a single phase, one tap
    c(3, 20, 16, 6, 6, [1, 1], [1, 1], [0, 0, 0, 0]), // 1x1 on matmul-v4 (H·W % 4 == 0): fwd and dX
    c(2, 36, 20, 4, 5, [1, 1], [1, 1], [0, 0, 0, 0]), // ... with row tails (36, 20 rows over 16)
    c(2, 8, 12, 9, 8, [1, 1], [2, 2], [0, 0, 0, 0]), // 1x1 stride 2: three of four phases have no tap
    c(1, 4, 8, 11, 10, [2, 2], [3, 3], [0, 0, 0, 0]), // stride 3 > kernel 2: phase 2 empty per axis
    c(2, 12, 8, 9, 9, [3, 3], [2, 2], [2, 2, 2, 2], [2, 2]), // dilation = stride: odd phases empty
    c(1, 8, 4, 7, 8, [3, 2], [2, 3], [1, 0, 0, 1]), // mixed strides, asymmetric padding
    c(1, 3, 8, 9, 10, [7, 7], [2, 2], [3, 3, 3, 3]), // RGB stem: 3 channels padded to 4, y-lanes
    c(2, 6, 6, 6, 5, [3, 3], [2, 1], [1, 1, 1, 1], [1, 1], 6), // depthwise: Cig 1 padded to 4
    c(1, 2, 3, 1, 5, [1, 3], [2, 2], [0, 0, 1, 1]), // H 1 < stride: phases with no pixels
  ];
  for (let i = 0; i < cases.length; i++) await checkAgainstAdjoint(cases[i], 700 + i);
  process.env.MRCNN_CONVDX_MAXGRIDY = '2'; // row blocks spill into grid z
  try {
    await checkAgainstAdjoint(c(3, 64, 8, 13, 11, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 2), 720); // Cig 32: 32-row blocks, 4 per phase
  } finally {
    delete process.env.MRCNN_CONVDX_MAXGRIDY;
  }
});

test('conv2d: finite differences of the float64 reference and of the GPU analytic grads', async () => {
  const small: Cfg[] = [
    { N: 1, Cin: 3, Cout: 5, H: 5, W: 6, k: [3, 3], stride: [2, 1], pad: [1, 0, 2, 1], dil: [1, 2], groups: 1, bias: true },
    { N: 3, Cin: 4, Cout: 6, H: 5, W: 5, k: [2, 3], stride: [1, 2], pad: [1, 1, 1, 1], dil: [2, 1], groups: 2, bias: false },
  ];
  for (const c of small) {
    const g = geomOf(c);
    const opts = { stride: c.stride, padding: c.pad, dilation: c.dil, groups: c.groups };
    await checkOp(`conv2d ${name(c)}`,
      [{ shape: [c.N, c.Cin, c.H, c.W] }, { shape: [c.Cout, c.Cin / c.groups, ...c.k] }, ...(c.bias ? [{ shape: [c.Cout] }] : [])],
      ([x, w, b]) => conv2d(x, w, b ?? null, opts), ([x, w, b]) => refConv2d(g, x, w, b ?? null), { gatol: 2e-4 });
    // The adjoint used by the random-configuration test against finite differences of the forward.
    const xd = randArray(c.N * c.Cin * c.H * c.W, 9);
    const wd = randArray(c.Cout * (c.Cin / c.groups) * c.k[0] * c.k[1], 10);
    const gyd = randArray(c.N * c.Cout * g.Ho * g.Wo, 11);
    const adj = refConv2dGrads(g, xd, wd, gyd);
    const { numericGrad, weighted } = await import('./util.ts');
    assertClose(adj.dx, numericGrad((x) => weighted(refConv2d(g, x, wd), gyd), xd), 'refConv2dGrads dx vs finite differences', 1e-6, 1e-6);
    assertClose(adj.dw, numericGrad((w) => weighted(refConv2d(g, xd, w), gyd), wd), 'refConv2dGrads dw vs finite differences', 1e-6, 1e-6);
  }
});

test('conv2d weight grad: split-K partials (S = 1, 3, 7) agree', async () => {
  for (const Cout of [18, 20]) await splitCheck({ N: 3, Cin: 5, Cout, H: 9, W: 7, k: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], dil: [1, 1], groups: 1, bias: false });
});

async function splitCheck(c: Cfg): Promise<void> {
  const g = geomOf(c);
  const xd = randArray(c.N * c.Cin * c.H * c.W, 71);
  const gyd = randArray(c.N * c.Cout * g.Ho * g.Wo, 72);
  const x = E.fromArray(Float32Array.from(xd), [c.N, c.Cin, c.H, c.W]);
  const gy = E.fromArray(Float32Array.from(gyd), [c.N, c.Cout, g.Ho, g.Wo]);
  const want = refConv2dGrads(g, xd, new Float64Array(c.Cout * c.Cin * 9), gyd).dw;
  for (const rowsPerSplit of [27, 9, 4]) {
    const splits = Math.ceil(27 / rowsPerSplit);
    const dw = convWeightGradRaw(g, x, gy, { splits, rowsPerSplit });
    assertClose(await E.toArray(dw), want, `dw with ${splits} splits`, 1e-4, 1e-4);
    dw.dispose();
  }
  x.dispose();
  gy.dispose();
}

test('conv2dRelu: fused bias + ReLU forward and backward', async () => {
  const c: Cfg = { N: 3, Cin: 3, Cout: 5, H: 6, W: 5, k: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], dil: [1, 1], groups: 1, bias: true };
  const g = geomOf(c);
  await checkOp('conv2dRelu', [{ shape: [c.N, c.Cin, c.H, c.W] }, { shape: [c.Cout, c.Cin, 3, 3] }, { shape: [c.Cout] }],
    ([x, w, b]) => conv2dRelu(x, w, b, { padding: 1 }), ([x, w, b]) => refConv2d(g, x, w, b).map((v) => Math.max(v, 0)), { gatol: 2e-4 });
});

/** convTranspose2d as the adjoint of conv2d in its input: y = convT(x) ⇔ conv's dX of upstream x. */
function refConvT(g: ConvGeom, x: Float64Array, w: Float64Array): Float64Array {
  return refConv2dGrads(g, new Float64Array(g.N * g.Cin * g.H * g.W), w, x).dx;
}

test('convTranspose2d: mask head 2x2/2, keypoint 4x4/2 pad 1, groups + output_padding; grads vs finite differences', async () => {
  const cases = [
    { N: 2, Cin: 5, Cout: 3, H: 4, W: 3, k: 2, s: 2, p: 0, op: 0, g: 1, d: 1 },
    { N: 1, Cin: 3, Cout: 4, H: 3, W: 5, k: 4, s: 2, p: 1, op: 0, g: 1, d: 1 },
    { N: 3, Cin: 4, Cout: 6, H: 3, W: 4, k: 3, s: 2, p: 1, op: 1, g: 2, d: 1 },
    { N: 1, Cin: 3, Cout: 2, H: 4, W: 4, k: 3, s: 1, p: 2, op: 0, g: 1, d: 2 },
  ];
  for (const c of cases) {
    const Hout = (c.H - 1) * c.s - 2 * c.p + c.d * (c.k - 1) + c.op + 1;
    const Wout = (c.W - 1) * c.s - 2 * c.p + c.d * (c.k - 1) + c.op + 1;
    const g = convGeom('test', [c.N, c.Cout, Hout, Wout], [c.Cin, c.Cout / c.g, c.k, c.k], { stride: [c.s, c.s], pad: [c.p, c.p, c.p, c.p], dil: [c.d, c.d], groups: c.g, relu: false });
    assert.is(g.Ho, c.H);
    const bias = randArray(c.Cout, 3);
    await checkOp(`convTranspose2d ${JSON.stringify(c)}`, [{ shape: [c.N, c.Cin, c.H, c.W] }, { shape: [c.Cin, c.Cout / c.g, c.k, c.k] }, { shape: [c.Cout] }],
      ([x, w, b]) => convTranspose2d(x, w, b, { stride: c.s, padding: c.p, outputPadding: c.op, groups: c.g, dilation: c.d }),
      ([x, w, b]) => {
        const y = refConvT(g, x, w);
        const hw = Hout * Wout;
        return y.map((v, i) => v + b[Math.floor(i / hw) % c.Cout]);
      }, { gatol: 2e-4 });
    void bias;
  }
});

test('conv2d: errors name the op and shapes; no host sync inside ops', async () => {
  const x = E.zeros([1, 4, 5, 5]);
  const w = E.zeros([3, 3, 3, 3]);
  assert.throws(() => conv2d(x, w), /conv2d: input channels 4 \/ groups 1 != weight channels 3/);
  const syncs = E.runtime().stats.hostSyncs;
  const w2 = E.zeros([3, 4, 3, 3]);
  const y = conv2d(x, w2, null, { padding: 1 });
  assert.is(E.runtime().stats.hostSyncs, syncs);
  for (const t of [x, w, w2, y]) t.dispose();
});

test.run();
