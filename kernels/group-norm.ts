// Group norm (torch F.group_norm) over x viewed as [N, C, S] (S: the product of the dims after C).
// Group (n, g) is the contiguous run of L = (C/G)·S elements at (n·G + g)·L, and channel row
// (n, c) the run of S elements at (n·C + c)·S, so every pass is a walk over contiguous segments.
// Statistics as batch norm (./norm.ts): Welford inside a thread (per vec4 component, one scalar
// count, so one reciprocal per vec4), Chan's pairwise merge across the 4 components and then across
// the P partial threads of a segment: stable under a large common offset, no E[x²] − E[x]². All of
// it runs on x − K with K the group's first element (x − K is exact for nearby values), so the
// running means carry the spread's digits, not the offset's: at offset 1000 the unshifted Welford
// mean drifted by 3e-4 over a 6560-element group, ~ulp(1000)·√steps.
// Barrier-free (lavapipe implements barriers expensively): P threads per segment write partials,
// a one-thread-per-group pass combines them. The normalize and dx passes walk the channel rows the
// same way (P threads per row, the row's coefficients loaded once per thread). On lavapipe a
// contiguous block per thread beat common.ts's rowsMain layout (64 lanes along a row, 4 vec4s per
// lane, 32 rows per workgroup) by 2-4× at [2,256,50,76]: normalize 8-17 → 2-3.5 ms, dx 17-38 →
// 3.5-7 ms (a loaded 2-core machine, so ranges); GPUs get the interleaved walk (coalesced).
//
// Forward:  partials (read x) → per-row (scale = γ·rstd, β, mean, rstd) → y (+ReLU) (read x).
//           y = (x − mean)·scale + β, not x·scale + (β − mean·scale): with rstd large (var ≪ eps,
//           L = 1) or |mean| ≫ std the folded shift cancels most of x·scale's digits.
// Backward: per-row partial Σdy, Σdy·x̂ (read dy, x) → per-group dx coefficients and per-row sums
//           → dx = scale·dy + b·(x − mean) + k (read dy, x) ; per-channel Σ over N → dγ, dβ.
//           dx = rstd·(γ·dy − mean_g(γ·dy) − x̂·mean_g(γ·dy·x̂)), so b = −rstd²·mean_g(γ·dy·x̂),
//           k = −rstd·mean_g(γ·dy); x − mean (not b·x + k') keeps a large offset from cancelling.
// With a fused ReLU, backward recomputes the mask as fma(x − mean, scale, β) > 0 from the same saved
// per-row values the forward used, so no output is saved.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 64;
/** Fewest elements (in units of the vector width) a partial thread walks: its fixed cost is large. */
const MIN_PER_THREAD = 16;

export interface GroupNormPlan {
  N: number; C: number; G: number; S: number;
  /** Channels per group and elements per group (cpg·S). */
  cpg: number; L: number;
  /** Vector width of the group-stats pass (4 when L % 4 == 0) and of the row passes (S % 4 == 0). */
  wL: 1 | 4; wS: 1 | 4;
  /** Threads per group (stats partials) and per channel row (normalize, backward sums, dx). */
  statsP: number; rowsP: number;
  /** Each partial thread walks a contiguous block (CPU: per-lane cache reuse) or an interleaved slice (GPU: coalescing). */
  blocked: boolean;
}

const partials = (segs: number, len: number, targetThreads: number) => Math.max(1, Math.min(cdiv(targetThreads, segs), cdiv(len, MIN_PER_THREAD)));

/** x [N, C, S], G | C; targetThreads as the reductions (kernels/reduce.ts TARGET_THREADS_*). */
export function planGroupNorm(N: number, C: number, S: number, G: number, targetThreads: number, blocked: boolean): GroupNormPlan {
  const cpg = C / G;
  const L = cpg * S;
  const wL = L % 4 === 0 ? 4 : 1;
  const wS = S % 4 === 0 ? 4 : 1;
  return { N, C, G, S, cpg, L, wL, wS, statsP: partials(N * G, L / wL, targetThreads), rowsP: partials(N * C, S / wS, targetThreads), blocked };
}

const vt = (w: 1 | 4) => (w === 4 ? 'vec4<f32>' : 'f32');
const hsum = (w: 1 | 4) => `fn hsum(v: T) -> f32 { return ${w === 4 ? 'v.x + v.y + v.z + v.w' : 'v'}; }`;

/** Thread t → segment s, partial p, and a walk over the segment's elements e (units of T). */
const partialMain = (blocked: boolean, head: string, body: string, tail: string) => `
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.segs * u.P) { return; }
  let s = t / u.P;
  let p = t - s * u.P;
  let base = s * u.len;
  ${head}
  ${blocked
    ? 'let blk = (u.len + u.P - 1u) / u.P; let i1 = min(u.len, (p + 1u) * blk); for (var i = p * blk; i < i1; i++) {'
    : 'for (var i = p; i < u.len; i += u.P) {'}
    let e = base + i;
    ${body}
  }
  ${tail}
}`;
const partialUniforms: [string, 'u32'][] = [['segs', 'u32'], ['P', 'u32'], ['len', 'u32']];

/** Chan's merge of (count, mean, M2) b into a (WGSL). */
const CHAN = `fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n));
}`;

/** Pass 1: X [N·G groups of L] → Part [N·G, statsP] of vec4(count, mean − K, M2, 0), K = the group's first x. */
export function gnStatsPartialLaunch(p: GroupNormPlan): Launch {
  const w = p.wL;
  return {
    key: `gn-stats-partial:w${w}${p.blocked ? ':blk' : ''}`,
    build: () => ({
      uniforms: partialUniforms,
      code: `
alias T = ${vt(w)};
@group(0) @binding(0) var<storage, read> X: array<T>;
@group(0) @binding(1) var<storage, read_write> Part: array<vec4<f32>>;
${hsum(w)}
${partialMain(p.blocked, `let K = T(X[base]${w === 4 ? '.x' : ''}); var cnt = 0.0; var mean = T(0.0); var m2 = T(0.0);`,
  'let x = X[e] - K; cnt += 1.0; let r = 1.0 / cnt; let d = x - mean; mean = fma(d, T(r), mean); m2 = fma(d, x - mean, m2);',
  // The w components saw equal counts: merged mean is their average, M2 gains cnt·Σ(mean_j − mean)².
  `let mu = hsum(mean) * ${1 / w}; let dm = mean - T(mu);
  Part[t] = vec4<f32>(${w}.0 * cnt, mu, hsum(m2) + cnt * hsum(dm * dm), 0.0);`)}`,
    }),
    uniforms: [p.N * p.G, p.statsP, p.L / w],
    grid: grid1d(cdiv(p.N * p.G * p.statsP, WG)),
  };
}

/**
 * Pass 2, one thread per group: merges the partials and writes, for each of its channel rows,
 * RowStats [N·C] vec4(scale = γ·rstd, β, mean, rstd). Bindings: X, Part, Gamma, Beta, RowStats.
 */
export function gnStatsFinalLaunch(p: GroupNormPlan, eps: number): Launch {
  return {
    key: 'gn-stats-final',
    build: () => ({
      uniforms: [['segs', 'u32'], ['P', 'u32'], ['G', 'u32'], ['cpg', 'u32'], ['L', 'u32'], ['eps', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> Gamma: array<f32>;
@group(0) @binding(3) var<storage, read> Beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> RowStats: array<vec4<f32>>;
${CHAN}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wgLinear(wid, nwg) * ${WG}u + lid;
  if (s >= u.segs) { return; }
  var a = vec3<f32>(0.0);
  for (var k = 0u; k < u.P; k++) { a = chan(a, Part[s * u.P + k].xyz); }
  let rstd = 1.0 / sqrt(a.z / a.x + u.eps);
  let mean = X[s * u.L] + a.y;
  let c0 = (s % u.G) * u.cpg;
  for (var j = 0u; j < u.cpg; j++) {
    RowStats[s * u.cpg + j] = vec4<f32>(Gamma[c0 + j] * rstd, Beta[c0 + j], mean, rstd);
  }
}`,
    }),
    uniforms: [p.N * p.G, p.statsP, p.G, p.cpg, p.L, eps],
    grid: grid1d(cdiv(p.N * p.G, WG)),
  };
}

/** A pass over the channel rows (P threads per row, as the partials) with the row's RowStats loaded once. */
function rowsLaunch(key: string, p: GroupNormPlan, decls: string, head: string, body: string): Launch {
  const w = p.wS;
  const rows = p.N * p.C;
  return {
    key: `${key}:w${w}${p.blocked ? ':blk' : ''}`,
    build: () => ({
      uniforms: [...partialUniforms, ['cpg', 'u32']],
      code: `
alias T = ${vt(w)};
${decls}
${partialMain(p.blocked, `let rs = RowStats[s]; let sc = T(rs.x); let sh = T(rs.y); let mu = T(rs.z); ${head}`, body, '')}`,
    }),
    uniforms: [rows, p.rowsP, p.S / w, p.cpg],
    grid: grid1d(cdiv(rows * p.rowsP, WG)),
  };
}

/** Pass 3: Y = (X − mean)·scale + β (+ReLU) per channel row. Bindings: X, RowStats, Y. */
export function gnNormalizeLaunch(p: GroupNormPlan, relu: boolean): Launch {
  return rowsLaunch(`gn-normalize${relu ? ':relu' : ''}`, p, `
@group(0) @binding(0) var<storage, read> X: array<T>;
@group(0) @binding(1) var<storage, read> RowStats: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<T>;`, '',
  `let v = fma(X[e] - mu, sc, sh); Y[e] = ${relu ? 'max(v, T(0.0))' : 'v'};`);
}

/** dy, with the fused ReLU's mask recomputed from x and the forward's own scale/shift. */
const dyExpr = (relu: boolean, g: string) => (relu ? `select(T(0.0), ${g}, fma(x - mu, sc, sh) > T(0.0))` : g);

/** Backward pass 1: Part [N·C, rowsP] of vec2(Σ dy, Σ dy·x̂) per channel row. Bindings: DY, X, RowStats, Part. */
export function gnBwdPartialLaunch(p: GroupNormPlan, relu: boolean): Launch {
  const w = p.wS;
  return {
    key: `gn-bwd-partial:w${w}${relu ? ':relu' : ''}${p.blocked ? ':blk' : ''}`,
    build: () => ({
      uniforms: partialUniforms,
      code: `
alias T = ${vt(w)};
@group(0) @binding(0) var<storage, read> DY: array<T>;
@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read> RowStats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Part: array<vec2<f32>>;
${hsum(w)}
${partialMain(p.blocked, 'let rs = RowStats[s]; let sc = T(rs.x); let sh = T(rs.y); let mu = T(rs.z); var a = T(0.0); var b = T(0.0);',
  `let x = X[e]; let dy = ${dyExpr(relu, 'DY[e]')}; a += dy; b = fma(dy, x - mu, b);`,
  'Part[t] = vec2<f32>(hsum(a), hsum(b) * rs.w);')}`,
    }),
    uniforms: [p.N * p.C, p.rowsP, p.S / w],
    grid: grid1d(cdiv(p.N * p.C * p.rowsP, WG)),
  };
}

/**
 * Backward pass 2, one thread per group: RowSums [N·C] vec2(Σ dy, Σ dy·x̂) and the group's dx
 * coefficients Coef [N·G] vec2(b, k). Bindings: Part, Gamma, RowStats, RowSums, Coef.
 */
export function gnBwdGroupLaunch(p: GroupNormPlan): Launch {
  return {
    key: 'gn-bwd-group',
    build: () => ({
      uniforms: [['segs', 'u32'], ['P', 'u32'], ['G', 'u32'], ['cpg', 'u32'], ['L', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> Part: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read> RowStats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> RowSums: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> Coef: array<vec2<f32>>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wgLinear(wid, nwg) * ${WG}u + lid;
  if (s >= u.segs) { return; }
  let c0 = (s % u.G) * u.cpg;
  var m = vec2<f32>(0.0);
  for (var j = 0u; j < u.cpg; j++) {
    let r = s * u.cpg + j;
    var ab = vec2<f32>(0.0);
    for (var k = 0u; k < u.P; k++) { ab += Part[r * u.P + k]; }
    RowSums[r] = ab;
    m = fma(vec2<f32>(Gamma[c0 + j]), ab, m);
  }
  let rstd = RowStats[s * u.cpg].w;
  Coef[s] = vec2<f32>(-rstd * rstd * m.y / u.L, -rstd * m.x / u.L);
}`,
    }),
    uniforms: [p.N * p.G, p.rowsP, p.G, p.cpg, p.L],
    grid: grid1d(cdiv(p.N * p.G, WG)),
  };
}

/** Backward pass 3: Sums [2, C]: row 0 Σ dy (dβ), row 1 Σ dy·x̂ (dγ), over N. Bindings: RowSums, Sums. */
export function gnBwdChannelLaunch(p: GroupNormPlan): Launch {
  return {
    key: 'gn-bwd-channel',
    build: () => ({
      uniforms: [['N', 'u32'], ['C', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> RowSums: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> Sums: array<f32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wgLinear(wid, nwg) * ${WG}u + lid;
  if (c >= u.C) { return; }
  var ab = vec2<f32>(0.0);
  for (var n = 0u; n < u.N; n++) { ab += RowSums[n * u.C + c]; }
  Sums[c] = ab.x;
  Sums[u.C + c] = ab.y;
}`,
    }),
    uniforms: [p.N, p.C],
    grid: grid1d(cdiv(p.C, WG)),
  };
}

/** Backward pass 4: DX = scale·dy + b·(x − mean) + k per channel row. Bindings: DY, X, RowStats, Coef, DX. */
export function gnBwdDxLaunch(p: GroupNormPlan, relu: boolean): Launch {
  return rowsLaunch(`gn-bwd-dx${relu ? ':relu' : ''}`, p, `
@group(0) @binding(0) var<storage, read> DY: array<T>;
@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read> RowStats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Coef: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> DX: array<T>;`,
  'let cf = Coef[s / u.cpg]; let cb = T(cf.x); let ck = T(cf.y);',
  `let x = X[e]; let dy = ${dyExpr(relu, 'DY[e]')}; DX[e] = fma(sc, dy, fma(cb, x - mu, ck));`);
}

// ---- float64 reference -------------------------------------------------------------------------

/**
 * torch F.group_norm (+ optional ReLU) on contiguous x [N, C, ...]: per (n, group) mean and biased
 * variance over the group's C/G channels and all positions. gamma/beta null: 1 / 0.
 */
export function refGroupNorm(x: ArrayLike<number>, shape: number[], G: number, gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, eps: number, relu = false): { y: Float64Array; mean: Float64Array; varB: Float64Array } {
  const [N, C] = shape;
  const S = shape.slice(2).reduce((a, b) => a * b, 1);
  const L = (C / G) * S;
  const mean = new Float64Array(N * G);
  const varB = new Float64Array(N * G);
  const y = new Float64Array(N * C * S);
  for (let gi = 0; gi < N * G; gi++) {
    let s = 0;
    for (let i = 0; i < L; i++) s += x[gi * L + i];
    const m = s / L;
    let v = 0;
    for (let i = 0; i < L; i++) v += (x[gi * L + i] - m) ** 2;
    mean[gi] = m;
    varB[gi] = v / L;
    const rstd = 1 / Math.sqrt(v / L + eps);
    for (let i = 0; i < L; i++) {
      const c = ((gi % G) * L + i - (i % S)) / S;
      const o = ((x[gi * L + i] - m) * rstd) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
      y[gi * L + i] = relu ? Math.max(o, 0) : o;
    }
  }
  return { y, mean, varB };
}
