// Bitonic argsort on the GPU, per row of keys [B, n], descending and stable by index (ties go
// to the lower index, as torch.sort(stable=True, descending=True)). Rows are padded to the next
// power of two P with (-inf, index >= n), which the comparator places after every real key.
// Passes (jax-js routines.ts / TF.js bitonic top-k structure, webgpu-dawn-notes.md §5.1):
//   local sort of blocks of BS = 2·WG keys in workgroup memory (all stages k <= BS),
//   then for each stage k > BS: global compare-exchange passes for j >= BS, and one local merge
//   pass for j < BS. Sizes/stage live in uniforms: one pipeline per pass kind, no recompiles.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;
// Local passes: a block of SORT_BLOCK keys per workgroup of LWG threads, each thread doing
// SORT_BLOCK/2/LWG compare-exchanges per step. lavapipe's barrier cost grows with the number of
// threads it must switch, so fewer threads with more pairs each run faster.
const LWG = 64;
export const SORT_BLOCK = 1024;

export const nextPow2 = (n: number) => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));

// "a goes before b" in descending order, index tie-break.
const BEFORE = `fn before(ka: f32, ia: u32, kb: f32, ib: u32) -> bool { return ka > kb || (ka == kb && ia < ib); }`;

/** Copies row b of keys (strided: rowStride, offset) into the padded work arrays K, I [B, P]. Bindings: keys, K, I. */
export function sortInitLaunch(B: number, n: number, P: number, rowStride: number, offset: number): Launch {
  const total = B * P;
  return {
    key: 'sort:init',
    build: () => ({
      uniforms: [['total', 'u32'], ['n', 'u32'], ['P', 'u32'], ['rowStride', 'u32'], ['off', 'u32'], ['ninf', 'f32']],
      code: `
@group(0) @binding(0) var<storage, read> keys: array<f32>;
@group(0) @binding(1) var<storage, read_write> K: array<f32>;
@group(0) @binding(2) var<storage, read_write> I: array<u32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.total) { return; }
  let b = t / u.P; let i = t % u.P;
  // -inf comes in as a uniform: WGSL rejects a constant -inf
  K[t] = select(u.ninf, keys[u.off + b * u.rowStride + i], i < u.n);
  I[t] = i;
}`,
    }),
    uniforms: [total, n, P, rowStride, offset, -Infinity],
    grid: grid1d(cdiv(total, WG)),
  };
}

/**
 * Local pass over blocks of BS = min(P, SORT_BLOCK): mode 'sort' runs stages 2..k (k <= BS);
 * mode 'merge' finishes stage k for distances j0..1 (j0 < BS). Bindings: K, I.
 */
export function sortLocalLaunch(mode: 'sort' | 'merge', B: number, P: number, k: number, j0 = Math.min(P, SORT_BLOCK) / 2): Launch {
  const BS = Math.min(P, SORT_BLOCK);
  const blocks = (B * P) / BS;
  return {
    key: `sort:local:${mode}:${LWG}:${SORT_BLOCK}`,
    build: () => ({
      uniforms: [['P', 'u32'], ['BS', 'u32'], ['k', 'u32'], ['j0', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read_write> K: array<f32>;
@group(0) @binding(1) var<storage, read_write> I: array<u32>;
var<workgroup> sk: array<f32, ${SORT_BLOCK}>;
var<workgroup> si: array<u32, ${SORT_BLOCK}>;
${WG_LINEAR}
${BEFORE}
fn step(t: u32, j: u32, k: u32, rowBase: u32) {
  let i = 2u * j * (t / j) + t % j;
  let l = i + j;
  let want = ((rowBase + i) & k) == 0u;
  let a = sk[i]; let b = sk[l]; let ia = si[i]; let ib = si[l];
  // want: block ordered "before"-first; otherwise reversed (bitonic halves)
  if (before(b, ib, a, ia) == want) { sk[i] = b; sk[l] = a; si[i] = ib; si[l] = ia; }
}
@compute @workgroup_size(${LWG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let blk = wgLinear(wid, nwg);
  let start = blk * u.BS;
  let rowBase = start % u.P;
  let half = u.BS / 2u;
  for (var e = lid; e < u.BS; e += ${LWG}u) { sk[e] = K[start + e]; si[e] = I[start + e]; }
  workgroupBarrier();
  ${mode === 'sort' ? `for (var k = 2u; k <= u.k; k = k * 2u) {
    for (var j = k / 2u; j > 0u; j = j / 2u) {
      for (var t = lid; t < half; t += ${LWG}u) { step(t, j, k, rowBase); }
      workgroupBarrier();
    }
  }` : `for (var j = u.j0; j > 0u; j = j / 2u) {
    for (var t = lid; t < half; t += ${LWG}u) { step(t, j, u.k, rowBase); }
    workgroupBarrier();
  }`}
  for (var e = lid; e < u.BS; e += ${LWG}u) { K[start + e] = sk[e]; I[start + e] = si[e]; }
}`,
    }),
    uniforms: [P, BS, k, j0],
    grid: grid1d(blocks),
  };
}

/** One global compare-exchange pass (stage k, distance j >= BS) over all rows. Bindings: K, I. */
export function sortGlobalLaunch(B: number, P: number, k: number, j: number): Launch {
  const pairs = (B * P) / 2;
  return {
    key: 'sort:global',
    build: () => ({
      uniforms: [['pairs', 'u32'], ['P', 'u32'], ['k', 'u32'], ['j', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read_write> K: array<f32>;
@group(0) @binding(1) var<storage, read_write> I: array<u32>;
${WG_LINEAR}
${BEFORE}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.pairs) { return; }
  let halfP = u.P / 2u;
  let b = t / halfP; let tt = t % halfP;
  let i = 2u * u.j * (tt / u.j) + tt % u.j;
  let l = i + u.j;
  let want = (i & u.k) == 0u;
  let gi = b * u.P + i; let gl = b * u.P + l;
  let a = K[gi]; let c = K[gl]; let ia = I[gi]; let ic = I[gl];
  if (before(c, ic, a, ia) == want) { K[gi] = c; K[gl] = a; I[gi] = ic; I[gl] = ia; }
}`,
    }),
    uniforms: [pairs, P, k, j],
    grid: grid1d(cdiv(pairs, WG)),
  };
}

/** All launches of a full sort of B rows padded to P (after sortInitLaunch). */
export function sortPasses(B: number, P: number): Launch[] {
  const BS = Math.min(P, SORT_BLOCK);
  const out: Launch[] = [];
  if (P < 2) return out;
  out.push(sortLocalLaunch('sort', B, P, BS));
  for (let k = 2 * BS; k <= P; k *= 2) {
    for (let j = k / 2; j >= BS; j /= 2) out.push(sortGlobalLaunch(B, P, k, j));
    out.push(sortLocalLaunch('merge', B, P, k));
  }
  return out;
}

/**
 * Passes that leave each row as runs of length `run` (a power of two <= P), run m ordered
 * "before"-first for even m and reversed for odd m (the bitonic network's first log2(run) stages).
 */
export function sortRunsPasses(B: number, P: number, run: number): Launch[] {
  const BS = Math.min(P, SORT_BLOCK);
  const out: Launch[] = [];
  if (run < 2) return out;
  out.push(sortLocalLaunch('sort', B, P, Math.min(run, BS)));
  for (let k = 2 * BS; k <= run; k *= 2) {
    for (let j = k / 2; j >= BS; j /= 2) out.push(sortGlobalLaunch(B, P, k, j));
    out.push(sortLocalLaunch('merge', B, P, k));
  }
  return out;
}

/**
 * Re-sorts bitonic runs of length `run` (after a prune) with alternating directions: stage k = run
 * with distances run/2 .. 1.
 */
export function sortMergeRunsPasses(B: number, P: number, run: number): Launch[] {
  const BS = Math.min(P, SORT_BLOCK);
  const out: Launch[] = [];
  for (let j = run / 2; j >= BS; j /= 2) out.push(sortGlobalLaunch(B, P, run, j));
  out.push(sortLocalLaunch('merge', B, P, run, Math.min(run, BS) / 2));
  return out;
}

/**
 * Bitonic top-k prune (Shanbhag et al., SIGMOD'18; TF.js MergeProgram): runs 2m ("before"-first)
 * and 2m+1 (reversed) of length `run` become one bitonic run of their `run` best elements.
 * K, I [B, P] → K2, I2 [B, P/2]. Bindings: K, I, K2, I2.
 */
export function sortPruneLaunch(B: number, P: number, run: number): Launch {
  const total = (B * P) / 2;
  return {
    key: 'sort:prune',
    build: () => ({
      uniforms: [['total', 'u32'], ['P', 'u32'], ['run', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> K: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<u32>;
@group(0) @binding(2) var<storage, read_write> K2: array<f32>;
@group(0) @binding(3) var<storage, read_write> I2: array<u32>;
${WG_LINEAR}
${BEFORE}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.total) { return; }
  let half = u.P / 2u;
  let b = t / half; let tt = t % half;
  let m = tt / u.run; let off = tt % u.run;
  let ga = b * u.P + 2u * m * u.run + off;
  let gb = ga + u.run;
  let ka = K[ga]; let kb = K[gb]; let ia = I[ga]; let ib = I[gb];
  let a = before(ka, ia, kb, ib);
  K2[t] = select(kb, ka, a);
  I2[t] = select(ib, ia, a);
}`,
    }),
    uniforms: [total, P, run],
    grid: grid1d(cdiv(total, WG)),
  };
}

/** First k of each sorted row: values [B, k] f32 and indices [B, k] i32 (+ indexBase). Bindings: K, I, vals, idx. */
export function sortExtractLaunch(B: number, P: number, k: number, indexBase: number): Launch {
  const total = B * k;
  return {
    key: 'sort:extract',
    build: () => ({
      uniforms: [['total', 'u32'], ['P', 'u32'], ['k', 'u32'], ['base', 'i32']],
      code: `
@group(0) @binding(0) var<storage, read> K: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wgLinear(wid, nwg) * ${WG}u + lid;
  if (t >= u.total) { return; }
  let b = t / u.k; let i = t % u.k;
  vals[t] = K[b * u.P + i];
  idx[t] = i32(I[b * u.P + i]) + u.base;
}`,
    }),
    uniforms: [total, P, k, indexBase],
    grid: grid1d(cdiv(total, WG)),
  };
}

// ---- float64 reference ------------------------------------------------------------------------

/** Stable descending argsort of each row; returns the first k indices per row. */
export function refArgsortDesc(keys: ArrayLike<number>, B: number, n: number, k = n): Int32Array {
  const out = new Int32Array(B * k);
  for (let b = 0; b < B; b++) {
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((i, j) => {
      const a = keys[b * n + i], c = keys[b * n + j];
      return a > c ? -1 : a < c ? 1 : i - j;
    });
    for (let i = 0; i < k; i++) out[b * k + i] = idx[i];
  }
  return out;
}
