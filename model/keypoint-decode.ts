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
 * 'torch-f32' (default) takes the pruned argmax (argmaxPruned); 'f64' resizes whole maps.
 */
export function heatmapsToKeypoints(logits: Float32Array, R: number, K: number, S: number, boxesXyxy: Float32Array, opts: { arith?: BicubicArith; fullMaps?: boolean } = {}): { keypoints: Float32Array; scores: Float32Array } {
  if (logits.length !== R * K * S * S) throw new Error(`heatmapsToKeypoints: logits has ${logits.length} values, [R, K, S, S] = [${R}, ${K}, ${S}, ${S}] needs ${R * K * S * S}`);
  if (boxesXyxy.length !== R * 4) throw new Error(`heatmapsToKeypoints: boxesXyxy has ${boxesXyxy.length} values, R = ${R} needs ${R * 4}`);
  const keypoints = new Float32Array(R * K * 3), scores = new Float32Array(R * K);
  const full = opts.fullMaps || (opts.arith ?? 'torch-f32') !== 'torch-f32';
  const best = { index: 0, value: 0 };
  for (let r = 0; r < R; r++) {
    const [x1, y1, x2, y2] = boxesXyxy.subarray(4 * r, 4 * r + 4);
    const w = Math.max(f(x2 - x1), 1), h = Math.max(f(y2 - y1), 1);
    const outW = Math.ceil(w), outH = Math.ceil(h);
    const wCorr = f(w / outW), hCorr = f(h / outH);
    // one set of taps per RoI, shared by its K maps
    const ax = full ? null : axisTiles(S, outW), ay = full ? null : axisTiles(S, outH);
    for (let k = 0; k < K; k++) {
      const off = (r * K + k) * S * S;
      if (full) argmaxFull(logits, off, S, outH, outW, opts.arith, best);
      else argmaxPruned(logits, off, S, ay!, ax!, best);
      const xi = best.index % outW, yi = (best.index - xi) / outW;
      const o = r * K + k;
      keypoints[3 * o] = f(f(f(xi + 0.5) * wCorr) + x1);
      keypoints[3 * o + 1] = f(f(f(yi + 0.5) * hCorr) + y1);
      keypoints[3 * o + 2] = 1;
      scores[o] = best.value;
    }
  }
  return { keypoints, scores };
}

/** argmax (first maximum, row-major) and value of the whole resized map. */
function argmaxFull(src: Float32Array, offset: number, S: number, outH: number, outW: number, arith: BicubicArith | undefined, best: { index: number; value: number }): void {
  const map = bicubicResize(src, offset, S, outH, outW, arith);
  best.index = 0;
  for (let i = 1; i < map.length; i++) if (map[i] > map[best.index]) best.index = i;
  best.value = map[best.index];
}

// ---- pruned argmax ----------------------------------------------------------------------------
// The argmax of one upsampled map without resizing all of it (whole maps cost ~0.7 s per batch of
// 8 shapes images on 2 cores once boxes reach ~120 px). Outputs are cut into KP_TILE×KP_TILE tiles;
// a tile's pixels read logits only inside one clamped source window (max Mx, min Mn). Any pixel's
// value is Σ a_ij v_ij with a_ij = wy_i·wx_j, Σ a_ij = Σwy·Σwx ≈ 1, so
//   value ≤ Mx·Σwy·Σwx + (Mx − Mn)·Σ_{a_ij<0} |a_ij|,  Σ_{a<0}|a| ≤ Py·Nx + Ny·Px
// (P, N: sums of the positive and negated negative weights of one output index). Adding the float32
// rounding of the emulated sums (4 roundings per chain, two chains deep: < 2e-6·max|v|, taken as
// 1e-5) gives a bound U per tile. Tiles with U < the best value found so far hold neither the
// maximum nor a tie and are skipped; the others are evaluated with the same float32/FMA arithmetic
// as bicubicResize, and ties go to the lowest row-major index, which is bicubicResize's first
// maximum. The tile with the largest Mx goes first, to start with a high best value. Maps with a
// non-finite logit take the full resize.

/** One axis of a resize: ATen's taps and weights, tiles of outputs, positive/negative weight sums. */
export interface AxisTiles {
  out: number;
  taps: Int32Array; weights: Float32Array;
  /** Tile q covers outputs q·TILE .. min(out, (q+1)·TILE) − 1; their taps lie in lo[q] .. hi[q]. */
  lo: Int32Array; hi: Int32Array; tiles: number;
  /** Max over outputs of Σ positive weights, Σ |negative weights|, |Σ w − 1|. */
  pMax: number; nMax: number; sumErr: number;
}

/**
 * Output pixels per tile along each axis. Bounds per tile cost a pass over the logits (S·tiles·window);
 * per 4-tap run (one tile per source index) they cost as much as resizing maps near S×S (the usual
 * box size), 8 costs a fifth of that and still skips all but the peak's tiles on trained heatmaps.
 */
export const KP_TILE = 8;

export function axisTiles(S: number, out: number): AxisTiles {
  const { taps, weights } = bicubicTaps(S, out);
  const tiles = Math.ceil(out / KP_TILE);
  const lo = new Int32Array(tiles), hi = new Int32Array(tiles);
  // taps are non-decreasing in the output index, so a tile's span is its first and last output's
  for (let q = 0; q < tiles; q++) { lo[q] = taps[4 * q * KP_TILE]; hi[q] = taps[4 * Math.min(out - 1, (q + 1) * KP_TILE - 1) + 3]; }
  let pMax = 0, nMax = 0, sumErr = 0;
  for (let i = 0; i < out; i++) {
    let p = 0, n = 0;
    for (let k = 0; k < 4; k++) { const wk = weights[4 * i + k]; if (wk > 0) p += wk; else n -= wk; }
    pMax = Math.max(pMax, p); nMax = Math.max(nMax, n); sumErr = Math.max(sumErr, Math.abs(p - n - 1));
  }
  return { out, taps, weights, lo, hi, tiles, pMax, nMax, sumErr };
}

// scratch reused across maps: one tile's horizontal pass, tile bounds
let hv = new Float64Array(0);
let tileMax = new Float64Array(0), tileMin = new Float64Array(0), rowMax = new Float64Array(0), rowMin = new Float64Array(0);

/**
 * argmax and value of bicubicResize(src, offset, S, ay.out, ax.out) (torch-f32), first maximum in
 * row-major order, written into `best` (index = y·outW + x).
 */
export function argmaxPruned(src: Float32Array, offset: number, S: number, ay: AxisTiles, ax: AxisTiles, best: { index: number; value: number }): void {
  const outW = ax.out, outH = ay.out;
  let maxAbs = 0;
  for (let i = offset; i < offset + S * S; i++) {
    const v = src[i];
    if (!Number.isFinite(v)) return argmaxFull(src, offset, S, outH, outW, undefined, best);
    if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
  }
  if (hv.length < S * KP_TILE) hv = new Float64Array(S * KP_TILE);
  const nx = ax.tiles, ny = ay.tiles;
  if (rowMax.length < S * nx) { rowMax = new Float64Array(S * nx); rowMin = new Float64Array(S * nx); }
  if (tileMax.length < ny * nx) { tileMax = new Float64Array(ny * nx); tileMin = new Float64Array(ny * nx); }
  // window max/min: along x per source row, then along y
  for (let sy = 0; sy < S; sy++) {
    const row = offset + sy * S;
    for (let q = 0; q < nx; q++) {
      let mx = -Infinity, mn = Infinity;
      for (let c = ax.lo[q]; c <= ax.hi[q]; c++) { const v = src[row + c]; if (v > mx) mx = v; if (v < mn) mn = v; }
      rowMax[sy * nx + q] = mx; rowMin[sy * nx + q] = mn;
    }
  }
  let seed = 0;
  for (let p = 0; p < ny; p++) {
    for (let q = 0; q < nx; q++) {
      let mx = -Infinity, mn = Infinity;
      for (let sy = ay.lo[p]; sy <= ay.hi[p]; sy++) { const a = rowMax[sy * nx + q], b = rowMin[sy * nx + q]; if (a > mx) mx = a; if (b < mn) mn = b; }
      tileMax[p * nx + q] = mx; tileMin[p * nx + q] = mn;
      if (mx > tileMax[seed]) seed = p * nx + q;
    }
  }
  const negW = ay.pMax * ax.nMax + ay.nMax * ax.pMax;
  const sumTol = ay.sumErr + ax.sumErr + ay.sumErr * ax.sumErr;
  const slack = 1e-5 * maxAbs;
  best.index = -1; best.value = -Infinity;
  const tX = ax.taps, wX = ax.weights, tY = ay.taps, wY = ay.weights;
  const evalTile = (c: number) => {
    const p = (c / nx) | 0, q = c - p * nx;
    const x0 = q * KP_TILE, xEnd = Math.min(outW, x0 + KP_TILE), yEnd = Math.min(outH, (p + 1) * KP_TILE);
    const lo = ay.lo[p];
    // rows of bicubicResize for the window's source rows and this tile's columns (recomputed where tiles overlap)
    for (let sy = lo; sy <= ay.hi[p]; sy++) {
      const row = offset + sy * S, at = (sy - lo) * KP_TILE - x0;
      for (let x = x0, k = 4 * x0; x < xEnd; x++, k += 4) {
        hv[at + x] = fmaf(src[row + tX[k + 3]], wX[k + 3], fmaf(src[row + tX[k + 2]], wX[k + 2], fmaf(src[row + tX[k]], wX[k], f(src[row + tX[k + 1]] * wX[k + 1]))));
      }
    }
    for (let y = p * KP_TILE, k = 4 * y; y < yEnd; y++, k += 4) {
      const a = (tY[k] - lo) * KP_TILE - x0, b = (tY[k + 1] - lo) * KP_TILE - x0, cc = (tY[k + 2] - lo) * KP_TILE - x0, d = (tY[k + 3] - lo) * KP_TILE - x0;
      const w0 = wY[k], w1 = wY[k + 1], w2 = wY[k + 2], w3 = wY[k + 3];
      for (let x = x0; x < xEnd; x++) {
        const v = fmaf(hv[d + x], w3, fmaf(hv[cc + x], w2, fmaf(hv[a + x], w0, f(hv[b + x] * w1))));
        const i = y * outW + x;
        if (v > best.value || (v === best.value && i < best.index)) { best.value = v; best.index = i; }
      }
    }
  };
  evalTile(seed);
  for (let c = 0; c < ny * nx; c++) {
    if (c === seed) continue;
    const mx = tileMax[c];
    const bound = mx + Math.abs(mx) * sumTol + (mx - tileMin[c]) * negW + slack;
    if (bound >= best.value) evalTile(c);
  }
}
