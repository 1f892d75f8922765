// conv2d (NCHW, groups, stride, dilation, asymmetric padding) as implicit GEMM on the register
// tile of matmul.ts: every thread owns TM output rows × TN adjacent output columns, rows come
// from the workgroup id only (so weight loads are workgroup-uniform scalars, the lavapipe lesson
// of matmul.ts), columns are gathered from the activation on the fly (no im2col buffer), no
// workgroup memory and no barriers.
//   forward : Y[co, (n,oh,ow)]  = Σ_(ci,kh,kw) W[co,(ci,kh,kw)] · X[n, ci, oh·s−p+kh·d, ...]
//   input-grad (also convTranspose2d forward): by stride phases in ./conv-grad.ts.
//   weight-grad: dW[co, (ci,kh,kw)] = Σ_(n,oh,ow) dY[n,co,oh,ow] · X[n,ci,oh·s−p+kh·d, ...], a GEMM
//             over K = N·Ho·Wo split into S row ranges, partials [G,S,Cog,Kred] then a
//             deterministic reduce over S (tfjs runs one thread per weight looping N·Ho·Wo: the
//             training cliff of ../shared/reference/webgpu-dawn-notes.md §1.6).
// Only the kernel size is baked into the WGSL; stride, dilation, batch, channels and spatial sizes
// are uniforms so changing image sizes never recompiles.
import { type Launch, cdiv } from './common.ts';

export interface ConvGeom {
  N: number; Cin: number; H: number; W: number;
  Cout: number; KH: number; KW: number;
  strideH: number; strideW: number;
  /** Top/left padding (bottom/right only enter through Ho/Wo). */
  padT: number; padL: number;
  dilH: number; dilW: number;
  groups: number;
  Ho: number; Wo: number;
}

/** Output size as torch: floor((H + padT + padB − dil·(K−1) − 1) / stride) + 1. */
export function convOutSize(inPx: number, k: number, stride: number, padLo: number, padHi: number, dil: number): number {
  return Math.floor((inPx + padLo + padHi - dil * (k - 1) - 1) / stride) + 1;
}

export interface ConvTile { TM: number; TN: number; WX: number }

function envTile(name: string): ConvTile | null {
  const e = process.env[name];
  if (!e) return null;
  const [TM, TN, WX] = e.split('x').map(Number);
  return { TM, TN, WX };
}

/** Rows per thread: up to 16 (uniform weight loads amortise the gathered activation loads). */
function pickTile(rows: number, name: string): ConvTile {
  const env = envTile(name);
  if (env) return env;
  const TM = rows >= 16 ? 16 : rows >= 8 ? 8 : rows >= 4 ? 4 : rows >= 2 ? 2 : 1;
  return { TM, TN: 4, WX: 16 };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** TM rows × TN columns of accumulators: vec4 per row when TN is a multiple of 4. */
function accDecl(TM: number, TN: number): string {
  return range(TM).map((i) => range(TN / 4).map((q) => `var acc${i}_${q} = vec4<f32>();`).join(' ')).join(' ');
}
function accFma(TM: number, TN: number, a: (i: number) => string, b: (j: number) => string): string {
  const bq = range(TN / 4).map((q) => `let bq${q} = vec4<f32>(${range(4).map((c) => b(q * 4 + c)).join(', ')});`).join(' ');
  return `{ ${bq}\n${range(TM).map((i) => `{ let a = ${a(i)}; ${range(TN / 4).map((q) => `acc${i}_${q} = fma(vec4<f32>(a), bq${q}, acc${i}_${q});`).join(' ')} }`).join('\n')} }`;
}
const accRef = (i: number, j: number) => `acc${i}_${j >> 2}[${j & 3}]`;

const geomUniforms: [string, 'u32' | 'i32'][] = [
  ['N', 'u32'], ['Cin', 'u32'], ['H', 'u32'], ['W', 'u32'],
  ['Cout', 'u32'], ['Ho', 'u32'], ['Wo', 'u32'], ['Cig', 'u32'],
  ['Cog', 'u32'], ['padT', 'i32'], ['padL', 'i32'], ['xoff', 'u32'],
  ['sh', 'u32'], ['sw', 'u32'], ['dh', 'u32'], ['dw', 'u32'],
];
const geomValues = (g: ConvGeom, xoff: number) => [g.N, g.Cin, g.H, g.W, g.Cout, g.Ho, g.Wo, g.Cin / g.groups, g.Cout / g.groups, g.padT, g.padL, xoff, g.strideH, g.strideW, g.dilH, g.dilW];
// Only the kernel size is baked (tap loops unroll); stride and dilation are uniforms so the many
// conv shapes of a network share a handful of pipelines (cold compiles dominate CI on lavapipe).
// (The key once also carried stride-1 flags for the old input-grad kernels; forward and weight
// grad never used them, so they only duplicated identical pipelines.)
const staticKey = (g: ConvGeom) => `k${g.KH}x${g.KW}`;

export interface ConvEpilogue { bias: boolean; relu: boolean }

/**
 * Forward. Bindings: X [N,Cin,H,W] (contiguous from xoff), Wt [Cout,Cin/G,KH,KW], (Bias [Cout]),
 * Y [N,Cout,Ho,Wo] contiguous. Columns are the merged (n, oh, ow) so small feature maps over
 * many RoIs still fill whole tiles.
 */
export function convForwardLaunch(g: ConvGeom, ep: ConvEpilogue = { bias: false, relu: false }, xoff = 0): Launch {
  const Cog = g.Cout / g.groups;
  const { TM, TN, WX } = pickTile(Cog, 'MRCNN_CONV_TILE');
  const { KH, KW } = g;
  const KHW = KH * KW;
  const P = g.N * g.Ho * g.Wo;
  const key = `conv-fwd:${staticKey(g)}:${TM}x${TN}x${WX}${ep.bias ? ':bias' : ''}${ep.relu ? ':relu' : ''}`;
  const cols = range(TN);
  const rows = range(TM);
  const tap = (kh: string, kwConst: number, khStatic: boolean) => {
    const b = (j: number) => `select(0.0, X[select(0u, xr${j} + u32(iw0_${j} + ${kwConst} * i32(u.dw)), ok${j}_${kwConst})], ok${j}_${kwConst})`;
    return `${cols.map((j) => `let ok${j}_${kwConst} = rok${j} && u32(iw0_${j} + ${kwConst} * i32(u.dw)) < u.W;`).join(' ')}
      ${accFma(TM, TN, (i) => `Wt[wr${i} + wc + ${khStatic ? `${kh}u * ${KW}u` : `${kh} * ${KW}u`} + ${kwConst}u]`, b)}`;
  };
  const rowBlock = (kh: string, khStatic: boolean) => `{
      ${cols.map((j) => `let ih${j} = ih0_${j} + i32(${kh}) * i32(u.dh); let rok${j} = u32(ih${j}) < u.H; let xr${j} = xc${j} + u32(ih${j}) * u.W;`).join('\n      ')}
      ${range(KW).map((kw) => tap(kh, kw, khStatic)).join('\n      ')}
    }`;
  const taps = KHW <= 9 ? range(KH).map((kh) => rowBlock(`${kh}`, true)).join('\n    ') : `for (var kh = 0u; kh < ${KH}u; kh++) ${rowBlock('kh', false)}`;
  const bindings = ['X', 'Wt', ...(ep.bias ? ['Bias'] : [])];
  const build = () => ({
    uniforms: [...geomUniforms, ['P', 'u32'], ['HoWo', 'u32'], ['HW', 'u32']] as [string, 'u32' | 'i32'][],
    code: `
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, read> ${b}: array<f32>;`).join('\n')}
@group(0) @binding(${bindings.length}) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${WX}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let grp = wid.z;
  let m0 = wid.y * ${TM}u;
  let pb = (wid.x * ${WX}u + lid.x) * ${TN}u;
  if (pb >= u.P) { return; }
  ${cols.map((j) => `let p${j} = min(pb + ${j}u, u.P - 1u); let n${j} = p${j} / u.HoWo; let r${j} = p${j} % u.HoWo;
  let ih0_${j} = i32((r${j} / u.Wo) * u.sh) - u.padT; let iw0_${j} = i32((r${j} % u.Wo) * u.sw) - u.padL;
  let xb${j} = u.xoff + (n${j} * u.Cin + grp * u.Cig) * u.HW;`).join('\n  ')}
  ${rows.map((i) => `let wr${i} = (grp * u.Cog + min(m0 + ${i}u, u.Cog - 1u)) * u.Cig * ${KHW}u;`).join('\n  ')}
  ${accDecl(TM, TN)}
  for (var ci = 0u; ci < u.Cig; ci++) {
    let wc = ci * ${KHW}u;
    ${cols.map((j) => `let xc${j} = xb${j} + ci * u.HW;`).join(' ')}
    ${taps}
  }
  ${cols.map((j) => `if (pb + ${j}u < u.P) {
    ${rows.map((i) => `if (m0 + ${i}u < u.Cog) { let co = grp * u.Cog + m0 + ${i}u; var v = ${accRef(i, j)}${ep.bias ? ' + Bias[co]' : ''}; ${ep.relu ? 'v = max(v, 0.0);' : ''} Y[(n${j} * u.Cout + co) * u.HoWo + r${j}] = v; }`).join('\n    ')}
  }`).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [...geomValues(g, xoff), P, g.Ho * g.Wo, g.H * g.W],
    grid: [cdiv(P, TN * WX), cdiv(Cog, TM), g.groups],
  };
}

export interface SplitPlan { splits: number; rowsPerSplit: number }

/**
 * Split-K plan for the weight gradient: enough (tile, split) workgroups to fill the device while
 * each split still streams >= ~2048 (n,oh,ow) positions, and partials stay under 64 MiB.
 */
export function planWeightGrad(g: ConvGeom, targetWorkgroups = Number(process.env.MRCNN_CONVDW_WG ?? 512)): SplitPlan {
  const Cog = g.Cout / g.groups;
  const Kred = (g.Cin / g.groups) * g.KH * g.KW;
  const { TM, TN, WX } = pickTile(Cog, 'MRCNN_CONVDW_TILE');
  const tiles = cdiv(Cog, TM) * cdiv(Kred, TN * WX) * g.groups;
  const rows = g.N * g.Ho;
  const minRows = Math.max(1, Math.ceil(2048 / g.Wo));
  const maxByMem = Math.max(1, Math.floor((64 << 20) / 4 / (g.Cout * Kred)));
  let splits = Math.max(1, Math.min(cdiv(targetWorkgroups, tiles), Math.floor(rows / minRows), maxByMem));
  const rowsPerSplit = cdiv(rows, splits);
  splits = cdiv(rows, rowsPerSplit);
  return { splits, rowsPerSplit };
}

/**
 * Weight-gradient pass 1. Bindings: X [N,Cin,H,W], dY [N,Cout,Ho,Wo], Out: with splits == 1 the
 * weight grad [Cout,Cin/G,KH,KW] itself, else partials [G,S,Cog,Kred] for convWeightGradReduce.
 */
export function convWeightGradLaunch(g: ConvGeom, plan: SplitPlan, xoff = 0): Launch {
  const Cog = g.Cout / g.groups;
  const Cig = g.Cin / g.groups;
  const { TM, TN, WX } = pickTile(Cog, 'MRCNN_CONVDW_TILE');
  const { KH, KW } = g;
  const KHW = KH * KW;
  const Kred = Cig * KHW;
  const key = `conv-dw:${staticKey(g)}:${TM}x${TN}x${WX}`;
  const cols = range(TN);
  const rows = range(TM);
  const build = () => ({
    uniforms: [...geomUniforms, ['Kred', 'u32'], ['S', 'u32'], ['rowsPerSplit', 'u32'], ['HoWo', 'u32'], ['HW', 'u32']] as [string, 'u32' | 'i32'][],
    code: `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(${WX}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let grp = wid.z / u.S;
  let s = wid.z % u.S;
  let m0 = wid.y * ${TM}u;
  let cb = (wid.x * ${WX}u + lid.x) * ${TN}u;
  if (cb >= u.Kred) { return; }
  ${cols.map((j) => `let c${j} = min(cb + ${j}u, u.Kred - 1u); let t${j} = c${j} % ${KHW}u;
  let xb${j} = u.xoff + (grp * u.Cig + c${j} / ${KHW}u) * u.HW; let hoff${j} = i32((t${j} / ${KW}u) * u.dh) - u.padT; let woff${j} = i32((t${j} % ${KW}u) * u.dw) - u.padL;`).join('\n  ')}
  ${rows.map((i) => `let gr${i} = (grp * u.Cog + min(m0 + ${i}u, u.Cog - 1u)) * u.HoWo;`).join('\n  ')}
  ${accDecl(TM, TN)}
  let r0 = s * u.rowsPerSplit;
  let r1 = min(r0 + u.rowsPerSplit, u.N * u.Ho);
  for (var r = r0; r < r1; r++) {
    let n = r / u.Ho;
    let oh = r % u.Ho;
    let gn = n * u.Cout * u.HoWo + oh * u.Wo;
    ${cols.map((j) => `let ih${j} = i32(oh * u.sh) + hoff${j}; let rok${j} = u32(ih${j}) < u.H; let xr${j} = xb${j} + n * u.Cin * u.HW + u32(ih${j}) * u.W;`).join('\n    ')}
    for (var ow = 0u; ow < u.Wo; ow++) {
      ${cols.map((j) => `let iw${j} = i32(ow * u.sw) + woff${j}; let ok${j} = rok${j} && u32(iw${j}) < u.W;`).join(' ')}
      ${accFma(TM, TN, (i) => `G[gr${i} + gn + ow]`, (j) => `select(0.0, X[select(0u, xr${j} + u32(iw${j}), ok${j})], ok${j})`)}
    }
  }
  let ob = (grp * u.S + s) * u.Cog;
  ${cols.map((j) => `if (cb + ${j}u < u.Kred) {
    ${rows.map((i) => `if (m0 + ${i}u < u.Cog) { Out[(ob + m0 + ${i}u) * u.Kred + cb + ${j}u] = ${accRef(i, j)}; }`).join('\n    ')}
  }`).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [...geomValues(g, xoff), Kred, plan.splits, plan.rowsPerSplit, g.Ho * g.Wo, g.H * g.W],
    grid: [cdiv(Kred, TN * WX), cdiv(Cog, TM), g.groups * plan.splits],
  };
}

/** Pass 2: dW[g, e] = Σ_s partials[g, s, e] over e < Cog·Kred, in split order (deterministic). */
export function convWeightGradReduceLaunch(g: ConvGeom, plan: SplitPlan): Launch {
  const per = (g.Cout / g.groups) * (g.Cin / g.groups) * g.KH * g.KW;
  const total = per * g.groups;
  const WG = 256;
  return {
    key: 'conv-dw-reduce',
    build: () => ({
      uniforms: [['per', 'u32'], ['total', 'u32'], ['S', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> Part: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * ${WG}u;
  if (e >= u.total) { return; }
  let grp = e / u.per;
  let base = grp * u.S * u.per + e % u.per;
  var acc = 0.0;
  for (var s = 0u; s < u.S; s++) { acc += Part[base + s * u.per]; }
  Out[e] = acc;
}`,
    }),
    uniforms: [per, total, plan.splits],
    grid: (() => {
      const n = cdiv(total, WG);
      if (n <= 65535) return [n, 1] as [number, number];
      const y = Math.ceil(n / 65535);
      return [Math.ceil(n / y), y] as [number, number];
    })(),
  };
}

// ---- float64 references ------------------------------------------------------------------------

/** x: [N,Cin,H,W], w: [Cout,Cin/G,KH,KW], b: [Cout] | null → [N,Cout,Ho,Wo]. */
export function refConv2d(g: ConvGeom, x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null = null): Float64Array {
  const Cig = g.Cin / g.groups;
  const Cog = g.Cout / g.groups;
  const y = new Float64Array(g.N * g.Cout * g.Ho * g.Wo);
  for (let n = 0; n < g.N; n++)
    for (let co = 0; co < g.Cout; co++) {
      const grp = Math.floor(co / Cog);
      for (let oh = 0; oh < g.Ho; oh++)
        for (let ow = 0; ow < g.Wo; ow++) {
          let s = b ? b[co] : 0;
          for (let ci = 0; ci < Cig; ci++)
            for (let kh = 0; kh < g.KH; kh++) {
              const ih = oh * g.strideH - g.padT + kh * g.dilH;
              if (ih < 0 || ih >= g.H) continue;
              for (let kw = 0; kw < g.KW; kw++) {
                const iw = ow * g.strideW - g.padL + kw * g.dilW;
                if (iw < 0 || iw >= g.W) continue;
                s += w[((co * Cig + ci) * g.KH + kh) * g.KW + kw] * x[((n * g.Cin + grp * Cig + ci) * g.H + ih) * g.W + iw];
              }
            }
          y[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow] = s;
        }
    }
  return y;
}

/** Adjoint of refConv2d in x and in w for upstream gy: the scatter form (independent of the gather kernels). */
export function refConv2dGrads(g: ConvGeom, x: ArrayLike<number>, w: ArrayLike<number>, gy: ArrayLike<number>): { dx: Float64Array; dw: Float64Array } {
  const Cig = g.Cin / g.groups;
  const Cog = g.Cout / g.groups;
  const dx = new Float64Array(g.N * g.Cin * g.H * g.W);
  const dw = new Float64Array(g.Cout * Cig * g.KH * g.KW);
  for (let n = 0; n < g.N; n++)
    for (let co = 0; co < g.Cout; co++) {
      const grp = Math.floor(co / Cog);
      for (let oh = 0; oh < g.Ho; oh++)
        for (let ow = 0; ow < g.Wo; ow++) {
          const gv = gy[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow];
          for (let ci = 0; ci < Cig; ci++)
            for (let kh = 0; kh < g.KH; kh++) {
              const ih = oh * g.strideH - g.padT + kh * g.dilH;
              if (ih < 0 || ih >= g.H) continue;
              for (let kw = 0; kw < g.KW; kw++) {
                const iw = ow * g.strideW - g.padL + kw * g.dilW;
                if (iw < 0 || iw >= g.W) continue;
                const wi = ((co * Cig + ci) * g.KH + kh) * g.KW + kw;
                const xi = ((n * g.Cin + grp * Cig + ci) * g.H + ih) * g.W + iw;
                dx[xi] += w[wi] * gv;
                dw[wi] += x[xi] * gv;
              }
            }
        }
    }
  return { dx, dw };
}

// ---- vec4 variants: activations workgroup-uniform, weights as vec4 along output channels -------
// The matmul-v4 layout of matmul.ts: rows (pixels) come from the workgroup id, so the gathered,
// bounds-checked activation loads are uniform scalars, and each lane streams TN adjacent output
// channels of a pre-transposed weight [G, Kred, Cog] as vec4 (contiguous, coalesced). Needs the
// column channel count % 4 == 0 (every ResNet/FPN/head conv); others take the scalar kernels.

export interface ConvV4Tile { TM: number; TN: number; WX: number }

export function pickV4Tile(cols: number, name: string, subgroups8 = false): ConvV4Tile {
  const env = envTile(name);
  if (env) return env;
  // Subgroup path (3x3 256 at 13x19, batch 2, lavapipe): 32x4x8 23.5 GFLOP/s, 24x8x8 22.8,
  // 16x8x8 21.4, 32x8x8 20.7, 32x16x8 19.8; without subgroups 13.6.
  // WX stays 8 even for narrow layers: every lane of the subgroup must exist to be broadcast from.
  if (subgroups8) return { TM: 32, TN: 4, WX: 8 };
  // Noisy sweeps on 2-core lavapipe (3x3 256 at 13x19, batch 2): 16x16x8 and 32x16x8 ahead of
  // 16x8x16 (6.6-6.8 GFLOP/s) and far ahead of TM 8 or WX 4.
  const TN = cols % 16 === 0 && cols >= 128 ? 16 : cols % 8 === 0 ? 8 : 4;
  const WX = Math.max(1, Math.min(8, Math.floor(cols / TN)));
  return { TM: 16, TN, WX };
}

/**
 * Forward, vec4. Bindings: X [N,Cin,H,W] (from xoff), WtT [G,Kred,Cog] (weight transposed per
 * group), (Bias [Cout]), Y [N,Cout,Ho,Wo]. Needs Cog % 4 == 0.
 */
export function convForwardV4Launch(g: ConvGeom, ep: ConvEpilogue = { bias: false, relu: false }, xoff = 0, subgroups8 = false): Launch {
  const Cog = g.Cout / g.groups;
  if (Cog % 4) throw new Error(`conv2d v4: output channels per group ${Cog} % 4 != 0`);
  const { TM, TN, WX } = pickV4Tile(Cog, 'MRCNN_CONV4_TILE', subgroups8);
  const Q = TN / 4;
  const { KH, KW } = g;
  const KHW = KH * KW;
  const P = g.N * g.Ho * g.Wo;
  // Subgroup path (as matmul-v4): lane l gathers the activation of pixel row 8·grp + l, and
  // subgroupBroadcast hands each row to all lanes: TM/8 gathers per tap instead of TM.
  const sg = subgroups8 && TM % 8 === 0 && WX % 8 === 0;
  const key = `conv-fwd4:${staticKey(g)}:${TM}x${TN}x${WX}${ep.bias ? ':bias' : ''}${ep.relu ? ':relu' : ''}${sg ? ':sg' : ''}`;
  const rows = range(TM);
  const qs = range(Q);
  const lrows = sg ? range(TM / 8).map((gi) => `l${gi}`) : rows.map(String);
  const aOf = (i: number) => (sg ? `subgroupBroadcast(a${Math.floor(i / 8)}, ${i % 8}u)` : `a${i}`);
  const fma = (k: string) => `{ let kb = (wg + ${k}) * u.Cog4; ${qs.map((q) => `let b${q} = WtT[kb + c${q}];`).join(' ')}
        ${lrows.map((r, t) => `let a${t} = select(0.0, X[select(0u, xr${r} + u32(iw${r}), ok${r})], ok${r});`).join(' ')}
        ${rows.map((i) => `{ let a = ${aOf(i)}; ${qs.map((q) => `acc${i}_${q} = fma(vec4<f32>(a), b${q}, acc${i}_${q});`).join(' ')} }`).join('\n        ')} }`;
  // Taps are loops, not unrolled: unrolling 16 rows × 9 taps took lavapipe 6-12 s to compile per
  // pipeline for no measurable gain (the row's bounds test is shared by its kw taps either way).
  const taps = `for (var kh = 0u; kh < ${KH}u; kh++) {
      ${lrows.map((i) => `let ih${i} = ih0_${i} + i32(kh * u.dh); let rok${i} = u32(ih${i}) < u.H; let xr${i} = xc${i} + u32(ih${i}) * u.W;`).join('\n      ')}
      for (var kw = 0u; kw < ${KW}u; kw++) {
        ${lrows.map((i) => `let iw${i} = iw0_${i} + i32(kw * u.dw); let ok${i} = rok${i} && u32(iw${i}) < u.W;`).join(' ')}
        ${fma(`ci * ${KHW}u + kh * ${KW}u + kw`)}
      }
    }`;
  const rowGeom = (i: string, p: string) => `let p${i} = ${p}; let n${i} = p${i} / u.HoWo; let r${i} = p${i} % u.HoWo;
  let ih0_${i} = i32((r${i} / u.Wo) * u.sh) - u.padT; let iw0_${i} = i32((r${i} % u.Wo) * u.sw) - u.padL;
  let xb${i} = u.xoff + (n${i} * u.Cin + grp * u.Cig) * u.HW;`;
  const bindings = ['X', 'WtT', ...(ep.bias ? ['Bias'] : [])];
  const build = () => ({
    uniforms: [...geomUniforms, ['P', 'u32'], ['HoWo', 'u32'], ['HW', 'u32'], ['Cog4', 'u32']] as [string, 'u32' | 'i32'][],
    code: `${sg ? 'enable subgroups;' : ''}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> WtT: array<vec4<f32>>;
${ep.bias ? '@group(0) @binding(2) var<storage, read> Bias: array<f32>;' : ''}
@group(0) @binding(${bindings.length}) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${WX}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgl: u32' : ''}) {
  let grp = wid.z;
  let pb = wid.y * ${TM}u;
  let cq = (wid.x * ${WX}u + lid.x) * ${Q}u;
  ${sg ? '' : 'if (cq >= u.Cog4) { return; }'}
  ${qs.map((q) => `let c${q} = min(cq + ${q}u, u.Cog4 - 1u);`).join(' ')}
  ${rows.map((i) => rowGeom(String(i), `min(pb + ${i}u, u.P - 1u)`)).join('\n  ')}
  ${sg ? lrows.map((r, t) => rowGeom(r, `min(pb + ${t * 8}u + (sgl & 7u), u.P - 1u)`)).join('\n  ') : ''}
  let wg = grp * u.Cig * ${KHW}u;
  ${rows.map((i) => qs.map((q) => `var acc${i}_${q} = vec4<f32>();`).join(' ')).join(' ')}
  for (var ci = 0u; ci < u.Cig; ci++) {
    ${lrows.map((i) => `let xc${i} = xb${i} + ci * u.HW;`).join(' ')}
    ${taps}
  }
  ${rows.map((i) => `if (pb + ${i}u < u.P) {
    ${qs.map((q) => `if (cq + ${q}u < u.Cog4) { ${range(4).map((c) => `{ let co = grp * u.Cog + (cq + ${q}u) * 4u + ${c}u; var v = acc${i}_${q}[${c}]${ep.bias ? ' + Bias[co]' : ''}; ${ep.relu ? 'v = max(v, 0.0);' : ''} Y[(n${i} * u.Cout + co) * u.HoWo + r${i}] = v; }`).join(' ')} }`).join('\n    ')}
  }`).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [...geomValues(g, xoff), P, g.Ho * g.Wo, g.H * g.W, Cog / 4],
    grid: [cdiv(Cog / 4, Q * WX), cdiv(P, TM), g.groups],
  };
}

/**
 * Weight gradient pass 1, vec4. Bindings: X [N,Cin,H,W] (from xoff), dYt [N,Ho·Wo,Cout] (dY
 * channels-last), Out as convWeightGradLaunch. Rows are (ci,kh,kw) (uniform gathers from X),
 * lanes stream Cog as vec4. Needs Cog % 4 == 0.
 */
export function convWeightGradV4Launch(g: ConvGeom, plan: SplitPlan, xoff = 0, subgroups8 = false): Launch {
  const Cog = g.Cout / g.groups;
  const Cig = g.Cin / g.groups;
  if (Cog % 4) throw new Error(`conv2d dW v4: output channels per group ${Cog} % 4 != 0`);
  const { TM, TN, WX } = pickV4Tile(Cog, 'MRCNN_CONVDW4_TILE', subgroups8);
  const Q = TN / 4;
  const { KH, KW } = g;
  const KHW = KH * KW;
  const Kred = Cig * KHW;
  // Subgroup path as the forward: lane l gathers X for row 8·grp + l, broadcast to all lanes.
  const sg = subgroups8 && TM % 8 === 0 && WX % 8 === 0;
  const key = `conv-dw4:${staticKey(g)}:${TM}x${TN}x${WX}${sg ? ':sg' : ''}`;
  const rows = range(TM);
  const qs = range(Q);
  const lrows = sg ? range(TM / 8).map((gi) => `l${gi}`) : rows.map(String);
  const aOf = (i: number) => (sg ? `subgroupBroadcast(a${Math.floor(i / 8)}, ${i % 8}u)` : `a${i}`);
  const rowGeom = (i: string, k: string) => `let k${i} = ${k}; let t${i} = k${i} % ${KHW}u;
  let xb${i} = u.xoff + (grp * u.Cig + k${i} / ${KHW}u) * u.HW; let hoff${i} = i32((t${i} / ${KW}u) * u.dh) - u.padT; let woff${i} = i32((t${i} % ${KW}u) * u.dw) - u.padL;`;
  const build = () => ({
    uniforms: [...geomUniforms, ['Kred', 'u32'], ['S', 'u32'], ['rowsPerSplit', 'u32'], ['HoWo', 'u32'], ['HW', 'u32'], ['Cog4', 'u32'], ['Cout4', 'u32']] as [string, 'u32' | 'i32'][],
    code: `${sg ? 'enable subgroups;' : ''}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Gt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(${WX}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgl: u32' : ''}) {
  let grp = wid.z / u.S;
  let s = wid.z % u.S;
  let kb = wid.y * ${TM}u;
  let cq = (wid.x * ${WX}u + lid.x) * ${Q}u;
  ${sg ? '' : 'if (cq >= u.Cog4) { return; }'}
  ${qs.map((q) => `let c${q} = grp * u.Cog4 + min(cq + ${q}u, u.Cog4 - 1u);`).join(' ')}
  ${lrows.map((r, t) => rowGeom(r, sg ? `min(kb + ${t * 8}u + (sgl & 7u), u.Kred - 1u)` : `min(kb + ${t}u, u.Kred - 1u)`)).join('\n  ')}
  ${rows.map((i) => qs.map((q) => `var acc${i}_${q} = vec4<f32>();`).join(' ')).join(' ')}
  let r0 = s * u.rowsPerSplit;
  let r1 = min(r0 + u.rowsPerSplit, u.N * u.Ho);
  for (var r = r0; r < r1; r++) {
    let n = r / u.Ho;
    let oh = r % u.Ho;
    let gn = (n * u.HoWo + oh * u.Wo) * u.Cout4;
    ${lrows.map((i) => `let ih${i} = i32(oh * u.sh) + hoff${i}; let rok${i} = u32(ih${i}) < u.H; let xr${i} = xb${i} + n * u.Cin * u.HW + u32(ih${i}) * u.W;`).join('\n    ')}
    for (var ow = 0u; ow < u.Wo; ow++) {
      let go = gn + ow * u.Cout4;
      ${qs.map((q) => `let b${q} = Gt[go + c${q}];`).join(' ')}
      ${lrows.map((r, t) => `let iw${t} = i32(ow * u.sw) + woff${r}; let ok${t} = rok${r} && u32(iw${t}) < u.W; let a${t} = select(0.0, X[select(0u, xr${r} + u32(iw${t}), ok${t})], ok${t});`).join('\n      ')}
      ${rows.map((i) => `{ let a = ${aOf(i)}; ${qs.map((q) => `acc${i}_${q} = fma(vec4<f32>(a), b${q}, acc${i}_${q});`).join(' ')} }`).join('\n      ')}
    }
  }
  let ob = (grp * u.S + s) * u.Cog;
  ${rows.map((i) => `if (kb + ${i}u < u.Kred) {
    ${qs.map((q) => `if (cq + ${q}u < u.Cog4) { ${range(4).map((c) => `Out[(ob + (cq + ${q}u) * 4u + ${c}u) * u.Kred + kb + ${i}u] = acc${i}_${q}[${c}];`).join(' ')} }`).join('\n    ')}
  }`).join('\n  ')}
}`,
  });
  return {
    key,
    build,
    uniforms: [...geomValues(g, xoff), Kred, plan.splits, plan.rowsPerSplit, g.Ho * g.Wo, g.H * g.W, Cog / 4, g.Cout / 4],
    grid: [cdiv(Cog / 4, Q * WX), cdiv(Kred, TM), g.groups * plan.splits],
  };
}
