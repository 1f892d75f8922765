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
