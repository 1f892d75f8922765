// numpy / Python numeric behaviour the COCO evaluator depends on bit-for-bit.

/** np.linspace(start, stop, num): start + i*step with step = (stop-start)/(num-1); last = stop. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * numpy's pairwise summation (npy_pairwise_sum, 8-way unrolled, blocks of 128) — the order
 * np.sum / np.mean use on a contiguous float64 array; verified against numpy 1.24 on random data.
 */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [a[start], a[start + 1], a[start + 2], a[start + 3], a[start + 4], a[start + 5], a[start + 6], a[start + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/**
 * np.argsort(-keys, kind='mergesort'): indices by descending key, ties kept in input order
 * (numpy's mergesort is stable; so is V8's Array.prototype.sort).
 */
export function argsortDescStable(keys: ArrayLike<number>, count = keys.length): number[] {
  const idx = new Array<number>(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  idx.sort((i, j) => keys[j] - keys[i]);
  return idx;
}

/** Python '{:0.Nf}'.format(x): like toFixed, but exact binary ties round half to even. */
export function formatFixedPy(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  // A tie at `digits` decimals needs ax = odd / 2^(digits+1) exactly (5^digits divides out).
  const p = 2 ** (digits + 1);
  let s: string;
  if (Number.isInteger(ax * p) && !Number.isInteger(ax * p / 2)) {
    const scaled = ax * 10 ** digits; // exactly n + 0.5
    const lo = Math.floor(scaled);
    const k = lo % 2 === 0 ? lo : lo + 1;
    const str = String(k).padStart(digits + 1, '0');
    s = digits > 0 ? `${str.slice(0, str.length - digits)}.${str.slice(str.length - digits)}` : str;
  } else {
    s = ax.toFixed(digits);
  }
  return neg ? `-${s}` : s;
}
