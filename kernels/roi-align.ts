// RoI Align (torchvision roi_align, and MultiScaleRoIAlign for FPN levels): forward and backward.
// One thread per (16-channel chunk, RoI, bin): the bin geometry and its bilinear taps are computed
// once and reused for 16 channels. The forward with a fixed sampling ratio 1..3 (torchvision's
// poolers use 2) walks the bin as separable row x column weights over its distinct tap lines (each
// (line, column) loaded once for all 16 channels); adaptive ratios loop samples. The backward is a
// gather in kernels/roi-align-bwd.ts. Same-process lavapipe measurements: bench/README-detect.md.
// Layouts: features [N, C, H, W] contiguous; rois [R, 5] = (batch index, x1, y1, x2, y2) in image px.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;
// Channels per thread (lavapipe: per-output geometry costs ~8x the loads it feeds; 16 measured
// best for the separable forward, 8: +7%, 32: +18% at 512 x 256, 7x7)
const CPT = 16;

// torchvision roi_align bilinear taps: a sample outside [-1, H] x [-1, W] is zero; otherwise the
// coordinate clamps to >= 0 and a low index at the border collapses onto size-1.
const ALIGN_TAPS = `
struct Taps { o: vec4i, w: vec4f, ok: bool }
fn alignTaps(H: i32, W: i32, yIn: f32, xIn: f32) -> Taps {
  var t: Taps;
  if (yIn < -1.0 || yIn > f32(H) || xIn < -1.0 || xIn > f32(W)) { t.ok = false; return t; }
  var y = max(yIn, 0.0);
  var x = max(xIn, 0.0);
  var yl = i32(y); var xl = i32(x); var yh: i32; var xh: i32;
  if (yl >= H - 1) { yl = H - 1; yh = H - 1; y = f32(yl); } else { yh = yl + 1; }
  if (xl >= W - 1) { xl = W - 1; xh = W - 1; x = f32(xl); } else { xh = xl + 1; }
  let ly = y - f32(yl); let lx = x - f32(xl);
  let hy = 1.0 - ly; let hx = 1.0 - lx;
  t.ok = true;
  t.o = vec4i(yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh);
  t.w = vec4f(hy * hx, hy * lx, ly * hx, ly * lx);
  return t;
}
`;

// The per-RoI bin geometry of torchvision roi_align (f32 arithmetic in its order).
export const ALIGN_GEOM = `
struct Geom { b: i32, sy: f32, sx: f32, bh: f32, bw: f32, gh: i32, gw: i32, cnt: f32 }
fn alignGeom(r: u32, scale: f32, sr: i32, aligned: u32, PH: u32, PW: u32) -> Geom {
  var g: Geom;
  let off = select(0.0, 0.5, aligned != 0u);
  g.b = i32(rois[r * 5u]);
  g.sx = rois[r * 5u + 1u] * scale - off;
  g.sy = rois[r * 5u + 2u] * scale - off;
  var rw = rois[r * 5u + 3u] * scale - off - g.sx;
  var rh = rois[r * 5u + 4u] * scale - off - g.sy;
  // torchvision: aligned=false clamps the roi to at least 1x1 map cells (legacy behaviour)
  if (aligned == 0u) { rw = max(rw, 1.0); rh = max(rh, 1.0); }
  g.bh = rh / f32(PH); g.bw = rw / f32(PW);
  g.gh = select(i32(ceil(rh / f32(PH))), sr, sr > 0);
  g.gw = select(i32(ceil(rw / f32(PW))), sr, sr > 0);
  g.cnt = f32(max(g.gh * g.gw, 1));
  return g;
}`;

// bindings of the single-level forward kernels
const FWD_BINDS = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`;

export interface RoiAlignParams { N: number; C: number; H: number; W: number; R: number; PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean }

/**
 * Entry of the single-level RoI Align kernels (roiAlignLaunch, roiAlignSepLaunch): one thread per
 * (cpt-channel chunk, RoI, bin), chunk outermost so consecutive workgroups share one chunk's planes
 * across RoIs (cache); yields pw, ph, r, cb, the bin geometry `geo` and channels [c0, c1).
 */
const alignThreadMain = (wg: number, cpt: number) => `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${wg}u + lid;
  if (i >= u.n) { return; }
  let pw = i % u.PW; let ph = (i / u.PW) % u.PH; let r = (i / (u.PW * u.PH)) % u.R; let cb = i / (u.PW * u.PH * u.R);
  let geo = alignGeom(r, u.scale, u.sr, u.aligned, u.PH, u.PW);
  let c0 = cb * ${cpt}u; let c1 = min(c0 + ${cpt}u, u.C);`;
// A fixed sampling ratio <= 3 takes the separable walk, with its sr samples per axis unrolled
// (sr is in the key); adaptive grids (unbounded sample counts) loop samples per chunk.
const maxStaticSr = 3;

const ALIGN_U: [string, 'u32' | 'i32' | 'f32'][] = [['n', 'u32'], ['C', 'u32'], ['H', 'u32'], ['W', 'u32'], ['PH', 'u32'], ['PW', 'u32'], ['N', 'u32'], ['scale', 'f32'], ['sr', 'i32'], ['aligned', 'u32'], ['R', 'u32']];

/**
 * The adaptive-ratio forward of one thread (a sample loop per bin, reading feature array `src`):
 * expects geo, H, W, ph, pw, r, c0, c1, plane, base0 and writes out at outIdx.
 */
function alignBody(src: string, outIdx: string): string {
  return `
  var acc: array<f32, ${CPT}>;
  for (var iy = 0; iy < geo.gh; iy++) {
    let y = geo.sy + f32(ph) * geo.bh + (f32(iy) + 0.5) * geo.bh / f32(geo.gh);
    for (var ix = 0; ix < geo.gw; ix++) {
      let xx = geo.sx + f32(pw) * geo.bw + (f32(ix) + 0.5) * geo.bw / f32(geo.gw);
      let t = alignTaps(H, W, y, xx);
      if (t.ok) {
        for (var c = c0; c < c1; c++) {
          let base = base0 + (c - c0) * plane;
          acc[c - c0] += t.w.x * ${src}[base + u32(t.o.x)] + t.w.y * ${src}[base + u32(t.o.y)] + t.w.z * ${src}[base + u32(t.o.z)] + t.w.w * ${src}[base + u32(t.o.w)];
        }
      }
    }
  }
  for (var c = c0; c < c1; c++) { out[${outIdx}] = acc[c - c0] / geo.cnt; }`;
}

/**
 * RoI Align forward over x [N, C, H, W] and rois [R, 5] into out [R, C, PH, PW] (bindings x, rois,
 * out): a fixed ratio 1..3 takes roiAlignSepLaunch, others loop samples. One thread per
 * (CPT-channel chunk, RoI, bin). The backward is alignGatherBwdLaunch (kernels/roi-align-bwd.ts).
 */
export function roiAlignLaunch(p: RoiAlignParams): Launch {
  const sr = p.samplingRatio > 0 && p.samplingRatio <= maxStaticSr ? p.samplingRatio : 0;
  if (sr > 0) return roiAlignSepLaunch(p);
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.PH * p.PW;
  const outIdx = '((r * u.C + c) * u.PH + ph) * u.PW + pw';
  return {
    key: 'roiAlign:fwd:adaptive',
    build: () => ({
      uniforms: ALIGN_U,
      code: `
${FWD_BINDS}
${WG_LINEAR}${ALIGN_TAPS}${ALIGN_GEOM}
${alignThreadMain(WG, CPT)}
  if (geo.b < 0 || geo.b >= i32(u.N)) {
    for (var c = c0; c < c1; c++) { out[${outIdx}] = 0.0; }
    return;
  }
  let H = i32(u.H); let W = i32(u.W);
  let plane = u.H * u.W;
  let base0 = (u32(geo.b) * u.C + c0) * plane;
  ${alignBody('x', outIdx)}
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale, p.samplingRatio, p.aligned ? 1 : 0, p.R],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- multi-level (FPN) RoI Align -------------------------------------------------------------------

export interface MultiLevelParams { N: number; C: number; R: number; P: number; levels: { H: number; W: number; scale: number }[]; samplingRatio: number; kMin: number; canonicalScale: number; canonicalLevel: number; aligned: boolean }

/**
 * torchvision MultiScaleRoIAlign in one dispatch: each thread maps its RoI to a level with the
 * LevelMapper (k = floor(k0 + log2(sqrt(area)/s0) + 1e-6) clamped to [kMin, kMin+L-1]) and reads
 * that level's buffer (aligned=false as torchvision's poolers; true is Detectron2's ROIAlignV2).
 * Bindings: f0..f{L-1}, rois, out.
 * Threads are ordered channel-chunk outermost as the single-level kernels (lavapipe full bench:
 * 109-114 -> 89-95 ms against RoI outermost). The backward is one gather per level
 * (kernels/roi-align-bwd.ts).
 */
export function multiLevelRoiAlignLaunch(p: MultiLevelParams): Launch {
  const L = p.levels.length;
  if (L < 1 || L > 4) throw new Error(`multiScaleRoiAlign: ${L} levels (1..4 supported)`);
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.P * p.P;
  const sr = p.samplingRatio > 0 && p.samplingRatio <= maxStaticSr ? p.samplingRatio : 0;
  const lv = [0, 1, 2, 3].map((i) => p.levels[Math.min(i, L - 1)]);
  const names = Array.from({ length: L }, (_, l) => `f${l}`);
  const bind = [...names.map((nm, l) => `@group(0) @binding(${l}) var<storage, read> ${nm}: array<f32>;`), `@group(0) @binding(${L}) var<storage, read> rois: array<f32>;`, `@group(0) @binding(${L + 1}) var<storage, read_write> out: array<f32>;`];
  const outIdx = '((r * u.C + c) * u.P + ph) * u.P + pw';
  // forward with a fixed ratio: the separable walk of roiAlignSepLaunch, one copy per level buffer
  const sepFwd = sr > 0;
  const body = (nm: string) => (sepFwd ? sepBody(sr, nm, '((r * u.C + c0) * u.P + ph) * u.P + pw', 'u.P * u.P') : alignBody(nm, outIdx));
  const cases = names.map((nm, l) => `case ${l}u: {${body(nm)}\n  }`).join('\n  ');
  return {
    key: `roiAlignML:fwd:L${L}:sr${sr}`,
    build: () => ({
      uniforms: [['hs', 'vec4u'], ['ws', 'vec4u'], ['scales', 'vec4f'], ['n', 'u32'], ['C', 'u32'], ['P', 'u32'], ['N', 'u32'], ['sr', 'i32'], ['kMin', 'f32'], ['s0', 'f32'], ['k0', 'f32'], ['R', 'u32'], ['aligned', 'u32']],
      code: `
${bind.join('\n')}
${WG_LINEAR}${ALIGN_TAPS}${ALIGN_GEOM}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let pw = i % u.P; let ph = (i / u.P) % u.P; let r = (i / (u.P * u.P)) % u.R; let cb = i / (u.P * u.P * u.R);
  // torchvision LevelMapper: box area without +1, eps 1e-6 added after the log2
  let area = (rois[r * 5u + 3u] - rois[r * 5u + 1u]) * (rois[r * 5u + 4u] - rois[r * 5u + 2u]);
  let k = clamp(floor(u.k0 + log2(sqrt(area) / u.s0) + 1e-6), u.kMin, u.kMin + ${L - 1}.0);
  let lvl = u32(k - u.kMin);
  let H = i32(u.hs[lvl]); let W = i32(u.ws[lvl]);
  let geo = alignGeom(r, u.scales[lvl], u.sr, u.aligned, u.P, u.P);
  let c0 = cb * ${CPT}u; let c1 = min(c0 + ${CPT}u, u.C);
  if (geo.b < 0 || geo.b >= i32(u.N)) {
    for (var c = c0; c < c1; c++) { out[${outIdx}] = 0.0; }
    return;
  }
  let plane = u32(H * W);
  ${sepFwd ? 'let bOk = true;' : 'let base0 = (u32(geo.b) * u.C + c0) * plane;'}
  switch lvl {
  ${cases}
  default: {}
  }
}`,
    }),
    uniforms: [...lv.map((l) => l.H), ...lv.map((l) => l.W), ...lv.map((l) => l.scale), n, p.C, p.P, p.N, p.samplingRatio, p.kMin, p.canonicalScale, p.canonicalLevel, p.R, p.aligned ? 1 : 0],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- separable forward (fixed sampling ratio) ---------------------------------------------------

/**
 * Per-axis taps of a bin (static sr): candidate rows/cols and their bilinear weights (0 for a
 * sample outside [-1, size]), then the loop plan: when the valid taps span at most 2·sr lines,
 * walk that contiguous span (each line loaded once, weights summed per line); else walk the 2·sr
 * candidates. Sample (iy, ix) is valid iff row iy and column ix are, so the bin is separable:
 * Σ_samples bilinear = Σ_rows Σ_cols Wy[row]·Wx[col]·x[row, col].
 */
function axisPlan(ax: 'y' | 'x', sr: number): string {
  const size = ax === 'y' ? 'H' : 'W', s0 = ax === 'y' ? 'geo.sy' : 'geo.sx', b = ax === 'y' ? 'geo.bh' : 'geo.bw', p = ax === 'y' ? 'ph' : 'pw';
  const L: string[] = [];
  for (let i = 0; i < sr; i++) {
    L.push(`var ${ax}v${i} = ${s0} + f32(${p}) * ${b} + ${(i + 0.5).toFixed(1)} * ${b} / ${sr}.0;`);
    L.push(`let ${ax}ok${i} = !(${ax}v${i} < -1.0 || ${ax}v${i} > f32(${size}));`);
    L.push(`${ax}v${i} = max(${ax}v${i}, 0.0);`);
    L.push(`var ${ax}l${i} = i32(${ax}v${i}); var ${ax}h${i} = ${ax}l${i} + 1;`);
    L.push(`if (${ax}l${i} >= ${size} - 1) { ${ax}l${i} = ${size} - 1; ${ax}h${i} = ${size} - 1; ${ax}v${i} = f32(${ax}l${i}); }`);
    L.push(`let ${ax}wh${i} = select(0.0, ${ax}v${i} - f32(${ax}l${i}), ${ax}ok${i}); let ${ax}wl${i} = select(0.0, 1.0 - (${ax}v${i} - f32(${ax}l${i})), ${ax}ok${i});`);
  }
  // valid span (invalid samples excluded); lo > hi when none is valid
  L.push(`var ${ax}lo = ${size}; var ${ax}hi = -1;`);
  for (let i = 0; i < sr; i++) L.push(`if (${ax}ok${i}) { ${ax}lo = min(${ax}lo, ${ax}l${i}); ${ax}hi = max(${ax}hi, ${ax}h${i}); }`);
  L.push(`let ${ax}span = ${ax}hi - ${ax}lo + 1;`);
  L.push(`let ${ax}isSpan = ${ax}span <= ${2 * sr};`);
  L.push(`let ${ax}n = select(${2 * sr}, max(${ax}span, 0), ${ax}isSpan);`);
  return L.join('\n  ');
}
/** WGSL expressions for line k of an axis plan: index and summed weight. */
function axisLine(ax: 'y' | 'x', sr: number, k: string): [string, string] {
  const cands: [string, string][] = [];
  for (let i = 0; i < sr; i++) cands.push([`${ax}l${i}`, `${ax}wl${i}`], [`${ax}h${i}`, `${ax}wh${i}`]);
  let ci = cands[0][0], cw = cands[0][1];
  for (let j = 1; j < cands.length; j++) { ci = `select(${ci}, ${cands[j][0]}, ${k} == ${j})`; cw = `select(${cw}, ${cands[j][1]}, ${k} == ${j})`; }
  const line = `select(${ci}, ${ax}lo + ${k}, ${ax}isSpan)`;
  const sum = cands.map(([li, w]) => `select(0.0, ${w}, ${li} == ${ax}line)`).join(' + ');
  return [line, `select(${cw}, ${sum}, ${ax}isSpan)`];
}

/**
 * Forward RoI Align for samplingRatio 1..3 (bindings x [N, C, H, W], rois [R, 5], out [R, C, PH, PW]).
 * Lanes are consecutive bins of one RoI row, so the per-lane trip counts (lines per axis) are close.
 */
/**
 * The separable tap walk of one thread: expects geo, ph, pw, H, W (i32), plane, c0, c1, bOk (batch
 * index in range) and writes channels [c0, c1) of the bin to out[o0 + c·ostep] from `src`.
 */
function sepBody(sr: number, src: string, o0: string, ostep: string): string {
  const [yl, yw] = axisLine('y', sr, 'k');
  const [xl, xw] = axisLine('x', sr, 'j');
  return `let cm = c1 - c0 - 1u;
  ${axisPlan('y', sr)}
  ${axisPlan('x', sr)}
  let ny = select(0, yn, bOk);
  let base0 = (u32(max(geo.b, 0)) * u.C + c0) * plane;
  let inv = 1.0 / geo.cnt;
  ${Array.from({ length: CPT }, (_, c) => `var a${c} = 0.0;`).join(' ')}
  for (var k = 0; k < ny; k++) {
    let yline = ${yl};
    let wy = (${yw}) * inv;
    let rb = base0 + u32(yline * W);
    for (var j = 0; j < xn; j++) {
      let xline = ${xl};
      let w = wy * (${xw});
      let o = rb + u32(xline);
      ${Array.from({ length: CPT }, (_, c) => `a${c} += w * ${src}[o + min(${c}u, cm) * plane];`).join('\n      ')}
    }
  }
  let ostep = ${ostep};
  let o0 = ${o0};
  ${Array.from({ length: CPT }, (_, c) => `if (${c}u <= cm) { out[o0 + ${c}u * ostep] = a${c}; }`).join('\n  ')}`;
}

/**
 * Forward RoI Align for samplingRatio 1..3 (bindings x [N, C, H, W], rois [R, 5], out [R, C, PH, PW]).
 * Lanes are consecutive bins of one RoI row, so the per-lane trip counts (lines per axis) are close.
 */
export function roiAlignSepLaunch(p: RoiAlignParams): Launch {
  const sr = p.samplingRatio;
  if (!(Number.isInteger(sr) && sr >= 1 && sr <= 3)) throw new Error(`roiAlign (separable kernel): samplingRatio ${sr}, supports 1..3 (others use roiAlignLaunch)`);
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.PH * p.PW;
  return {
    key: `roiAlignSep:sr${sr}`,
    build: () => ({
      uniforms: ALIGN_U,
      code: `
${FWD_BINDS}
${WG_LINEAR}${ALIGN_GEOM}
${alignThreadMain(WG, CPT)}
  let H = i32(u.H); let W = i32(u.W);
  let plane = u.H * u.W;
  let bOk = geo.b >= 0 && geo.b < i32(u.N);
  ${sepBody(sr, 'x', '((r * u.C + c0) * u.PH + ph) * u.PW + pw', 'u.PH * u.PW')}
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale, p.samplingRatio, p.aligned ? 1 : 0, p.R],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- float64 references -----------------------------------------------------------------------------

/** torchvision's bilinear taps in float64: [pixel offset y·W + x, weight] × 4, or null for a sample outside [-1, H] × [-1, W]. */
function refTaps(H: number, W: number, y: number, xx: number): [number, number][] | null {
  if (y < -1 || y > H || xx < -1 || xx > W) return null;
  y = Math.max(y, 0);
  xx = Math.max(xx, 0);
  let yl = Math.floor(y), xl = Math.floor(xx), yh, xh;
  if (yl >= H - 1) { yl = yh = H - 1; y = yl; } else yh = yl + 1;
  if (xl >= W - 1) { xl = xh = W - 1; xx = xl; } else xh = xl + 1;
  const ly = y - yl, lx = xx - xl, hy = 1 - ly, hx = 1 - lx;
  return [[yl * W + xl, hy * hx], [yl * W + xh, hy * lx], [yh * W + xl, ly * hx], [yh * W + xh, ly * lx]];
}

type RefAlignOpts = { PH: number; PW: number; spatialScale: number; samplingRatio: number; aligned: boolean };

/**
 * Visits every in-map sample of every bin of each RoI with a batch index in [0, N) (torchvision
 * roi_align geometry in float64): visit(r, b, bin = ph·PW + pw, taps, count).
 */
export function refAlignSamples(xShape: number[], rois: ArrayLike<number>, R: number, o: RefAlignOpts, visit: (r: number, b: number, bin: number, taps: [number, number][], cnt: number) => void): void {
  const [N, , H, W] = xShape;
  const off = o.aligned ? 0.5 : 0;
  for (let r = 0; r < R; r++) {
    const b = Math.trunc(rois[r * 5]);
    if (b < 0 || b >= N) continue;
    const sx = rois[r * 5 + 1] * o.spatialScale - off, sy = rois[r * 5 + 2] * o.spatialScale - off;
    let rw = rois[r * 5 + 3] * o.spatialScale - off - sx, rh = rois[r * 5 + 4] * o.spatialScale - off - sy;
    if (!o.aligned) { rw = Math.max(rw, 1); rh = Math.max(rh, 1); }
    const bh = rh / o.PH, bw = rw / o.PW;
    const gh = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(rh / o.PH);
    const gw = o.samplingRatio > 0 ? o.samplingRatio : Math.ceil(rw / o.PW);
    const cnt = Math.max(gh * gw, 1);
    for (let ph = 0; ph < o.PH; ph++)
      for (let pw = 0; pw < o.PW; pw++)
        for (let iy = 0; iy < gh; iy++)
          for (let ix = 0; ix < gw; ix++) {
            const taps = refTaps(H, W, sy + ph * bh + ((iy + 0.5) * bh) / gh, sx + pw * bw + ((ix + 0.5) * bw) / gw);
            if (taps) visit(r, b, ph * o.PW + pw, taps, cnt);
          }
  }
}

/** torchvision roi_align (csrc/ops/cpu/roi_align_kernel.cpp semantics) in float64; out-of-range batch index → 0. */
export function refRoiAlign(x: ArrayLike<number>, xShape: number[], rois: ArrayLike<number>, R: number, o: RefAlignOpts): Float64Array {
  const [, C, H, W] = xShape;
  const S = o.PH * o.PW;
  const out = new Float64Array(R * C * S);
  refAlignSamples(xShape, rois, R, o, (r, b, bin, taps, cnt) => {
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * H * W;
      let v = 0;
      for (const [t, w] of taps) v += w * x[base + t];
      out[(r * C + c) * S + bin] += v / cnt;
    }
  });
  return out;
}

/** torchvision LevelMapper in float64: level index (0-based from kMin) of each roi [R, 5]. */
export function refLevels(rois: ArrayLike<number>, R: number, L: number, kMin = 2, s0 = 224, k0 = 4): number[] {
  return Array.from({ length: R }, (_, r) => {
    const area = (rois[r * 5 + 3] - rois[r * 5 + 1]) * (rois[r * 5 + 4] - rois[r * 5 + 2]);
    return Math.min(Math.max(Math.floor(k0 + Math.log2(Math.sqrt(area) / s0) + 1e-6), kMin), kMin + L - 1) - kMin;
  });
}

