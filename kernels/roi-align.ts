// RoI Align forward with a fixed sampling ratio 1..3 (torchvision's poolers use 2): one thread per
// (16-channel chunk, RoI, bin) as kernels/roi.ts, but the bin is evaluated as separable row x column
// weights over the distinct tap lines, each (line, column) loaded once for all 16 channels.
// Same-process lavapipe measurements (bench/README-detect.md): 17-19% faster than roi.ts's forward
// at 512 RoIs x 256 ch, 7x7 and 14x14, also with large RoIs where no tap is shared (the unrolled
// 16-channel body over a tap loop beats roi.ts's per-channel loop of 16-tap dot products).
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';
import { ALIGN_GEOM, ALIGN_U, alignThreadMain, type RoiAlignParams } from './roi.ts';

const WG = 256;
// 16 channels per thread measured best (8: +7%, 32: +18% at 512 x 256, 7x7)
const CPT = 16;

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
export function roiAlignSepLaunch(p: RoiAlignParams): Launch {
  const sr = p.samplingRatio;
  if (!(Number.isInteger(sr) && sr >= 1 && sr <= 3)) throw new Error(`roiAlign (separable kernel): samplingRatio ${sr}, supports 1..3 (others use roiAlignLaunch)`);
  const CB = cdiv(p.C, CPT);
  const n = p.R * CB * p.PH * p.PW;
  const [yl, yw] = axisLine('y', sr, 'k');
  const [xl, xw] = axisLine('x', sr, 'j');
  return {
    key: `roiAlignSep:sr${sr}`,
    build: () => ({
      uniforms: ALIGN_U,
      code: `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rois: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${WG_LINEAR}${ALIGN_GEOM}
${alignThreadMain(WG, CPT)}
  let cm = c1 - c0 - 1u;
  let H = i32(u.H); let W = i32(u.W);
  let plane = u.H * u.W;
  ${axisPlan('y', sr)}
  ${axisPlan('x', sr)}
  let bOk = geo.b >= 0 && geo.b < i32(u.N);
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
      ${Array.from({ length: CPT }, (_, c) => `a${c} += w * x[o + min(${c}u, cm) * plane];`).join('\n      ')}
    }
  }
  let ostep = u.PH * u.PW;
  let o0 = ((r * u.C + c0) * u.PH + ph) * u.PW + pw;
  ${Array.from({ length: CPT }, (_, c) => `if (${c}u <= cm) { out[o0 + ${c}u * ostep] = a${c}; }`).join('\n  ')}
}`,
    }),
    uniforms: [n, p.C, p.H, p.W, p.PH, p.PW, p.N, p.spatialScale, p.samplingRatio, p.aligned ? 1 : 0, p.R],
    grid: grid1d(cdiv(n, WG)),
  };
}
