// AdamW: the fused kernel against its float64 reference (groups, weight decay, lrScale, warmup,
// clipping on/off, scalar and vec4 paths, a skipped parameter), against a torch.optim.AdamW
// trajectory (fixture), exact resume through state()/loadState(), no host syncs in steps.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { assertClose, randArray } from './util.ts';
import { refAdamW } from '../kernels/optim.ts';

const t = suite('engine AdamW');
t.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});
t.after(() => E.setPoison(false));

const EPS32 = 2 ** -24; // f32 unit roundoff

/**
 * Tolerance of T f32 steps against float64: p·decay and the subtraction round once each (≤ 2ε|p|
 * per step, 4ε with margin), and the update u = m̂/(sqrt(v̂)+eps) goes through ~8 rounded ops,
 * sqrt and division at ≤ 2.5 ulp in WGSL, with |u| ≤ ~3 for t ≤ 6: ~60ε·lr per step, 128ε·lr with margin.
 */
function tol(steps: number, lrMax: number): { atol: number; rtol: number } {
  return { atol: steps * 128 * EPS32 * lrMax, rtol: steps * 4 * EPS32 };
}

interface RefParam {
  name: string;
  shape: number[];
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t: E.Tensor;
  wd: number;
  lrScale: number;
}

t('AdamW step matches the float64 reference (2 groups, wd, lrScale, warmup lr, clip on/off, scalar + vec4 paths)', async () => {
  // 30 and 7: scalar path; 64, 12, 3000 (2 workgroups of 2 vec4s per thread, the second partly empty): vec4; 1001: scalar over 4 workgroups.
  const specs: [string, number[], number, number][] = [['a', [5, 6], 0.1, 1], ['b', [8, 8], 0.1, 1], ['big', [3000], 0.1, 1], ['c', [7], 0, 2], ['d', [12], 0, 2], ['odd', [1001], 0, 2]];
  const schedule = { baseLr: 0.01, warmupIters: 3, warmupFactor: 0.1 };
  for (const maxNorm of [0, 10]) {
    const ps: RefParam[] = specs.map(([name, shape, wd, lrScale], k) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const p = randArray(n, 100 + k);
      const tt = E.fromArray(p, shape).keep();
      tt.requiresGrad = true;
      return { name, shape, p, m: new Float64Array(n), v: new Float64Array(n), t: tt, wd, lrScale };
    });
    const groups: E.ParamGroup[] = [
      { params: ps.filter((x) => x.wd !== 0).map((x) => [x.name, x.t]), weightDecay: 0.1 },
      { params: ps.filter((x) => x.wd === 0).map((x) => [x.name, x.t]), weightDecay: 0, lrScale: 2 },
    ];
    const opt = new E.AdamW(groups, schedule, { betas: [0.9, 0.99], eps: 1e-6, maxGradNorm: maxNorm });
    const steps = 5;
    let clipped = 0;
    for (let s = 0; s < steps; s++) {
      // Parameter d gets no grad in step 2: skipped (no decay, state untouched), as torch.
      const grads = ps.map((x, k) => (x.name === 'd' && s === 2 ? null : randArray(x.p.length, 1000 * s + k, -2, 2)));
      ps.forEach((x, k) => { x.t.grad = grads[k] ? E.fromArray(grads[k]!, x.shape).keep() : null; });
      const norm = Math.sqrt(grads.reduce((acc, g) => acc + (g ? g.reduce((a, b) => a + b * b, 0) : 0), 0));
      const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
      if (coef < 1) clipped++;
      const lr = E.lrAt(schedule, s);
      assert.is(opt.lr, lr);
      opt.step();
      ps.forEach((x, k) => {
        if (!grads[k]) return;
        const r = refAdamW(x.p, grads[k]!, x.m, x.v, { lr: lr * x.lrScale, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: x.wd, step: s + 1 }, coef);
        x.p = r.p; x.m = r.m; x.v = r.v;
      });
      opt.zeroGrad();
      const [st] = await E.toArrays([opt.clipState]);
      assertClose(st, [norm, coef], `clip state step ${s}`, 0, 1e-5);
    }
    assert.is(clipped, maxNorm > 0 ? steps : 0, 'clipping active in every step when on');
    const { atol, rtol } = tol(steps, 0.02);
    const got = await E.toArrays(ps.map((x) => x.t));
    ps.forEach((x, k) => assertClose(got[k], x.p, `p ${x.name} clip=${maxNorm}`, atol, rtol));
    const st = new Map(opt.state());
    assert.equal(opt.state().map(([n]) => n), ps.flatMap((x) => [`exp_avg.${x.name}`, `exp_avg_sq.${x.name}`]).sort((a, b) => order(a) - order(b)));
    for (const x of ps) {
      const [m, v] = await E.toArrays([st.get(`exp_avg.${x.name}`)!, st.get(`exp_avg_sq.${x.name}`)!]);
      assertClose(m, x.m, `exp_avg ${x.name}`, 1e-6, 1e-5);
      assertClose(v, x.v, `exp_avg_sq ${x.name}`, 1e-7, 1e-5);
    }
    opt.dispose();
    ps.forEach((x) => x.t.dispose());

    // state() order: group by group, parameter by parameter, exp_avg before exp_avg_sq.
    function order(key: string): number {
      const name = key.slice(key.indexOf('.') + 1);
      const g = ps.filter((x) => x.wd !== 0).some((x) => x.name === name) ? 0 : 1;
      const i = groups[g].params.findIndex(([n]) => n === name);
      return g * 1000 + i * 2 + (key.startsWith('exp_avg_sq') ? 1 : 0);
    }
  }
});

interface Fixture {
  shapes: Record<string, number[]>;
  weight_decay: Record<string, number>;
  lr_scale: Record<string, number>;
  schedule: E.LrSchedule;
  max_grad_norm: number;
  init: Record<string, number[]>;
  steps: { lr: number; grads: Record<string, number[]>; norm: number; params: Record<string, number[]> }[];
  state: Record<string, number[]>;
}

t('AdamW matches torch.optim.AdamW with clip_grad_norm_ and a warmup lr (fixture)', async () => {
  const fx: Fixture = JSON.parse(readFileSync(new URL('./fixtures/optim-adamw.json', import.meta.url), 'utf8'));
  const names = Object.keys(fx.shapes);
  const ts = new Map(names.map((k) => {
    const x = E.fromArray(Float32Array.from(fx.init[k]), fx.shapes[k]).keep();
    x.requiresGrad = true;
    return [k, x];
  }));
  const decay = names.filter((k) => fx.weight_decay[k] !== 0);
  const noDecay = names.filter((k) => fx.weight_decay[k] === 0);
  const opt = new E.AdamW([
    { params: decay.map((k) => [k, ts.get(k)!]), weightDecay: fx.weight_decay[decay[0]] },
    { params: noDecay.map((k) => [k, ts.get(k)!]), weightDecay: 0, lrScale: fx.lr_scale[noDecay[0]] },
  ], fx.schedule, { maxGradNorm: fx.max_grad_norm });
  let clipped = 0;
  for (const [s, step] of fx.steps.entries()) {
    assertClose([opt.lr], [step.lr], `lr step ${s}`, 0, 1e-15);
    for (const k of names) ts.get(k)!.grad = E.fromArray(Float32Array.from(step.grads[k]), fx.shapes[k]).keep();
    opt.step();
    opt.zeroGrad();
    if (step.norm > fx.max_grad_norm) clipped++;
    const [st, ...got] = await E.toArrays([opt.clipState, ...names.map((k) => ts.get(k)!)]);
    assertClose([st[0]], [step.norm], `grad norm step ${s}`, 0, 1e-5);
    // Both sides are f32 with the same operation order; the update's rounding budget as above.
    const { atol, rtol } = tol(s + 1, 0.02);
    names.forEach((k, i) => assertClose(got[i], step.params[k], `torch step ${s} ${k}`, atol, rtol));
  }
  assert.ok(clipped > 0 && clipped < fx.steps.length, `fixture exercises clipping in some steps only (${clipped})`);
  const st = new Map(opt.state());
  for (const [key, want] of Object.entries(fx.state)) {
    const [got] = await E.toArrays([st.get(key)!]);
    assertClose(got, want, `torch ${key}`, 1e-7, 1e-5);
  }
  opt.dispose();
  ts.forEach((x) => x.dispose());
});

/** A small model's params, a fresh AdamW over them, and per-step gradients from a fixed seed. */
function setup(kind: 'adamw' | 'sgd') {
  const shapes: [string, number[]][] = [['w', [6, 10]], ['b', [6]], ['w2', [3, 7]]];
  const ps = shapes.map(([n, s], k) => {
    const x = E.fromArray(randArray(s.reduce((a, b) => a * b, 1), 7 + k), s).keep();
    x.requiresGrad = true;
    return [n, x] as [string, E.Tensor];
  });
  const schedule = { baseLr: 0.05, warmupIters: 4, warmupFactor: 0.2 };
  const opt: E.Optimizer = kind === 'adamw' ? new E.AdamW(E.defaultGroups(ps, 0.05), schedule, { maxGradNorm: 2 }) : new E.SGD(E.defaultGroups(ps, 0.05), schedule, { momentum: 0.9, maxGradNorm: 2 });
  const step = (s: number) => {
    ps.forEach(([, x], k) => { x.grad = E.fromArray(randArray(x.size, 500 + 10 * s + k, -1, 1), x.shape).keep(); });
    opt.step();
    opt.zeroGrad();
  };
  return { ps, opt, step };
}

async function saved(opt: E.Optimizer): Promise<E.SavedOptimizerState> {
  const st = opt.state();
  const data = await E.toArrays(st.map(([, x]) => x));
  return new Map(st.map(([n, x], i) => [n, { shape: x.shape, data: data[i] as Float32Array }]));
}

for (const kind of ['adamw', 'sgd'] as const) {
  t(`${kind}: exact resume (6 steps == 3 steps, state() to host, fresh optimizer, loadState, iteration = 3, 3 steps)`, async () => {
    const a = setup(kind);
    for (let s = 0; s < 6; s++) a.step(s);
    const wantP = await E.toArrays(a.ps.map(([, x]) => x));
    const wantS = await saved(a.opt);

    const b = setup(kind);
    for (let s = 0; s < 3; s++) b.step(s);
    const mid = await saved(b.opt);
    const pMid = await E.toArrays(b.ps.map(([, x]) => x));
    b.opt.dispose();
    b.ps.forEach(([, x]) => x.dispose());

    const c = setup(kind);
    assert.is(c.opt.kind, kind);
    c.ps.forEach(([, x], k) => E.runtime().write(x.buffer, 0, pMid[k]));
    c.opt.loadState(mid);
    c.opt.iteration = 3;
    for (let s = 3; s < 6; s++) c.step(s);
    const gotP = await E.toArrays(c.ps.map(([, x]) => x));
    const gotS = await saved(c.opt);
    c.ps.forEach(([n], k) => assert.equal(Array.from(gotP[k]), Array.from(wantP[k]), `param ${n} bit-identical`));
    assert.equal([...gotS.keys()], [...wantS.keys()]);
    for (const [n, s] of wantS) assert.equal(Array.from(gotS.get(n)!.data), Array.from(s.data), `state ${n} bit-identical`);
    assert.ok(wantS.size === (kind === 'adamw' ? 6 : 3), `state entries ${[...wantS.keys()]}`);
    for (const o of [a, c]) {
      o.opt.dispose();
      o.ps.forEach(([, x]) => x.dispose());
    }
  });
}

t('loadState rejects entries of another optimizer, unknown params, partial state and wrong shapes', () => {
  const { ps, opt } = setup('adamw');
  const f = (n: number) => ({ shape: [n], data: new Float32Array(n) });
  const w = { shape: [6, 10], data: new Float32Array(60) };
  const cases: [E.SavedOptimizerState, string][] = [
    [new Map([['momentum.w', w]]), "unexpected entry 'momentum.w'"],
    [new Map([['exp_avg.nope', w]]), "unexpected entry 'exp_avg.nope'"],
    [new Map([['exp_avg.w', w]]), 'has exp_avg but not exp_avg_sq'],
    [new Map([['exp_avg.b', f(5)], ['exp_avg_sq.b', f(5)]]), 'saved shape [5] != parameter [6]'],
  ];
  for (const [m, want] of cases) {
    let msg = '';
    try { opt.loadState(m); } catch (e) { msg = (e as Error).message; }
    assert.ok(msg.includes(want) && msg.startsWith('AdamW.loadState'), `${want}: got '${msg}'`);
  }
  opt.dispose();
  ps.forEach(([, x]) => x.dispose());
});

t('AdamW steps record no host sync', async () => {
  const rt = E.runtime();
  const { ps, opt, step } = setup('adamw');
  await rt.sync();
  const syncs0 = rt.stats.hostSyncs;
  for (let s = 0; s < 4; s++) E.tidy(() => step(s));
  assert.is(rt.stats.hostSyncs, syncs0, 'no host syncs inside optimizer steps');
  opt.dispose();
  ps.forEach(([, x]) => x.dispose());
});

t('a grad that is an offset view (concat backward) updates from its own elements', async () => {
  for (const kind of ['adamw', 'sgd'] as const) {
    const pv = randArray(8, 1);
    const qv = randArray(8, 2);
    const wv = randArray(16, 3);
    const p = E.fromArray(pv, [8]).keep();
    const q = E.fromArray(qv, [8]).keep();
    p.requiresGrad = q.requiresGrad = true;
    const w = E.fromArray(wv, [16]).keep();
    E.tidy(() => E.backward(E.sum(E.mul(E.concat([p, q], 0), w))));
    const opt: E.Optimizer = kind === 'adamw' ? new E.AdamW([{ params: [['p', p], ['q', q]], weightDecay: 0 }], { baseLr: 0.1 }) : new E.SGD([{ params: [['p', p], ['q', q]], weightDecay: 0 }], { baseLr: 0.1 });
    opt.step();
    const [gp, gq] = await E.toArrays([p, q]);
    // d(sum(concat·w))/dq = w[8:16]; AdamW's first step moves by lr·sign(g) (up to eps), SGD by lr·g.
    const want = (v: Float64Array, g: ArrayLike<number>) => Array.from(v, (x, i) => x - 0.1 * (kind === 'adamw' ? Math.sign(g[i]) : g[i]));
    assertClose(gp, want(pv, wv.subarray(0, 8)), `${kind} p`, 1e-6, 1e-5);
    assertClose(gq, want(qv, wv.subarray(8, 16)), `${kind} q`, 1e-6, 1e-5);
    opt.dispose();
    [p, q, w].forEach((x) => x.dispose());
  }
});

t.run();
