// RoI Align backward as a gather (no atomics, deterministic): every feature pixel sums, over the
// RoIs that can reach it, Σ_bins Wy[ph]·Wx[pw]·g[r, c, ph, pw] / count, where Wy[ph] is the total
// bilinear weight the samples of bin row ph put on the pixel's row (torchvision's clamps; a
// sample outside [-1, size] on either axis drops out of both, so the weights stay separable).
// Two passes: per 16×16 pixel tile (and image, and FPN level), the list of RoIs whose samples can
// reach it, in RoI order; then one thread per (pixel, 32 channels) walks its tile's list. The sum
// order is fixed, so unlike torchvision's CUDA atomicAdd the gradient is bitwise reproducible.
// Layouts: g [R, C, PH, PW]; rois [R, 5]; gx [N, C, H, W] (every element written).
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';
import { ALIGN_GEOM, refAlignSamples } from './roi-align.ts';

const TILE = 16; // pixels per tile side; lanes (8 on lavapipe) are 8 pixels of one tile row
const CPT = 32; // channels per thread: the per-(pixel, RoI) geometry and weights feed 32 loads (lavapipe, full 7x7: 16 -> 462 ms, 32 -> 279, 64 -> 291)
const LIST_WG = 64;

export interface AlignBwdParams {
  N: number; C: number; H: number; W: number; R: number; PH: number; PW: number;
  spatialScale: number; samplingRatio: number; aligned: boolean;
  /** FPN: only RoIs that torchvision's LevelMapper sends to `level` (0 = kMin) are listed. */
  levelOf?: { level: number; levels: number; kMin: number; canonicalScale: number; canonicalLevel: number };
}

const BWD_U: [string, 'u32' | 'i32' | 'f32'][] = [
  ['C', 'u32'], ['H', 'u32'], ['W', 'u32'], ['PH', 'u32'], ['PW', 'u32'], ['N', 'u32'], ['scale', 'f32'], ['sr', 'i32'], ['aligned', 'u32'],
  ['R', 'u32'], ['TX', 'u32'], ['TY', 'u32'], ['CB', 'u32'], ['lvl', 'i32'], ['kMin', 'f32'], ['kMax', 'f32'], ['s0', 'f32'], ['k0', 'f32'],
];
const bwdUniforms = (p: AlignBwdParams) => {
  const lv = p.levelOf;
  return [p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale, p.samplingRatio, p.aligned ? 1 : 0, p.R, cdiv(p.W, TILE), cdiv(p.H, TILE), cdiv(p.C, CPT),
    lv ? lv.level : -1, lv?.kMin ?? 0, lv ? lv.kMin + lv.levels - 1 : 0, lv?.canonicalScale ?? 224, lv?.canonicalLevel ?? 4];
};

/** i32 words of the tile lists: per (image, tile) a count then up to R RoI indices. */
export const alignTileListWords = (p: AlignBwdParams) => p.N * cdiv(p.H, TILE) * cdiv(p.W, TILE) * (p.R + 1);

// Lines of one axis that a RoI's samples can reach: a sample at y reaches floor(y) and floor(y)+1,
// clamped onto [0, size-1]; samples lie strictly between start and start + P·bin.
const SPAN = `
fn spanHits(first: i32, last: i32, start: f32, bin: f32, P: u32, size: i32) -> bool {
  let e = start + f32(P) * bin;
  let lo = min(start, e); let hi = max(start, e);
  if (hi < -1.0 || lo > f32(size)) { return false; }
  return f32(last) >= floor(lo) - 1.0 && f32(first) <= floor(hi) + 2.0;
}`;

/** Pass 1: one thread per (image, tile) lists, in RoI order, the RoIs that can reach the tile. Bindings rois, lists. */
export function alignTileListsLaunch(p: AlignBwdParams): Launch {
  const tiles = p.N * cdiv(p.H, TILE) * cdiv(p.W, TILE);
  return {
    key: 'roiAlignBwd:lists',
    build: () => ({
      uniforms: BWD_U,
      code: `
@group(0) @binding(0) var<storage, read> rois: array<f32>;
@group(0) @binding(1) var<storage, read_write> lists: array<i32>;
${WG_LINEAR}${ALIGN_GEOM}${SPAN}
@compute @workgroup_size(${LIST_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${LIST_WG}u + lid;
  if (t >= u.TX * u.TY * u.N) { return; }
  let tx = t % u.TX; let ty = (t / u.TX) % u.TY; let n = i32(t / (u.TX * u.TY));
  let lb = t * (u.R + 1u);
  var cnt = 0u;
  for (var r = 0u; r < u.R; r++) {
    if (u.lvl >= 0) {
      // torchvision LevelMapper (as the forward): area without +1, eps 1e-6 after the log2
      let area = (rois[r * 5u + 3u] - rois[r * 5u + 1u]) * (rois[r * 5u + 4u] - rois[r * 5u + 2u]);
      let k = clamp(floor(u.k0 + log2(sqrt(area) / u.s0) + 1e-6), u.kMin, u.kMax);
      if (i32(k - u.kMin) != u.lvl) { continue; }
    }
    let geo = alignGeom(r, u.scale, u.sr, u.aligned, u.PH, u.PW);
    // adaptive grids of an empty RoI (aligned=true, size <= 0) have no samples: output 0, no grad
    if (geo.b != n || geo.gh <= 0 || geo.gw <= 0) { continue; }
    if (!spanHits(i32(ty * ${TILE}u), i32(ty * ${TILE}u) + ${TILE - 1}, geo.sy, geo.bh, u.PH, i32(u.H))) { continue; }
    if (!spanHits(i32(tx * ${TILE}u), i32(tx * ${TILE}u) + ${TILE - 1}, geo.sx, geo.bw, u.PW, i32(u.W))) { continue; }
    lists[lb + 1u + cnt] = i32(r);
    cnt++;
  }
  lists[lb] = i32(cnt);
}`,
    }),
    uniforms: bwdUniforms(p),
    grid: grid1d(cdiv(tiles, LIST_WG)),
  };
}

// A sample at y reaches line floor(y) and floor(y)+1 (with torchvision's clamps) or nothing when
// y is outside [-1, size]; its weight on line pix, as the forward computes it.
const SAMPLE_W = `
fn sampleW(pix: i32, size: i32, y: f32) -> f32 {
  if (y < -1.0 || y > f32(size)) { return 0.0; }
  var yy = max(y, 0.0);
  var yl = i32(yy); var yh = yl + 1;
  if (yl >= size - 1) { yl = size - 1; yh = size - 1; yy = f32(yl); }
  let ly = yy - f32(yl);
  return select(0.0, 1.0 - ly, yl == pix) + select(0.0, ly, yh == pix);
}`;

/**
 * axisWeight(pix, size, start, bin, grid, p): Σ over the grid samples of bin p (one axis) of their
 * weight on line pix (sample positions in torchvision's f32 expression order, as the forward).
 * A fixed sampling ratio 1..3 is unrolled (sr in the pipeline key); adaptive grids loop only the
 * samples within 1 px of pix (a 1×1 output of a large RoI has hundreds per bin).
 */
function axisWeightFn(sr: number): string {
  if (sr > 0) {
    return `${SAMPLE_W}
fn axisWeight(pix: i32, size: i32, start: f32, bin: f32, grid: i32, p: i32) -> f32 {
  let b0 = start + f32(p) * bin;
  return ${Array.from({ length: sr }, (_, i) => `sampleW(pix, size, b0 + ${(i + 0.5).toFixed(1)} * bin / ${sr}.0)`).join(' + ')};
}`;
  }
  return `${SAMPLE_W}
fn axisWeight(pix: i32, size: i32, start: f32, bin: f32, grid: i32, p: i32) -> f32 {
  var lo = 0; var hi = grid - 1;
  let step = bin / f32(grid);
  if (step > 1e-4) {
    let t = (f32(pix) - start - f32(p) * bin) / step - 0.5;
    let m = 1.0 / step + 1.0;
    lo = max(lo, i32(clamp(floor(t - m), -1.0, f32(grid))));
    hi = min(hi, i32(clamp(ceil(t + m), -1.0, f32(grid))));
  }
  var w = 0.0;
  for (var i = lo; i <= hi; i++) { w += sampleW(pix, size, start + f32(p) * bin + (f32(i) + 0.5) * bin / f32(grid)); }
  return w;
}`;
}

// Bins [x, y] of one axis whose samples may lie within 1 px of line pix (empty when x > y). A
// sample sits at least half a step (0.5/grid bins) inside its bin, so a quarter step of slack
// covers f32 rounding; below a 0.01 px step (only aligned=true RoIs under ~0.05 px) every bin.
const BIN_RANGE = `
fn binRange(pix: i32, start: f32, bin: f32, grid: i32, P: i32) -> vec2i {
  if (!(bin / f32(grid) > 0.01)) { return vec2i(0, P - 1); }
  let slack = 0.25 / f32(grid);
  let lo = floor((f32(pix) - 1.0 - start) / bin - slack);
  let hi = floor((f32(pix) + 1.0 - start) / bin + slack);
  return vec2i(i32(clamp(lo, 0.0, f32(P))), i32(clamp(hi, -1.0, f32(P - 1))));
}`;

/**
 * Pass 2: gx [N, C, H, W] = Σ over the tile's listed RoIs. One workgroup per (tile, 32-channel chunk),
 * chunk outermost. Bindings g, rois, lists, gx.
 */
export function alignGatherBwdLaunch(p: AlignBwdParams): Launch {
  const sr = p.samplingRatio > 0 && p.samplingRatio <= 3 ? p.samplingRatio : 0;
  const wgs = p.N * cdiv(p.H, TILE) * cdiv(p.W, TILE) * cdiv(p.C, CPT);
  const acc = Array.from({ length: CPT }, (_, k) => k);
  return {
    key: `roiAlignBwd:gather:sr${sr}`,
    build: () => ({
      uniforms: BWD_U,
      code: `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read> lists: array<i32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;
${WG_LINEAR}${ALIGN_GEOM}${axisWeightFn(sr)}${BIN_RANGE}
@compute @workgroup_size(${TILE * TILE}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tiles = u.TX * u.TY * u.N;
  let wi = wgLinear(wid, nwg);
  let t = wi % tiles; let cb = wi / tiles;
  let tx = t % u.TX; let ty = (t / u.TX) % u.TY; let n = t / (u.TX * u.TY);
  let xp = i32(tx * ${TILE}u + lid % ${TILE}u); let yp = i32(ty * ${TILE}u + lid / ${TILE}u);
  let H = i32(u.H); let W = i32(u.W);
  if (cb >= u.CB || xp >= W || yp >= H) { return; }
  let c0 = cb * ${CPT}u; let cm = min(u.C - c0, ${CPT}u) - 1u;
  let S = u.PH * u.PW;
  ${acc.map((k) => `var a${k} = 0.0;`).join(' ')}
  let lb = t * (u.R + 1u);
  let cnt = u32(lists[lb]);
  for (var j = 0u; j < cnt; j++) {
    let r = u32(lists[lb + 1u + j]);
    let geo = alignGeom(r, u.scale, u.sr, u.aligned, u.PH, u.PW);
    let by = binRange(yp, geo.sy, geo.bh, geo.gh, i32(u.PH));
    let bx = binRange(xp, geo.sx, geo.bw, geo.gw, i32(u.PW));
    for (var ph = by.x; ph <= by.y; ph++) {
      let wy = axisWeight(yp, H, geo.sy, geo.bh, geo.gh, ph);
      if (wy == 0.0) { continue; }
      for (var pw = bx.x; pw <= bx.y; pw++) {
        let wx = axisWeight(xp, W, geo.sx, geo.bw, geo.gw, pw);
        if (wx == 0.0) { continue; }
        let w = wy * wx / geo.cnt;
        let gb = (r * u.C + c0) * S + u32(ph) * u.PW + u32(pw);
        ${acc.map((k) => `a${k} += w * g[gb + ${k === 0 ? '0u' : `min(${k}u, cm)`} * S];`).join('\n        ')}
      }
    }
  }
  let plane = u.H * u.W;
  let o = ((n * u.C + c0) * u.H + u32(yp)) * u.W + u32(xp);
  ${acc.map((k) => `if (${k}u <= cm) { gx[o + ${k}u * plane] = a${k}; }`).join('\n  ')}
}`,
    }),
    uniforms: bwdUniforms(p),
    grid: grid1d(wgs),
  };
}

// ---- float64 reference ----------------------------------------------------------------------------

/** Adjoint of refRoiAlign (torchvision roi_align_backward in float64): g [R, C, PH, PW] → gx [N, C, H, W]. */
export function refRoiAlignBackward(g: ArrayLike<number>, xShape: number[], rois: ArrayLike<number>, R: number, o: { PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean }): Float64Array {
  const [N, C, H, W] = xShape;
  const S = o.PH * o.PW;
  const gx = new Float64Array(N * C * H * W);
  refAlignSamples(xShape, rois, R, o, (r, b, bin, taps, cnt) => {
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * H * W;
      const v = g[(r * C + c) * S + bin] / cnt;
      for (const [t, w] of taps) gx[base + t] += w * v;
    }
  });
  return gx;
}
