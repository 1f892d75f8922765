// conv2d input gradient (= convTranspose2d forward) by stride phases: input pixels whose
// (ih mod sh, iw mod sw) equal a phase (ph, pw) receive exactly the taps with
// (ph + padT − kh·dh) ≡ 0 (mod sh) and (pw + padL − kw·dw) ≡ 0 (mod sw), and for those taps
//   oh = ih/sh + (ph + padT − kh·dh)/sh,   ow = iw/sw + (pw + padL − kw·dw)/sw   (exact divisions).
// One dispatch per phase (sh·sw of them, one for stride 1): tap validity is a workgroup-uniform
// branch (no per-pixel divisibility tests, no integer division in the loops), and a pixel's dY
// offset for a tap is a uniform shift of its phase coordinates. Phases with no valid taps write
// zeros. Replaced kernels that tested every tap's divisibility per pixel and channel inside the
// channel loop: 3x3/2 dX ~525 -> ~50 ms, stem 7x7/2 8.5 s -> 0.1 s (../bench/README-conv.md).
import { type Launch, cdiv } from './common.ts';
import type { ConvGeom } from './conv.ts';
import { pickV4Tile } from './conv.ts';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export interface ConvPhase { ph: number; pw: number; Hp: number; Wp: number }

/** The sh·sw phases that hold at least one input pixel. */
export function convPhases(g: ConvGeom): ConvPhase[] {
  const out: ConvPhase[] = [];
  for (let ph = 0; ph < Math.min(g.strideH, g.H); ph++)
    for (let pw = 0; pw < Math.min(g.strideW, g.W); pw++) out.push({ ph, pw, Hp: cdiv(g.H - ph, g.strideH), Wp: cdiv(g.W - pw, g.strideW) });
  return out;
}

/**
 * Input gradient of one stride phase, vec4 over input channels. Bindings: dY [N,Cout,Ho,Wo] (from
 * goff), WtP [G, KH·KW, Cog, Cig4] vec4 (weight with taps outermost and input channels innermost,
 * zero-padded to Cig4·4 channels), dX [N,Cin,H,W] (only this phase's pixels written). Rows are
 * the phase's pixels (workgroup id: dY loads and tap bounds are uniform scalars), lanes stream
 * input channels of the weight as vec4. The tap loops stay loops (unrolled taps cost lavapipe
 * 6-17 s of compile per pipeline, kernels/conv.ts).
 */
export function convInputGradPhaseLaunch(g: ConvGeom, p: ConvPhase, goff = 0): Launch {
  const Cig = g.Cin / g.groups;
  const Cog = g.Cout / g.groups;
  const Cig4 = cdiv(Cig, 4);
  const { TM, TN, WX } = pickV4Tile(Cig4 * 4, 'MRCNN_CONVDX4_TILE');
  // Narrow channel counts (the RGB stem, depthwise) leave most of an 8-wide SIMD group idle:
  // there, y-lanes take further row blocks (their dY loads become gathers instead of broadcasts).
  const WY = Math.max(1, Math.floor(8 / WX));
  const Q = TN / 4;
  const { KH, KW } = g;
  const rowsTotal = g.N * p.Hp * p.Wp;
  const rowBlocks = cdiv(rowsTotal, TM * WY);
  // Row blocks beyond the 65535 per-dimension grid limit spill into z (shared with groups); the
  // env override lets a test exercise the spill at small sizes.
  const zr = cdiv(rowBlocks, Number(process.env.MRCNN_CONVDX_MAXGRIDY ?? 65535));
  const key = `conv-dxp:k${KH}x${KW}:${TM}x${TN}x${WX}x${WY}`;
  const rows = range(TM);
  const qs = range(Q);
  const build = () => ({
    uniforms: [
      ['N', 'u32'], ['Cin', 'u32'], ['Cout', 'u32'], ['Cig', 'u32'], ['Cog', 'u32'], ['Cig4', 'u32'],
      ['H', 'u32'], ['W', 'u32'], ['Ho', 'u32'], ['Wo', 'u32'], ['HW', 'u32'], ['HoWo', 'u32'],
      ['sh', 'i32'], ['sw', 'i32'], ['dh', 'i32'], ['dw', 'i32'], ['padT', 'i32'], ['padL', 'i32'],
      ['ph', 'u32'], ['pw', 'u32'], ['Wp', 'u32'], ['HpWp', 'u32'], ['rows', 'u32'], ['zr', 'u32'], ['goff', 'u32'],
    ] as [string, 'u32' | 'i32'][],
    code: `
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> WtP: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(${WX}, ${WY}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let grp = wid.z / u.zr;
  let qb = (((wid.z % u.zr) * nwg.y + wid.y) * ${WY}u + lid.y) * ${TM}u;
  let cq = (wid.x * ${WX}u + lid.x) * ${Q}u;
  if (cq >= u.Cig4 || qb >= u.rows) { return; }
  ${qs.map((q) => `let c${q} = min(cq + ${q}u, u.Cig4 - 1u);`).join(' ')}
  ${rows.map((i) => `let q${i} = min(qb + ${i}u, u.rows - 1u); let n${i} = q${i} / u.HpWp; let a${i} = i32((q${i} % u.HpWp) / u.Wp); let b${i} = i32(q${i} % u.Wp);
  let gb${i} = u.goff + (n${i} * u.Cout + grp * u.Cog) * u.HoWo;`).join('\n  ')}
  ${rows.map((i) => qs.map((q) => `var acc${i}_${q} = vec4<f32>();`).join(' ')).join(' ')}
  for (var kh = 0; kh < ${KH}; kh++) {
    let th = i32(u.ph) + u.padT - kh * u.dh;
    if (th % u.sh != 0) { continue; }
    let oho = th / u.sh;
    ${rows.map((i) => `let oh${i} = a${i} + oho; let rok${i} = u32(oh${i}) < u.Ho;`).join(' ')}
    for (var kw = 0; kw < ${KW}; kw++) {
      let tw = i32(u.pw) + u.padL - kw * u.dw;
      if (tw % u.sw != 0) { continue; }
      let owo = tw / u.sw;
      ${rows.map((i) => `let ow${i} = b${i} + owo; let ok${i} = rok${i} && u32(ow${i}) < u.Wo; let go${i} = gb${i} + select(0u, u32(oh${i}) * u.Wo + u32(ow${i}), ok${i});`).join('\n      ')}
      var kb = (grp * ${KH * KW}u + u32(kh * ${KW} + kw)) * u.Cog * u.Cig4;
      var gc = 0u;
      for (var co = 0u; co < u.Cog; co++) {
        ${qs.map((q) => `let w${q} = WtP[kb + c${q}];`).join(' ')}
        ${rows.map((i) => `{ let a = select(0.0, G[go${i} + gc], ok${i}); ${qs.map((q) => `acc${i}_${q} = fma(vec4<f32>(a), w${q}, acc${i}_${q});`).join(' ')} }`).join('\n        ')}
        kb += u.Cig4;
        gc += u.HoWo;
      }
    }
  }
  ${rows.map((i) => `if (qb + ${i}u < u.rows) {
    let xo${i} = (n${i} * u.Cin + grp * u.Cig) * u.HW + (u32(a${i}) * u32(u.sh) + u.ph) * u.W + u32(b${i}) * u32(u.sw) + u.pw;
    ${qs.map((q) => `if (cq + ${q}u < u.Cig4) { ${range(4).map((c) => `if ((cq + ${q}u) * 4u + ${c}u < u.Cig) { DX[xo${i} + ((cq + ${q}u) * 4u + ${c}u) * u.HW] = acc${i}_${q}[${c}]; }`).join(' ')} }`).join('\n    ')}
  }`).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [
      g.N, g.Cin, g.Cout, Cig, Cog, Cig4, g.H, g.W, g.Ho, g.Wo, g.H * g.W, g.Ho * g.Wo,
      g.strideH, g.strideW, g.dilH, g.dilW, g.padT, g.padL,
      p.ph, p.pw, p.Wp, p.Hp * p.Wp, rowsTotal, zr, goff,
    ],
    grid: [cdiv(Cig4, Q * WX), cdiv(rowBlocks, zr), g.groups * zr],
  };
}
