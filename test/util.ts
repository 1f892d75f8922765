// Test helpers: seeded random data, float64 comparison with named failures, output poisoning,
// and central finite differences on float64 reference functions.
import * as assert from 'uvu/assert';
import { mulberry32 } from '../kernels/common.ts';
import { initEngine } from '../engine/runtime.ts';

export { mulberry32 };

/** Engine for GPU tests (created once per process). */
export const gpu = () => initEngine();

/** Random non-zero, non-symmetric values in [lo, hi) from a seeded PRNG. */
export function randArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => {
    const v = lo + (hi - lo) * r();
    return Math.abs(v) < 1e-3 ? v + 0.01 : v;
  });
}

export function randInts(n: number, seed: number, lo: number, hiExclusive: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => lo + Math.floor(r() * (hiExclusive - lo)));
}

/** |got - want| <= atol + rtol·|want| elementwise; the message names the first bad index. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, atol = 1e-5, rtol = 1e-4): void {
  assert.is(got.length, want.length, `${what}: length ${got.length} != ${want.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    const err = Math.abs(g - w) - (atol + rtol * Math.abs(w));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = Number.isNaN(err) ? Infinity : err;
    }
  }
  if (worst >= 0) {
    assert.unreachable(`${what}: index ${worst}: got ${got[worst]}, want ${want[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Central finite differences of a scalar float64 function f at x (step h). */
export function numericGrad(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  const xp = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    const v = xp[i];
    xp[i] = v + h;
    const fp = f(xp);
    xp[i] = v - h;
    const fm = f(xp);
    xp[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Dot product of a float64 vector with weights: turns a tensor-valued reference into a scalar loss. */
export function weighted(y: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * w[i];
  return s;
}

// ---- GPU gradient check against a float64 reference --------------------------------------------
import * as E from '../engine/index.ts';
import { numel, contiguousStrides } from '../kernels/common.ts';

export interface GradInput { shape: number[]; data?: Float64Array; lo?: number; hi?: number; grad?: boolean }

/**
 * Forward: GPU op vs float64 reference. Backward: GPU analytic grads of loss = Σ w·op(x) vs central
 * differences of the same loss on the float64 reference (so the reference path is what the
 * finite differences are taken on).
 */
export async function checkOp(name: string, inputs: GradInput[], gpuFn: (xs: E.Tensor[]) => E.Tensor, refFn: (xs: Float64Array[]) => Float64Array, opts: { seed?: number; atol?: number; rtol?: number; gatol?: number; grtol?: number; h?: number; grad?: boolean } = {}): Promise<void> {
  const seed = opts.seed ?? 7;
  const datas = inputs.map((inp, i) => inp.data ?? randArray(numel(inp.shape), seed * 31 + i, inp.lo ?? -1, inp.hi ?? 1));
  const want = refFn(datas);
  const ts = inputs.map((inp, i) => {
    const t = E.fromArray(Float32Array.from(datas[i]), inp.shape);
    t.requiresGrad = opts.grad !== false && inp.grad !== false;
    return t;
  });
  const y = gpuFn(ts);
  const got = await E.toArray(y);
  assertClose(got, want, `${name} forward`, opts.atol ?? 1e-5, opts.rtol ?? 1e-4);
  if (opts.grad === false) {
    y.dispose();
    ts.forEach((t) => t.dispose());
    return;
  }
  const w = randArray(want.length, seed + 99);
  const wt = E.fromArray(Float32Array.from(w), y.shape);
  const loss = E.sum(E.mul(y, wt));
  E.backward(loss);
  for (let i = 0; i < inputs.length; i++) {
    if (inputs[i].grad === false) continue;
    const num = numericGrad((x) => weighted(refFn(datas.map((d, j) => (j === i ? x : d))), w), datas[i], opts.h ?? 1e-6);
    const g = ts[i].grad;
    if (!g) throw new Error(`${name}: input ${i} got no grad`);
    assertClose(await E.toArray(g), num, `${name} grad of input ${i}`, opts.gatol ?? 1e-4, opts.grtol ?? 1e-3);
  }
  for (const t of [...ts, y, wt, loss]) t.dispose();
}

/** Float64 permute of contiguous data. */
export function refPermute(x: ArrayLike<number>, shape: number[], perm: number[]): Float64Array {
  const outShape = perm.map((p) => shape[p]);
  const st = contiguousStrides(shape);
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      off += (rem % outShape[d]) * st[perm[d]];
      rem = Math.floor(rem / outShape[d]);
    }
    out[i] = x[off];
  }
  return out;
}
