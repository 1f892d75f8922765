// torchvision's BalancedPositiveNegativeSampler (models/detection/_utils.py) with static shapes:
// seeded per-element keys in place of randperm, and the selection of the first k positives and
// negatives in key order. samplerPickLaunch is what the engine runs; samplerKeysLaunch + an
// argsort + samplerSelectLaunch is the sort path it replaced, kept as the tests' GPU reference
// beside the host reference refSampler.
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

const WG = 256;
/** Rows of one batched pick: seeds are uniform fields (64 vec4u = 1 KiB), and grid.x <= 65535. */
export const MAX_SAMPLER_ROWS = 256;

const PCG = `
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}`;

// The sampler's key of element i with label l, as one f32: positives (label >= 1) in [4,5], negatives
// (label 0) in [2,3], ignored in [0,1], each plus a seeded uniform (24 bits, rounded to f32 by the
// add: to 21 bits for positives, 22 for negatives); random = 0 leaves the category alone. Shared by
// the sort path and the selection kernel so both see bit-identical keys. hs = pcg(seed).
const SAMPLER_KEY = `${PCG}
fn samplerKey(l: i32, i: u32, hs: u32, random: u32) -> f32 {
  let cat = select(select(0.0, 2.0, l == 0), 4.0, l >= 1);
  return cat + select(0.0, f32(pcg(pcg(i ^ hs) + 0x9e3779b9u) >> 8u) * (1.0 / 16777216.0), random != 0u);
}`;

/**
 * Sort keys for BalancedPositiveNegativeSampler (samplerKey above), so one descending sort puts
 * positives then negatives, each in a random order. Bindings: labels, keys. Used by the sort path,
 * which the tests keep as the reference of samplerPickLaunch.
 */
export function samplerKeysLaunch(N: number, seed: number, random = true): Launch {
  // random = false: keys are the category alone, so the index-stable sort keeps index order
  // (the parity tests' "first k by index" rule in place of torchvision's randperm)
  return {
    key: 'sampler:keys',
    build: () => ({
      uniforms: [['n', 'u32'], ['seed', 'u32'], ['random', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> labels: array<i32>;
@group(0) @binding(1) var<storage, read_write> keys: array<f32>;
${WG_LINEAR}${SAMPLER_KEY}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  keys[i] = samplerKey(labels[i], i, pcg(u.seed), u.random);
}`,
    }),
    uniforms: [N, seed >>> 0, random ? 1 : 0],
    grid: grid1d(cdiv(N, WG)),
  };
}

/**
 * Selection from the sorted order: the first numPos = min(#pos, batch·fraction) positives and the
 * next numNeg = min(#neg, batch - numPos) negatives. One workgroup counts, then marks masks.
 * Bindings: labels, order, pos, neg.
 */
export function samplerSelectLaunch(N: number, batchPerImage: number, positiveFraction: number): Launch {
  return {
    key: 'sampler:select',
    build: () => ({
      uniforms: [['n', 'u32'], ['maxPos', 'u32'], ['batch', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> labels: array<i32>;
@group(0) @binding(1) var<storage, read> order: array<i32>;
@group(0) @binding(2) var<storage, read_write> pos: array<i32>;
@group(0) @binding(3) var<storage, read_write> neg: array<i32>;
var<workgroup> cp: array<u32, ${WG}>;
var<workgroup> cn: array<u32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(local_invocation_index) lid: u32) {
  var p = 0u; var q = 0u;
  for (var i = lid; i < u.n; i += ${WG}u) { let l = labels[i]; if (l >= 1) { p++; } else if (l == 0) { q++; } }
  cp[lid] = p; cn[lid] = q;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
    if (lid < s) { cp[lid] += cp[lid + s]; cn[lid] += cn[lid + s]; }
    workgroupBarrier();
  }
  let P = cp[0]; let Q = cn[0];
  let numPos = min(P, u.maxPos);
  let numNeg = min(Q, u.batch - numPos);
  for (var r = lid; r < u.n; r += ${WG}u) {
    let j = order[r];
    pos[j] = select(0, 1, r < numPos);
    neg[j] = select(0, 1, r >= P && r < P + numNeg);
  }
}`,
    }),
    uniforms: [N, Math.floor(batchPerImage * positiveFraction), batchPerImage],
    grid: [1],
  };
}

/**
 * The sampler without a sort: the same masks as samplerKeysLaunch + descending index-stable argsort
 * + samplerSelectLaunch, in one workgroup. Per category (0 positives, 1 negatives) it takes the k
 * first elements in (key descending, index ascending) order, k = min(#pos, ⌊batch·fraction⌋) and
 * min(#neg, batch - k_pos). Inside one category every key has the same f32 exponent (samplerKey:
 * [4,5] or [2,3]), so v = 0x7fffff - mantissa orders the elements like the sort, ascending. A radix
 * select over v's three 8-bit digits (workgroup-atomic histograms of the elements that share the
 * digits fixed so far, a scan to find the digit holding the k-th) gives the threshold T and the
 * number r of elements equal to T to take; it stops early once the digit's bin is taken whole
 * (then r = 0). Ties at T go by index: each thread counts ties in a contiguous chunk, a scan gives
 * its first rank, and the same chunk walk writes pos/neg for every element.
 * source 'keys' reads f32 keys (the tests' hand-made ties) instead of computing samplerKey.
 * Batched: labels [B, N] with seeds[b] per row, one workgroup per row; element i of a row hashes
 * its index i within the row, so row b picks exactly what the 1-D launch with seed seeds[b] picks.
 * Seeds travel as ceil(B / 4) vec4u uniform fields (the slot count is in the pipeline key).
 * Bindings: labels, [keys,] pos, neg.
 */
export function samplerPickLaunch(N: number, batchPerImage: number, positiveFraction: number, seed: number | readonly number[], random: boolean, source: 'hash' | 'keys' = 'hash'): Launch {
  const fromKeys = source === 'keys';
  const seeds = typeof seed === 'number' ? [seed] : seed;
  const B = seeds.length;
  if (B < 1 || B > MAX_SAMPLER_ROWS) throw new Error(`samplerPickLaunch: ${B} rows (seeds) outside [1, ${MAX_SAMPLER_ROWS}]`);
  const slots = Math.ceil(B / 4);
  const seedWords = Array.from({ length: slots * 4 }, (_, k) => (k < B ? seeds[k] >>> 0 : 0));
  return {
    key: `sampler:pick:${source}:${slots}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['maxPos', 'u32'], ['batch', 'u32'], ['random', 'u32'], ...Array.from({ length: slots }, (_, k) => [`seeds${k}`, 'vec4u'] as [string, 'vec4u'])],
      code: `
@group(0) @binding(0) var<storage, read> labels: array<i32>;
${fromKeys ? '@group(0) @binding(1) var<storage, read> keys: array<f32>;' : ''}
@group(0) @binding(${fromKeys ? 2 : 1}) var<storage, read_write> pos: array<i32>;
@group(0) @binding(${fromKeys ? 3 : 2}) var<storage, read_write> neg: array<i32>;
${SAMPLER_KEY}
var<workgroup> hist: array<atomic<u32>, ${2 * WG}>;
var<workgroup> sums: array<vec2u, ${WG}>;
var<workgroup> pre: array<u32, 2>;
var<workgroup> rem: array<u32, 2>;
var<workgroup> live: array<u32, 2>;
fn rankOf(l: i32, i: u32, hs: u32, row: u32) -> u32 {
  let k = ${fromKeys ? 'keys[row + i]' : 'samplerKey(l, i, hs, u.random)'};
  return 0x7fffffu - (bitcast<u32>(k) & 0x7fffffu);
}
// inclusive Hillis-Steele scan of sums (pos, neg) over the workgroup
fn scan(lid: u32) {
  for (var d = 1u; d < ${WG}u; d = d * 2u) {
    var v = vec2u(0u);
    if (lid >= d) { v = sums[lid - d]; }
    workgroupBarrier();
    sums[lid] += v;
    workgroupBarrier();
  }
}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x * u.n;
  var seeds = array<vec4u, ${slots}>(${Array.from({ length: slots }, (_, k) => `u.seeds${k}`).join(', ')});
  let hs = pcg(seeds[wid.x / 4u][wid.x % 4u]);
  atomicStore(&hist[lid], 0u); atomicStore(&hist[${WG}u + lid], 0u);
  if (lid < 2u) { pre[lid] = 0u; rem[lid] = 0u; live[lid] = 1u; }
  workgroupBarrier();
  for (var d = 0u; d < 3u; d++) {
    let sh = 16u - 8u * d;
    let lv = vec2u(live[0], live[1]);
    let pf = vec2u(pre[0], pre[1]);
    var want = vec2u(rem[0], rem[1]);
    let hi = pf >> vec2u(sh + 8u);
    if (any(lv != vec2u(0u))) {
      for (var i = lid; i < u.n; i += ${WG}u) {
        let l = labels[row + i];
        if (l >= 0) {
          let c = select(1u, 0u, l >= 1);
          if (lv[c] != 0u) {
            let v = rankOf(l, i, hs, row);
            if ((v >> (sh + 8u)) == hi[c]) { atomicAdd(&hist[c * ${WG}u + ((v >> sh) & 255u)], 1u); }
          }
        }
      }
    }
    workgroupBarrier();
    let h = vec2u(atomicLoad(&hist[lid]), atomicLoad(&hist[${WG}u + lid]));
    sums[lid] = h;
    workgroupBarrier();
    atomicStore(&hist[lid], 0u); atomicStore(&hist[${WG}u + lid], 0u);
    scan(lid);
    let inc = sums[lid];
    let exc = inc - h;
    if (d == 0u) {
      // the first pass saw every element of both categories: its totals are #pos, #neg
      let tot = sums[${WG - 1}u];
      let kp = min(tot.x, u.maxPos);
      want = vec2u(kp, min(tot.y, u.batch - kp));
    }
    for (var c = 0u; c < 2u; c++) {
      if (lv[c] == 0u) { continue; }
      if (want[c] == 0u) {
        // nothing to take: T = 0, r = 0 selects no element
        if (lid == 0u) { live[c] = 0u; }
      } else if (exc[c] < want[c] && want[c] <= inc[c]) {
        let p = pf[c] | (lid << sh);
        let k = want[c] - exc[c];
        if (k == h[c]) { pre[c] = p + (1u << sh); rem[c] = 0u; live[c] = 0u; }
        else { pre[c] = p; rem[c] = k; live[c] = select(1u, 0u, sh == 0u); }
      }
    }
    workgroupBarrier();
  }
  let T = vec2u(pre[0], pre[1]);
  let R = vec2u(rem[0], rem[1]);
  let chunk = (u.n + ${WG - 1}u) / ${WG}u;
  let lo = min(lid * chunk, u.n);
  let hi = min(lo + chunk, u.n);
  var t = vec2u(0u);
  if (any(R != vec2u(0u))) {
    for (var i = lo; i < hi; i++) {
      let l = labels[row + i];
      if (l >= 0) {
        let c = select(1u, 0u, l >= 1);
        if (R[c] != 0u && rankOf(l, i, hs, row) == T[c]) { t[c] += 1u; }
      }
    }
  }
  sums[lid] = t;
  workgroupBarrier();
  scan(lid);
  var rank = sums[lid] - t;
  for (var i = lo; i < hi; i++) {
    let l = labels[row + i];
    var p = 0; var q = 0;
    if (l >= 0) {
      let c = select(1u, 0u, l >= 1);
      let v = rankOf(l, i, hs, row);
      let take = v < T[c] || (v == T[c] && rank[c] < R[c]);
      if (v == T[c]) { rank[c] += 1u; }
      p = select(0, 1, take && c == 0u);
      q = select(0, 1, take && c == 1u);
    }
    pos[row + i] = p; neg[row + i] = q;
  }
}`,
    }),
    uniforms: [N, Math.floor(batchPerImage * positiveFraction), batchPerImage, random ? 1 : 0, ...seedWords],
    grid: [B],
  };
}

// ---- host reference ---------------------------------------------------------------------------

const pcgHost = (v: number): number => {
  const s = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
};

/** samplerKey on the host: the f32 sum is rounded like the GPU's (round to nearest even). */
export function refSamplerKey(label: number, i: number, seed: number, random: boolean): number {
  const cat = label >= 1 ? 4 : label === 0 ? 2 : 0;
  if (!random) return cat;
  const h = pcgHost((pcgHost((i ^ pcgHost(seed >>> 0)) >>> 0) + 0x9e3779b9) >>> 0);
  return Math.fround(cat + (h >>> 8) / 16777216);
}

/**
 * The sampler's rule on the host: per category, the first k in (key descending, index ascending)
 * order, k = min(#pos, ⌊batch·fraction⌋) and min(#neg, batch - k_pos). keys defaults to
 * refSamplerKey (hand-made keys for the tie tests).
 */
export function refSampler(labels: ArrayLike<number>, o: { batchSizePerImage: number; positiveFraction: number; seed: number; random: boolean }, keys?: ArrayLike<number>): { pos: Int32Array; neg: Int32Array } {
  const N = labels.length;
  const key = keys ?? Float64Array.from({ length: N }, (_, i) => refSamplerKey(labels[i], i, o.seed, o.random));
  const order = (want: (l: number) => boolean) => Array.from({ length: N }, (_, i) => i).filter((i) => want(labels[i])).sort((a, b) => key[b] - key[a] || a - b);
  const P = order((l) => l >= 1), Q = order((l) => l === 0);
  const kPos = Math.min(P.length, Math.floor(o.batchSizePerImage * o.positiveFraction));
  const kNeg = Math.min(Q.length, o.batchSizePerImage - kPos);
  const pos = new Int32Array(N), neg = new Int32Array(N);
  P.slice(0, kPos).forEach((i) => (pos[i] = 1));
  Q.slice(0, kNeg).forEach((i) => (neg[i] = 1));
  return { pos, neg };
}
