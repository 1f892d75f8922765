// Greedy NMS on the GPU with torchvision semantics (suppress when IoU > thresh, strictly; areas
// without +1; kept indices in descending-score order), after torchvision's CUDA nms_kernel.cu
// and mmcv's on-GPU greedy gather (webgpu-dawn-notes.md §5.2), ported to u32 words:
//   1. the caller sorts scores (kernels/sort.ts) and gathers boxes into score order;
//   2. nmsMask: bit t of mask[i][w] = box (32w+t) is after i and overlaps it (32-box tiles);
//   3. nmsGreedy: one workgroup walks 32-box blocks in order. Word w of `remv` (suppressed bits)
//      is owned by thread w % WG, so the owner of the current block resolves its 32 boxes serially
//      (appending kept indices: the running count is the prefix sum that compacts the output),
//      publishes the kept bits through workgroupUniformLoad (a uniform value + barrier), and every
//      thread ORs the kept rows into the words it owns.
// Rows are processed in chunks so the mask stays bounded (N²/8 bytes at once would be 7.8 GB for
// 250k boxes); the mask pass of a chunk skips rows already suppressed by earlier chunks.
// Batched NMS compares a category per box (IoU 0 across categories), which is what torchvision's
// coordinate-offset trick computes, without rounding the offset coordinates in f32.
import { type Launch, cdiv, grid1d, WG_LINEAR, workgroupScanWgsl } from './common.ts';

const WG = 256;

/** Largest f32 t such that (f32 iou > t) ⇔ (iou > thresh in float64), as torchvision compares a float IoU with a double. */
export function f32ThreshBelow(thresh: number): number {
  const f = Math.fround(thresh);
  if (f <= thresh) return f;
  const buf = new Float32Array([f]);
  const bits = new Int32Array(buf.buffer);
  bits[0] += f > 0 ? -1 : 1;
  return buf[0];
}

/** Rows per chunk (a multiple of 32) so that the chunk's mask fits maskBytes. */
export function nmsChunkRows(N: number, maskBytes = 64 << 20): number {
  const words = Math.max(cdiv(N, 32), 1);
  const rows = Math.max(32, Math.floor(maskBytes / (words * 4) / 32) * 32);
  return Math.min(rows, cdiv(N, 32) * 32);
}

/**
 * Row ranges [r0, r0+rows) of the greedy chunks: 256 rows first, doubling up to the mask budget,
 * so the high-score boxes kept early suppress rows before later chunks pay for their masks.
 */
export function nmsChunks(N: number, maskBytes = 64 << 20): [number, number][] {
  const maxRows = nmsChunkRows(N, maskBytes);
  const out: [number, number][] = [];
  let size = Math.min(256, maxRows);
  for (let r0 = 0; r0 < N; r0 += size, size = Math.min(2 * size, maxRows)) out.push([r0, Math.min(size, N - r0)]);
  return out;
}

/** sorted boxes [N,4] and categories from order: sb[i] = boxes[order[i]]. Bindings: boxes, cats, order, sb, sc. */
export function nmsGatherLaunch(N: number, useCats: boolean): Launch {
  return {
    key: `nms:gather:${useCats}`,
    build: () => ({
      uniforms: [['n', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> boxes: array<vec4f>;
@group(0) @binding(1) var<storage, read> cats: array<i32>;
@group(0) @binding(2) var<storage, read> order: array<i32>;
@group(0) @binding(3) var<storage, read_write> sb: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> sc: array<i32>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let o = u32(order[i]);
  sb[i] = boxes[o];
  sc[i] = ${useCats ? 'cats[o]' : '0'};
}`,
    }),
    uniforms: [N],
    grid: grid1d(cdiv(N, WG)),
  };
}

// Column tiles per workgroup: at least 8 (lavapipe pays microseconds per workgroup), and enough
// that a chunk launches <= 16 workgroups per row block, so chunks whose rows are all suppressed
// already (each workgroup exits at once) cost little.
const colsPerWg = (tiles: number) => Math.max(8, Math.ceil(tiles / 16));

/** Mask words for rows [r0, r0+rows) and column blocks >= r0/32. Bindings: sb, sc, remv, mask. */
export function nmsMaskLaunch(N: number, r0: number, rows: number, iouThresh: number): Launch {
  const words = cdiv(N, 32);
  const b0 = r0 / 32;
  return {
    key: 'nms:mask',
    build: () => ({
      uniforms: [['N', 'u32'], ['words', 'u32'], ['r0', 'u32'], ['thresh', 'f32'], ['cols', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> sb: array<vec4f>;
@group(0) @binding(1) var<storage, read> sc: array<i32>;
@group(0) @binding(2) var<storage, read> remv: array<u32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@compute @workgroup_size(32) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rowBlock = u.r0 / 32u + wid.y;
  let cb0 = max(u.r0 / 32u + wid.x * u.cols, rowBlock);
  let cb1 = min(u.r0 / 32u + (wid.x + 1u) * u.cols, u.words);
  if (cb0 >= cb1) { return; }
  let i = rowBlock * 32u + lid;
  if (i >= u.N) { return; }
  // rows suppressed by earlier chunks are never read by the greedy pass
  if (((remv[rowBlock] >> lid) & 1u) != 0u) { return; }
  let a = sb[i];
  let areaA = (a.z - a.x) * (a.w - a.y);
  let ca = sc[i];
  for (var cb = cb0; cb < cb1; cb++) {
    var bits = 0u;
    let j0 = cb * 32u;
    let j1 = min(j0 + 32u, u.N);
    // j runs over the whole block (not from i+1) so sb[j] is the same address in every lane:
    // lavapipe then loads it once per SIMD group instead of gathering
    for (var j = j0; j < j1; j++) {
      let b = sb[j];
      // torchvision nms_kernel.cpp order of operations, f32
      let w = max(min(a.z, b.z) - max(a.x, b.x), 0.0);
      let h = max(min(a.w, b.w) - max(a.y, b.y), 0.0);
      let inter = w * h;
      // no overlap: IoU 0 (or 0/0), never > a thresh >= 0; skips the division for most pairs
      if (j > i && (inter > 0.0 || u.thresh < 0.0) && sc[j] == ca) {
        let iou = inter / (areaA + (b.z - b.x) * (b.w - b.y) - inter);
        if (iou > u.thresh) { bits |= 1u << (j - j0); }
      }
    }
    mask[(i - u.r0) * u.words + cb] = bits;
  }
}`,
    }),
    uniforms: [N, words, r0, f32ThreshBelow(iouThresh), colsPerWg(words - b0)],
    grid: [cdiv(words - b0, colsPerWg(words - b0)), cdiv(rows, 32)],
  };
}

/**
 * Greedy pass over rows [r0, r0+rows) in one workgroup; state (remv words, kept count) persists
 * in buffers across chunks. Bindings: mask, order, remv, keep, count.
 */
export function nmsGreedyLaunch(N: number, r0: number, rows: number): Launch {
  const words = cdiv(N, 32);
  return {
    key: 'nms:greedy',
    build: () => ({
      uniforms: [['N', 'u32'], ['words', 'u32'], ['r0', 'u32'], ['r1', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> mask: array<u32>;
@group(0) @binding(1) var<storage, read> order: array<i32>;
@group(0) @binding(2) var<storage, read_write> remv: array<u32>;
@group(0) @binding(3) var<storage, read_write> keep: array<i32>;
@group(0) @binding(4) var<storage, read_write> count: array<i32>;
// double-buffered so a thread one block ahead never overwrites what a slower one still reads
var<workgroup> keptW: array<u32, 2>;
var<workgroup> cnt: u32;
@compute @workgroup_size(${WG}) fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { cnt = u32(count[0]); }
  let b0 = u.r0 / 32u;
  let b1 = (u.r1 + 31u) / 32u;
  for (var blk = b0; blk < b1; blk++) {
    if (blk % ${WG}u == lid) {
      // this thread owns word blk: every earlier OR into it was its own write
      var cur = remv[blk];
      var kept = 0u;
      var c = cnt;
      let rowEnd = min(32u, u.N - blk * 32u);
      for (var t = 0u; t < rowEnd; t++) {
        if (((cur >> t) & 1u) == 0u) {
          let row = blk * 32u + t;
          kept |= 1u << t;
          cur |= mask[(row - u.r0) * u.words + blk];
          keep[c] = order[row];
          c++;
        }
      }
      remv[blk] = cur;
      cnt = c;
      keptW[blk & 1u] = kept;
    }
    let kept = workgroupUniformLoad(&keptW[blk & 1u]);
    if (kept != 0u) {
      let first = blk + 1u;
      var w = first + (lid + ${WG}u - first % ${WG}u) % ${WG}u;
      for (; w < u.words; w += ${WG}u) {
        var acc = remv[w];
        var bits = kept;
        while (bits != 0u) {
          let t = firstTrailingBit(bits);
          bits &= bits - 1u;
          acc |= mask[(blk * 32u + t - u.r0) * u.words + w];
        }
        remv[w] = acc;
      }
    }
  }
  workgroupBarrier();
  if (lid == 0u) { count[0] = i32(cnt); }
}`,
    }),
    uniforms: [N, words, r0, r0 + rows],
    grid: [1],
  };
}

// ---- float64 reference ------------------------------------------------------------------------

/** Boxes xyxy [N,4]; torchvision nms (stable descending sort, IoU > thresh suppresses, no +1). Optional categories (batched_nms). */
export function refNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThresh: number, cats?: ArrayLike<number>): number[] {
  const N = scores.length;
  const order = Array.from({ length: N }, (_, i) => i).sort((i, j) => (scores[i] > scores[j] ? -1 : scores[i] < scores[j] ? 1 : i - j));
  const removed = new Uint8Array(N);
  const keep: number[] = [];
  const area = (i: number) => (boxes[4 * i + 2] - boxes[4 * i]) * (boxes[4 * i + 3] - boxes[4 * i + 1]);
  for (let a = 0; a < N; a++) {
    const i = order[a];
    if (removed[i]) continue;
    keep.push(i);
    for (let b = a + 1; b < N; b++) {
      const j = order[b];
      if (removed[j] || (cats && cats[i] !== cats[j])) continue;
      const w = Math.max(Math.min(boxes[4 * i + 2], boxes[4 * j + 2]) - Math.max(boxes[4 * i], boxes[4 * j]), 0);
      const h = Math.max(Math.min(boxes[4 * i + 3], boxes[4 * j + 3]) - Math.max(boxes[4 * i + 1], boxes[4 * j + 1]), 0);
      const inter = w * h;
      if (inter / (area(i) + area(j) - inter) > iouThresh) removed[j] = 1;
    }
  }
  return keep;
}

/**
 * Splits a batched NMS result by image (one workgroup per image): out [B, topN] = the first topN
 * kept indices whose box belongs to image b, in kept (descending-score) order, then -1;
 * counts [B] = how many. Each thread scans a contiguous range of keep[0..count), a workgroup scan
 * of per-thread matches gives output offsets. Bindings: keep, count, imageOf, out, counts.
 */
export function nmsSplitLaunch(N: number, B: number, topN: number): Launch {
  return {
    key: 'nms:split',
    build: () => ({
      uniforms: [['N', 'u32'], ['topN', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> keep: array<i32>;
@group(0) @binding(1) var<storage, read> count: array<i32>;
@group(0) @binding(2) var<storage, read> imageOf: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<i32>;
@group(0) @binding(4) var<storage, read_write> counts: array<i32>;
var<workgroup> sums: array<u32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = i32(wid.x);
  let n = min(u32(max(count[0], 0)), u.N);
  let per = (n + ${WG - 1}u) / ${WG}u;
  let s = lid * per; let e = min(s + per, n);
  var c = 0u;
  for (var i = s; i < e; i++) { if (imageOf[keep[i]] == b) { c++; } }
  sums[lid] = c;
  workgroupBarrier();
  ${workgroupScanWgsl(WG)}
  var o = sums[lid] - c;
  let row = wid.x * u.topN;
  for (var i = s; i < e && o < u.topN; i++) { if (imageOf[keep[i]] == b) { out[row + o] = keep[i]; o++; } }
  let total = min(sums[${WG - 1}u], u.topN);
  for (var i = total + lid; i < u.topN; i += ${WG}u) { out[row + i] = -1; }
  if (lid == 0u) { counts[wid.x] = i32(total); }
}`,
    }),
    uniforms: [N, topN],
    grid: [B],
  };
}
