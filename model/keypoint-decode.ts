// Keypoint decoding on the CPU, after the single readback at the end of inference: torchvision 0.14
// roi_heads.heatmaps_to_keypoints. Per RoI: widths = max(x2 − x1, 1), heights likewise (float32),
// bicubic F.interpolate(align_corners=False) of its [K, S, S] logits to (ceil(h), ceil(w)), argmax
// over each flattened map (first maximum), x = (x_int + 0.5)·(w / ceil(w)) + x1, y likewise,
// score = the interpolated value there; the third keypoint column is 1.
//
// The interpolation reproduces Debian's torch 1.13.1 CPU kernel bit for bit (AVX2 build, GCC 12
// with FMA contraction), because the argmax of near-flat maps is decided by float32 rounding:
// float64 sums of the same weights put 2 of the 34 fixture keypoints (14 flat or near-flat maps)
// elsewhere (test/model-keypoint-decode.test.ts counts them). Established with one-hot probes against
// F.interpolate (all 340 weight columns of 10 size pairs, and every value of random and constant
// maps, equal):
//  - ratio = float(S) / out (float32); source index in double r = ratio·(i + 0.5) − 0.5 (exact),
//    i = floor(r), t = float(r − i); taps clamp(i − 1 + k, 0, S − 1), k = 0..3;
//  - weights (A = −0.75), float32 with fma where GCC contracted:
//      near(x) = ((A+2)x − (A+3))·x·x + 1:  p = fma(1.25, x, −2.25); p·x (rounded); ·x + 1 (two roundings)
//      far(x)  = ((A·x − 5A)·x + 8A)·x − 4A: p = fma(−0.75, x, 3.75); p = fma(p, x, −6); p·x + 3 (two roundings)
//      w = [far(t + 1), near(t), near(1 − t), far((1 − t) + 1)];
//  - each 4-tap sum (along x per source row, then along y) is o = v1·w1; o = fma(v0, w0, o);
//    o = fma(v2, w2, o); o = fma(v3, w3, o).

const f = Math.fround;

/** float32 fma(a, b, c) of float32 inputs, correctly rounded (the product is exact in double). */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f(s);
  if (r === s) return r;
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb); // s + e = p + c exactly (TwoSum)
  if (e === 0) return r;
  // s itself was rounded: only a float32 midpoint can round the wrong way
  const r2 = 2 * s - r;
  if (f(r2) !== r2) return r;
  return (e > 0) === (r2 > r) ? r2 : r;
}

const near = (x: number) => f(f(f(fmaf(1.25, x, -2.25) * x) * x) + 1);
const far = (x: number) => f(f(fmaf(fmaf(-0.75, x, 3.75), x, -6) * x) + 3);

/** ATen's bicubic taps from inSize to outSize: taps [outSize·4] and float32 weights [outSize·4]. */
export function bicubicTaps(inSize: number, outSize: number): { taps: Int32Array; weights: Float32Array } {
  const taps = new Int32Array(outSize * 4), weights = new Float32Array(outSize * 4);
  const ratio = f(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    const r = ratio * (i + 0.5) - 0.5;
    const i0 = Math.floor(r);
    const t = f(r - i0);
    const u = f(1 - t);
    weights.set([far(f(t + 1)), near(t), near(u), far(f(u + 1))], 4 * i);
    for (let k = 0; k < 4; k++) taps[4 * i + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
  }
  return { taps, weights };
}

export type BicubicArith = 'torch-f32' | 'f64';

/**
 * F.interpolate(mode='bicubic', align_corners=False) of one [S, S] map (at `offset` in `src`) to
 * [outH, outW]. 'torch-f32' reproduces ATen's float32 arithmetic; 'f64' sums the same weights in
 * float64 (kept to measure what the emulation buys).
 */
export function bicubicResize(src: Float32Array, offset: number, S: number, outH: number, outW: number, arith: BicubicArith = 'torch-f32'): Float32Array | Float64Array {
  const tx = bicubicTaps(S, outW), ty = bicubicTaps(S, outH);
  const rows = new Float64Array(S * outW); // every source row resampled along x
  const out = arith === 'f64' ? new Float64Array(outH * outW) : new Float32Array(outH * outW);
  const exact = arith === 'torch-f32';
  const tX = tx.taps, wX = tx.weights, tY = ty.taps, wY = ty.weights;
  for (let sy = 0; sy < S; sy++) {
    const row = offset + sy * S;
    for (let x = 0, k = 0; x < outW; x++, k += 4) {
      const v0 = src[row + tX[k]], v1 = src[row + tX[k + 1]], v2 = src[row + tX[k + 2]], v3 = src[row + tX[k + 3]];
      rows[sy * outW + x] = exact
        ? fmaf(v3, wX[k + 3], fmaf(v2, wX[k + 2], fmaf(v0, wX[k], f(v1 * wX[k + 1]))))
        : v0 * wX[k] + v1 * wX[k + 1] + v2 * wX[k + 2] + v3 * wX[k + 3];
    }
  }
  for (let y = 0, k = 0; y < outH; y++, k += 4) {
    const a = tY[k] * outW, b = tY[k + 1] * outW, c = tY[k + 2] * outW, d = tY[k + 3] * outW;
    const w0 = wY[k], w1 = wY[k + 1], w2 = wY[k + 2], w3 = wY[k + 3];
    for (let x = 0; x < outW; x++) {
      out[y * outW + x] = exact
        ? fmaf(rows[d + x], w3, fmaf(rows[c + x], w2, fmaf(rows[a + x], w0, f(rows[b + x] * w1))))
        : rows[a + x] * w0 + rows[b + x] * w1 + rows[c + x] * w2 + rows[d + x] * w3;
    }
  }
  return out;
}

/**
 * torchvision heatmaps_to_keypoints: logits [R, K, S, S], boxesXyxy [R*4] → keypoints [R*K*3]
 * (x, y, 1 in image pixels) and scores [R*K] (the interpolated logit at the keypoint).
 */
export function heatmapsToKeypoints(logits: Float32Array, R: number, K: number, S: number, boxesXyxy: Float32Array, opts: { arith?: BicubicArith } = {}): { keypoints: Float32Array; scores: Float32Array } {
  if (logits.length !== R * K * S * S) throw new Error(`heatmapsToKeypoints: logits has ${logits.length} values, [R, K, S, S] = [${R}, ${K}, ${S}, ${S}] needs ${R * K * S * S}`);
  if (boxesXyxy.length !== R * 4) throw new Error(`heatmapsToKeypoints: boxesXyxy has ${boxesXyxy.length} values, R = ${R} needs ${R * 4}`);
  const keypoints = new Float32Array(R * K * 3), scores = new Float32Array(R * K);
  for (let r = 0; r < R; r++) {
    const [x1, y1, x2, y2] = boxesXyxy.subarray(4 * r, 4 * r + 4);
    const w = Math.max(f(x2 - x1), 1), h = Math.max(f(y2 - y1), 1);
    const outW = Math.ceil(w), outH = Math.ceil(h);
    const wCorr = f(w / outW), hCorr = f(h / outH);
    for (let k = 0; k < K; k++) {
      const map = bicubicResize(logits, (r * K + k) * S * S, S, outH, outW, opts.arith);
      let best = 0;
      for (let i = 1; i < map.length; i++) if (map[i] > map[best]) best = i;
      const xi = best % outW, yi = (best - xi) / outW;
      const o = r * K + k;
      keypoints[3 * o] = f(f(f(xi + 0.5) * wCorr) + x1);
      keypoints[3 * o + 1] = f(f(f(yi + 0.5) * hCorr) + y1);
      keypoints[3 * o + 2] = 1;
      scores[o] = map[best];
    }
  }
  return { keypoints, scores };
}
