// Mask paste for inference: torchvision 0.14 roi_heads.paste_masks_in_image(masks, boxes, img_shape,
// padding=1) thresholded at > 0.5, bit-packed. Source semantics (roi_heads.py):
//   expand_masks: zero-pad the M×M mask to P×P, P = M+2; scale = float(P)/M (Python double)
//   expand_boxes: w_half = (x2-x1)·0.5, x_c = (x2+x1)·0.5, w_half *= scale (each a float32 op),
//                 box = x_c ∓ w_half, then .to(int64): truncation toward zero
//   paste_mask_in_image: w = max(int(x2-x1+1), 1), h likewise; F.interpolate(bilinear,
//                 align_corners=False) of the padded mask to (h, w); pasted into rows
//                 max(y1,0)..min(y2+1,H) and columns likewise.
// ATen 1.13 upsample_bilinear2d (UpSample.h compute_source_index_and_lambda): ratio =
// float(P)/out (float32 division), source index in double: r = ratio·(i+0.5) − 0.5, r < 0 → 0,
// i0 = trunc(r), i1 = i0 + (i0 < P−1), λ1 = float(r − i0), λ0 = 1 − λ1 (float32); the value is the
// row-0 blend times λy0 plus the row-1 blend times λy1.
// torchvision raises (negative slice stops) for some boxes entirely outside the image; the pasted
// region is empty there, and here the mask is all zeros.
// Two kernels: a per-RoI setup (integer box, exact float32 ratios) and one thread per
// (RoI, 32-pixel word, 8 output rows) that writes every word of out [R, Hmax, ceil(Wmax/32)].
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;

/** Words of one bit-packed output row. */
export const pasteWordsPerRow = (wmax: number) => cdiv(wmax, 32);

/** float(M + 2) / M as torchvision's Python double, rounded to float32 when it scales a float32 tensor. */
export const pasteBoxScale = (M: number) => Math.fround((M + 2) / M);

// Correctly rounded float32 a / b for integers a < 2^24, 1 <= b < 2^31 by long division (WGSL's
// f32 division may be off by 2.5 ulp; ATen divides in float32, correctly rounded).
const DIV_ROUND = `
fn divRoundF32(a: u32, b: u32) -> f32 {
  var m = a / b; var rem = a % b; var e = 0;
  for (var k = 0; k < 64 && m < 0x1000000u; k++) {
    rem = rem * 2u; m = m * 2u; e = e - 1;
    if (rem >= b) { m = m + 1u; rem = rem - b; }
  }
  let roundBit = m & 1u;
  m = m >> 1u; e = e + 1;
  if (roundBit == 1u && (rem != 0u || (m & 1u) == 1u)) { m = m + 1u; }
  return ldexp(f32(m), e);
}`;

/**
 * Per RoI: params[2r] = (x1, y1, x2, y2) integer expanded box, params[2r+1] = (bits of float32
 * P/w, bits of P/h, H, W). Bindings: boxes [R,4] f32, sizes [R,2] i32, params [2R] vec4i.
 */
export function pasteSetupLaunch(R: number, M: number): Launch {
  return {
    key: 'paste:setup',
    build: () => ({
      uniforms: [['n', 'u32'], ['P', 'u32'], ['scale', 'f32'], ['zero', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> boxes: array<vec4f>;
@group(0) @binding(1) var<storage, read> sizes: array<vec2i>;
@group(0) @binding(2) var<storage, read_write> params: array<vec4i>;
${WG_LINEAR}${DIV_ROUND}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wgLinear(wid, nwg) * ${WG}u + lid;
  if (r >= u.n) { return; }
  let b = boxes[r];
  let wh = (b.z - b.x) * 0.5; let hh = (b.w - b.y) * 0.5;
  let xc = (b.z + b.x) * 0.5; let yc = (b.w + b.y) * 0.5;
  // torch rounds w_half * scale to float32 before subtracting it; OR-ing a runtime zero into the
  // bits keeps a compiler from fusing the two into one fma (another rounding, another truncation)
  let ws = bitcast<f32>(bitcast<u32>(wh * u.scale) | u.zero);
  let hs = bitcast<f32>(bitcast<u32>(hh * u.scale) | u.zero);
  // WGSL f32 -> i32 truncates toward zero, as .to(int64)
  let x1 = i32(xc - ws); let x2 = i32(xc + ws);
  let y1 = i32(yc - hs); let y2 = i32(yc + hs);
  let w = max(x2 - x1 + 1, 1); let h = max(y2 - y1 + 1, 1);
  let sz = sizes[r];
  params[2u * r] = vec4i(x1, y1, x2, y2);
  params[2u * r + 1u] = vec4i(bitcast<i32>(divRoundF32(u.P, u32(w))), bitcast<i32>(divRoundF32(u.P, u32(h))), sz.x, sz.y);
}`,
    }),
    uniforms: [R, M + 2, pasteBoxScale(M), 0],
    grid: grid1d(cdiv(R, WG)),
  };
}

// ATen's bilinear source index, computed in double there: ratio·(i+0.5) − 0.5 is exact in double.
// Here ratio = hi + lo with hi its top 11 significant bits: hi·(i+0.5) is exact in float32 for
// i < 4096, and so is that minus 0.5 (P <= 32, ratio >= 2^-8); lo·(i+0.5) < 2^-10 of the total
// rounds once, so λ1 = float(r − i0) is exact or one float32 ulp off (beyond those bounds, a few).
// On 400 random detections (7.7 M pixels) this differs from the float64 reference in 0 pixels; a
// plain float32 ratio·(i+0.5) − 0.5 in 1 (soft value 0.5 + 1.7e-8).
const TAPS = `
struct Tap { i0: i32, i1: i32, l0: f32, l1: f32 }
fn bilinearTap(ratioBits: u32, i: i32, inSize: i32) -> Tap {
  let hi = bitcast<f32>(ratioBits & 0xFFFFE000u);
  let lo = bitcast<f32>(ratioBits) - hi;
  let x = f32(i) + 0.5;
  let a = hi * x - 0.5;
  let p = lo * x;
  let fa = floor(a); let fr = a - fa;
  var t: Tap;
  if (p >= 1.0 - fr) { t.i0 = i32(fa) + 1; t.l1 = (fr - 1.0) + p; } else { t.i0 = i32(fa); t.l1 = fr + p; }
  // r < 0 clamps to 0
  if (t.i0 < 0) { t.i0 = 0; t.l1 = 0.0; }
  t.i1 = t.i0 + select(0, 1, t.i0 < inSize - 1);
  t.l0 = 1.0 - t.l1;
  return t;
}`;

// Rows per thread: lavapipe's per-thread cost (index decode, parameter loads) is large; with 100
// masks into 480x640 (min of 15 runs, same process, load average 8): 1 row 37 ms, 4 rows 15.5,
// 8 rows 13.7, 16 rows 12.8. 8 keeps twice the threads of 16 for real GPUs.
const ROWS = 8;

/**
 * out[r, y, k] bit b = pixel (y, 32k + b) of detection r's pasted mask > 0.5. Bindings: probs
 * [R, M, M] f32, params (from pasteSetupLaunch), out [R, Hmax, ceil(Wmax/32)] u32. Thread (r, k, yq)
 * writes rows yq, yq + hq, ... (hq = ceil(Hmax / ROWS)): neighbouring lanes take neighbouring
 * rows of one word, so inside a box they share the column loop's bounds.
 */
export function pasteLaunch(R: number, M: number, hmax: number, wmax: number): Launch {
  const words = pasteWordsPerRow(wmax);
  const hq = cdiv(hmax, ROWS);
  const n = R * hq * words;
  return {
    key: 'paste:main',
    build: () => ({
      uniforms: [['n', 'u32'], ['hmax', 'u32'], ['hq', 'u32'], ['words', 'u32'], ['M', 'i32'], ['wmax', 'i32']],
      code: `
@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> params: array<vec4i>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
${WG_LINEAR}${TAPS}
// padded mask (zero border of 1): padded (py, px) is probs (py-1, px-1)
fn padded(base: i32, py: i32, px: i32) -> f32 {
  let inside = py >= 1 && py <= u.M && px >= 1 && px <= u.M;
  let v = probs[u32(select(0, base + (py - 1) * u.M + px - 1, inside))];
  return select(0.0, v, inside);
}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let yq = i % u.hq; let k = (i / u.hq) % u.words; let r = i / (u.words * u.hq);
  let bx = params[2u * r]; let q = params[2u * r + 1u];
  let y0 = max(bx.y, 0); let yEnd = min(bx.w + 1, q.z);
  let x0 = max(max(bx.x, 0), i32(k) * 32); let xEnd = min(min(bx.z + 1, min(q.w, u.wmax)), i32(k) * 32 + 32);
  let P = u.M + 2;
  let base = i32(r) * u.M * u.M;
  for (var j = 0u; j < ${ROWS}u; j++) {
    let y = i32(j * u.hq + yq);
    if (y >= i32(u.hmax)) { break; }
    var word = 0u;
    if (y >= y0 && y < yEnd && x0 < xEnd) {
      let ty = bilinearTap(bitcast<u32>(q.y), y - bx.y, P);
      for (var x = x0; x < xEnd; x++) {
        let tx = bilinearTap(bitcast<u32>(q.x), x - bx.x, P);
        let t0 = padded(base, ty.i0, tx.i0) * tx.l0 + padded(base, ty.i0, tx.i1) * tx.l1;
        let t1 = padded(base, ty.i1, tx.i0) * tx.l0 + padded(base, ty.i1, tx.i1) * tx.l1;
        if (t0 * ty.l0 + t1 * ty.l1 > 0.5) { word = word | (1u << u32(x - i32(k) * 32)); }
      }
    }
    out[(r * u.hmax + u32(y)) * u.words + k] = word;
  }
}`,
    }),
    uniforms: [n, hmax, hq, words, M, wmax],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- float64 reference ------------------------------------------------------------------------

/** torchvision expand_boxes in float32 arithmetic + .to(int64): [R*4] (x1, y1, x2, y2). */
export function refPasteIntBoxes(boxesXyxy: ArrayLike<number>, R: number, M: number): Int32Array {
  const f = Math.fround, s = pasteBoxScale(M);
  const out = new Int32Array(R * 4);
  for (let r = 0; r < R; r++) {
    const [x1, y1, x2, y2] = [0, 1, 2, 3].map((k) => f(boxesXyxy[4 * r + k]));
    const ws = f(f(f(x2 - x1) * 0.5) * s), hs = f(f(f(y2 - y1) * 0.5) * s);
    const xc = f(f(x2 + x1) * 0.5), yc = f(f(y2 + y1) * 0.5);
    out.set([Math.trunc(f(xc - ws)), Math.trunc(f(yc - hs)), Math.trunc(f(xc + ws)), Math.trunc(f(yc + hs))], 4 * r);
  }
  return out;
}

/** ATen's bilinear taps (align_corners=False) from inSize to outSize: i0, i1 and float32 λ0, λ1 per output index. */
export function refBilinearTaps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; l0: Float64Array; l1: Float64Array } {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), l0 = new Float64Array(outSize), l1 = new Float64Array(outSize);
  const ratio = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (outSize === inSize) { i0[i] = i; i1[i] = i; l0[i] = 1; l1[i] = 0; continue; }
    const r = Math.max(ratio * (i + 0.5) - 0.5, 0); // exact in double, as ATen computes it
    i0[i] = Math.trunc(r);
    i1[i] = i0[i] + (i0[i] < inSize - 1 ? 1 : 0);
    l1[i] = Math.fround(r - i0[i]);
    l0[i] = Math.fround(1 - l1[i]);
  }
  return { i0, i1, l0, l1 };
}

/**
 * Soft pasted masks [R, hmax, wmax] (0 outside each detection's pasted region and image): taps and
 * weights as ATen computes them (float32), the blend in float64.
 */
export function refPasteSoft(probs: ArrayLike<number>, boxesXyxy: ArrayLike<number>, sizes: ArrayLike<number>, R: number, M: number, hmax: number, wmax: number): Float64Array {
  const P = M + 2;
  const ib = refPasteIntBoxes(boxesXyxy, R, M);
  const out = new Float64Array(R * hmax * wmax);
  for (let r = 0; r < R; r++) {
    const [x1, y1, x2, y2] = ib.subarray(4 * r, 4 * r + 4);
    const H = sizes[2 * r], W = sizes[2 * r + 1];
    const w = Math.max(x2 - x1 + 1, 1), h = Math.max(y2 - y1 + 1, 1);
    const tx = refBilinearTaps(P, w), ty = refBilinearTaps(P, h);
    const pad = (py: number, px: number) => (py >= 1 && py <= M && px >= 1 && px <= M ? probs[r * M * M + (py - 1) * M + px - 1] : 0);
    for (let y = Math.max(y1, 0); y < Math.min(y2 + 1, H, hmax); y++) {
      const ry = y - y1;
      for (let x = Math.max(x1, 0); x < Math.min(x2 + 1, W, wmax); x++) {
        const rx = x - x1;
        const row = (py: number) => pad(py, tx.i0[rx]) * tx.l0[rx] + pad(py, tx.i1[rx]) * tx.l1[rx];
        out[(r * hmax + y) * wmax + x] = row(ty.i0[ry]) * ty.l0[ry] + row(ty.i1[ry]) * ty.l1[ry];
      }
    }
  }
  return out;
}

/** Bit-packs soft masks [R, hmax, wmax] at > threshold into [R, hmax, ceil(wmax/32)] words. */
export function packMaskRows(soft: ArrayLike<number>, R: number, hmax: number, wmax: number, threshold = 0.5): Uint32Array {
  const words = pasteWordsPerRow(wmax);
  const out = new Uint32Array(R * hmax * words);
  for (let ry = 0; ry < R * hmax; ry++) {
    for (let x = 0; x < wmax; x++) if (soft[ry * wmax + x] > threshold) out[ry * words + (x >> 5)] |= 1 << (x & 31);
  }
  return out;
}

/** torchvision paste_masks_in_image > 0.5, bit-packed: [R, hmax, ceil(wmax/32)] u32. */
export function refPasteMasks(probs: ArrayLike<number>, boxesXyxy: ArrayLike<number>, sizes: ArrayLike<number>, R: number, M: number, hmax: number, wmax: number): Uint32Array {
  return packMaskRows(refPasteSoft(probs, boxesXyxy, sizes, R, M, hmax, wmax), R, hmax, wmax);
}
