// Box kernels with torchvision semantics (ops/boxes.py, models/detection/_utils.py,
// anchor_utils.py): pairwise IoU, BoxCoder encode/decode, clip, small-box mask, stream compaction,
// anchor grids (torchvision and py-faster-rcnn base anchors), Matcher (the balanced
// positive/negative sampler is in sampler.ts). Boxes are xyxy f32 [N, 4] contiguous.
import { type Launch, cdiv, grid1d, WG_LINEAR, workgroupScanWgsl } from './common.ts';

const WG = 256;
const lin = (body: string, bindings: string, uniforms: [string, 'u32' | 'i32' | 'f32' | 'vec4f'][], key: string, values: number[], n: number, extra = ''): Launch => ({
  key,
  build: () => ({
    uniforms: [['n', 'u32'], ...uniforms],
    code: `
${bindings}
${WG_LINEAR}${extra}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }
  ${body}
}`,
  }),
  uniforms: [n, ...values],
  grid: grid1d(cdiv(n, WG)),
});

/**
 * iou [B, N, M] of a [B, N, 4] and b [B, M, 4] (torchvision box_iou: no +1), B = 1 for plain
 * [N, M]; aShared / bShared: that operand is one [N|M, 4] used by every batch entry.
 * Bindings: a, b, iou.
 */
export function boxIouLaunch(N: number, M: number, B = 1, aShared = false, bShared = false): Launch {
  return lin(`
  let r = i / u.M; let c = i % u.M;
  let bi = r / u.N;
  let p = a[bi * u.aRows + r % u.N]; let q = b[bi * u.bRows + c];
  let w = max(min(p.z, q.z) - max(p.x, q.x), 0.0);
  let h = max(min(p.w, q.w) - max(p.y, q.y), 0.0);
  let inter = w * h;
  iou[i] = inter / ((p.z - p.x) * (p.w - p.y) + (q.z - q.x) * (q.w - q.y) - inter);`,
  `@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> iou: array<f32>;`, [['M', 'u32'], ['N', 'u32'], ['aRows', 'u32'], ['bRows', 'u32']], 'box:iou', [M, N, aShared ? 0 : N, bShared ? 0 : M], B * N * M);
}

/**
 * BoxCoder.encode_single(gt, proposals) → deltas [N,4]; propRows < N repeats the proposals (row
 * i uses i % propRows: shared anchors of a batch). Bindings: gt, prop, out.
 */
export function encodeLaunch(N: number, weights: number[], propRows = N): Launch {
  return lin(`
  let g = gt[i]; let p = prop[i % u.pn];
  let ew = p.z - p.x; let eh = p.w - p.y; let ex = p.x + 0.5 * ew; let ey = p.y + 0.5 * eh;
  let gw = g.z - g.x; let gh = g.w - g.y; let gx = g.x + 0.5 * gw; let gy = g.y + 0.5 * gh;
  out[i] = vec4f(u.wts.x * (gx - ex) / ew, u.wts.y * (gy - ey) / eh, u.wts.z * log(gw / ew), u.wts.w * log(gh / eh));`,
  `@group(0) @binding(0) var<storage, read> gt: array<vec4f>;
@group(0) @binding(1) var<storage, read> prop: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;`, [['pn', 'u32'], ['wts', 'vec4f']], 'box:encode', [propRows, ...weights], N);
}

/**
 * BoxCoder.decode_single: codes [N, K*4] on boxes [N,4] → [N, K*4]; dw/dh clamped at `clip`
 * (log(1000/16)). Bindings: codes, boxes, out.
 */
export function decodeLaunch(N: number, K: number, weights: number[], clip: number): Launch {
  return lin(`
  let b = boxes[i / u.K]; let d = codes[i];
  let w = b.z - b.x; let h = b.w - b.y; let cx = b.x + 0.5 * w; let cy = b.y + 0.5 * h;
  let dw = min(d.z / u.wts.z, u.clip); let dh = min(d.w / u.wts.w, u.clip);
  let px = d.x / u.wts.x * w + cx; let py = d.y / u.wts.y * h + cy;
  let hw = 0.5 * (exp(dw) * w); let hh = 0.5 * (exp(dh) * h);
  out[i] = vec4f(px - hw, py - hh, px + hw, py + hh);`,
  `@group(0) @binding(0) var<storage, read> codes: array<vec4f>;
@group(0) @binding(1) var<storage, read> boxes: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;`, [['K', 'u32'], ['wts', 'vec4f'], ['clip', 'f32']], 'box:decode', [K, ...weights, clip], N * K);
}

/** clip_boxes_to_image: x into [0, W], y into [0, H]. Bindings: boxes, out. */
export function clipLaunch(N: number, H: number, W: number): Launch {
  return lin(`let b = boxes[i]; out[i] = vec4f(clamp(b.x, 0.0, u.W), clamp(b.y, 0.0, u.H), clamp(b.z, 0.0, u.W), clamp(b.w, 0.0, u.H));`,
    `@group(0) @binding(0) var<storage, read> boxes: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;`, [['H', 'f32'], ['W', 'f32']], 'box:clip', [H, W], N);
}

/** remove_small_boxes as a mask: keep[i] = w >= minSize && h >= minSize (i32 0/1). Bindings: boxes, keep. */
export function smallMaskLaunch(N: number, minSize: number): Launch {
  return lin(`let b = boxes[i]; keep[i] = select(0, 1, (b.z - b.x) >= u.minSize && (b.w - b.y) >= u.minSize);`,
    `@group(0) @binding(0) var<storage, read> boxes: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> keep: array<i32>;`, [['minSize', 'f32']], 'box:small', [minSize], N);
}

/**
 * Stream compaction of each row of mask [B, N] in one workgroup per row: idx[b, 0..count) =
 * positions i with mask[b, i] != 0 in order, idx[b, count..N) = -1, count[b] = count. Each thread
 * scans a contiguous range; a workgroup scan of the per-thread counts gives each range its output
 * offset. Bindings: mask, idx, count.
 */
export function compactLaunch(N: number, B = 1): Launch {
  if (B > 65535) throw new Error(`compactLaunch: ${B} rows > 65535 workgroups`);
  return {
    key: 'box:compact',
    build: () => ({
      uniforms: [['n', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> mask: array<i32>;
@group(0) @binding(1) var<storage, read_write> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> count: array<i32>;
var<workgroup> sums: array<u32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x * u.n;
  let per = (u.n + ${WG - 1}u) / ${WG}u;
  let s = lid * per; let e = min(s + per, u.n);
  var c = 0u;
  for (var i = s; i < e; i++) { if (mask[row + i] != 0) { c++; } }
  sums[lid] = c;
  workgroupBarrier();
  // Hillis-Steele inclusive scan
  ${workgroupScanWgsl(WG)}
  var o = sums[lid] - c;
  for (var i = s; i < e; i++) { if (mask[row + i] != 0) { idx[row + o] = i32(i); o++; } }
  let total = sums[${WG - 1}u];
  for (var i = total + lid; i < u.n; i += ${WG}u) { idx[row + i] = -1; }
  if (lid == 0u) { count[wid.x] = i32(total); }
}`,
    }),
    uniforms: [N],
    grid: [B],
  };
}

/**
 * Anchors of one level into out rows [rowOffset, rowOffset + Hf·Wf·A): (y, x, a) order, shift
 * (x·strideW, y·strideH) (no half-stride offset, as torchvision). Bindings: base [A,4], out.
 */
export function anchorGridLaunch(Hf: number, Wf: number, A: number, strideH: number, strideW: number, rowOffset: number): Launch {
  return lin(`
  let a = i % u.A; let x = (i / u.A) % u.Wf; let y = i / (u.A * u.Wf);
  let sx = f32(x) * u.sw; let sy = f32(y) * u.sh;
  out[u.off + i] = base[a] + vec4f(sx, sy, sx, sy);`,
  `@group(0) @binding(0) var<storage, read> base: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;`, [['A', 'u32'], ['Wf', 'u32'], ['sh', 'f32'], ['sw', 'f32'], ['off', 'u32']], 'box:anchors', [A, Wf, strideH, strideW, rowOffset], Hf * Wf * A);
}

// ---- matcher ------------------------------------------------------------------------------------

/** Per prediction (b, n): best gt (first max over m) of iou [B, M, N] → vals, args [B, N]. Bindings: iou, vals, arg. */
export function matchColMaxLaunch(M: number, N: number, B = 1): Launch {
  return lin(`
  let at = (i / u.N) * u.M * u.N + i % u.N;
  var best = iou[at]; var arg = 0u;
  for (var m = 1u; m < u.M; m++) { let v = iou[at + m * u.N]; if (v > best) { best = v; arg = m; } }
  vals[i] = best; args[i] = i32(arg);`,
  `@group(0) @binding(0) var<storage, read> iou: array<f32>;
@group(0) @binding(1) var<storage, read_write> vals: array<f32>;
@group(0) @binding(2) var<storage, read_write> args: array<i32>;`, [['M', 'u32'], ['N', 'u32']], 'match:col', [M, N], B * N);
}

/** Per gt row (b, m) of iou [B, M, N]: highest IoU over all predictions (one workgroup per row) → best [B, M]. Bindings: iou, best. */
export function matchRowMaxLaunch(M: number, N: number, B = 1): Launch {
  return {
    key: 'match:row',
    build: () => ({
      uniforms: [['N', 'u32'], ['rows', 'u32']],
      code: `
@group(0) @binding(0) var<storage, read> iou: array<f32>;
@group(0) @binding(1) var<storage, read_write> best: array<f32>;
var<workgroup> red: array<f32, ${WG}>;
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m = wgLinear(wid, nwg);
  // grid1d may round the grid up: whole workgroups past the last row leave (uniform per workgroup)
  if (m >= u.rows) { return; }
  var v = -3.402823466e38;
  for (var n = lid; n < u.N; n += ${WG}u) { v = max(v, iou[m * u.N + n]); }
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { best[m] = red[0]; }
}`,
    }),
    uniforms: [N, B * M],
    grid: grid1d(B * M),
  };
}

/**
 * Matcher thresholds (< low: -1, [low, high): -2, >= high: gt index) and, if allowLow, the
 * low-quality rule: a prediction tied at some gt's highest IoU keeps its best gt. labels: 1 for
 * matched, 0 for -1, -1 for -2 (torchvision RPN/RoI heads). iou [B, M, N], best [B, M]; vals,
 * args, matches, labels [B, N]. Bindings: iou, vals, args, best, matches, labels.
 */
export function matchFinalLaunch(M: number, N: number, high: number, low: number, allowLow: boolean, B = 1): Launch {
  return lin(`
  let bm = (i / u.N) * u.M; let j = i % u.N;
  let v = vals[i];
  var m = args[i];
  if (v < u.low) { m = -1; } else if (v < u.high) { m = -2; }
  if (u.allowLow != 0u && m < 0) {
    // best[g] < 0 marks a padding GT row (callers fill its IoUs with -1): it matches nothing
    for (var g = 0u; g < u.M; g++) { let bg = best[bm + g]; if (bg >= 0.0 && iou[(bm + g) * u.N + j] == bg) { m = args[i]; break; } }
  }
  matches[i] = m;
  labels[i] = select(select(-1, 0, m == -1), 1, m >= 0);`,
  `@group(0) @binding(0) var<storage, read> iou: array<f32>;
@group(0) @binding(1) var<storage, read> vals: array<f32>;
@group(0) @binding(2) var<storage, read> args: array<i32>;
@group(0) @binding(3) var<storage, read> best: array<f32>;
@group(0) @binding(4) var<storage, read_write> matches: array<i32>;
@group(0) @binding(5) var<storage, read_write> labels: array<i32>;`, [['M', 'u32'], ['N', 'u32'], ['high', 'f32'], ['low', 'f32'], ['allowLow', 'u32']], 'match:final', [M, N, high, low, allowLow ? 1 : 0], B * N);
}

// ---- float64 references -----------------------------------------------------------------------

export function refBoxIou(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const N = a.length / 4, M = b.length / 4;
  const out = new Float64Array(N * M);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < M; j++) {
      const w = Math.max(Math.min(a[4 * i + 2], b[4 * j + 2]) - Math.max(a[4 * i], b[4 * j]), 0);
      const h = Math.max(Math.min(a[4 * i + 3], b[4 * j + 3]) - Math.max(a[4 * i + 1], b[4 * j + 1]), 0);
      const inter = w * h;
      out[i * M + j] = inter / ((a[4 * i + 2] - a[4 * i]) * (a[4 * i + 3] - a[4 * i + 1]) + (b[4 * j + 2] - b[4 * j]) * (b[4 * j + 3] - b[4 * j + 1]) - inter);
    }
  return out;
}

export function refEncode(gt: ArrayLike<number>, prop: ArrayLike<number>, w: number[]): Float64Array {
  const out = new Float64Array(gt.length);
  for (let i = 0; i < gt.length / 4; i++) {
    const [px1, py1, px2, py2] = [0, 1, 2, 3].map((k) => prop[4 * i + k]);
    const [gx1, gy1, gx2, gy2] = [0, 1, 2, 3].map((k) => gt[4 * i + k]);
    const ew = px2 - px1, eh = py2 - py1, gw = gx2 - gx1, gh = gy2 - gy1;
    out.set([(w[0] * (gx1 + 0.5 * gw - (px1 + 0.5 * ew))) / ew, (w[1] * (gy1 + 0.5 * gh - (py1 + 0.5 * eh))) / eh, w[2] * Math.log(gw / ew), w[3] * Math.log(gh / eh)], 4 * i);
  }
  return out;
}

export function refDecode(codes: ArrayLike<number>, boxes: ArrayLike<number>, K: number, w: number[], clip = Math.log(1000 / 16)): Float64Array {
  const out = new Float64Array(codes.length);
  for (let i = 0; i < codes.length / 4; i++) {
    const b = Math.floor(i / K);
    const bw = boxes[4 * b + 2] - boxes[4 * b], bh = boxes[4 * b + 3] - boxes[4 * b + 1];
    const cx = boxes[4 * b] + 0.5 * bw, cy = boxes[4 * b + 1] + 0.5 * bh;
    const px = (codes[4 * i] / w[0]) * bw + cx, py = (codes[4 * i + 1] / w[1]) * bh + cy;
    const hw = 0.5 * Math.exp(Math.min(codes[4 * i + 2] / w[2], clip)) * bw, hh = 0.5 * Math.exp(Math.min(codes[4 * i + 3] / w[3], clip)) * bh;
    out.set([px - hw, py - hh, px + hw, py + hh], 4 * i);
  }
  return out;
}

const roundHalfEven = (v: number) => {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
};

/** torchvision AnchorGenerator.generate_anchors in float32 arithmetic, rounded half-to-even: [A*4]. */
export function torchvisionBaseAnchors(sizes: number[], aspectRatios: number[]): number[] {
  const f = Math.fround;
  const out: number[] = [];
  for (const ar of aspectRatios) {
    const hr = f(Math.sqrt(f(ar)));
    const wr = f(1 / hr);
    for (const s of sizes) {
      const ws = f(wr * f(s)), hs = f(hr * f(s));
      out.push(...[-ws, -hs, ws, hs].map((v) => roundHalfEven(f(v / 2))));
    }
  }
  return out;
}

/** py-faster-rcnn generate_anchors (float64, numpy rounding half-to-even): [A*4], ratio outer, scale inner. */
export function pyFasterBaseAnchors(baseSize = 16, ratios = [0.5, 1, 2], scales = [8, 16, 32]): number[] {
  const whctr = (a: number[]) => {
    const w = a[2] - a[0] + 1, h = a[3] - a[1] + 1;
    return [w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)];
  };
  const mk = (w: number, h: number, xc: number, yc: number) => [xc - 0.5 * (w - 1), yc - 0.5 * (h - 1), xc + 0.5 * (w - 1), yc + 0.5 * (h - 1)];
  const [w, h, xc, yc] = whctr([0, 0, baseSize - 1, baseSize - 1]);
  const out: number[] = [];
  for (const r of ratios) {
    const ws = roundHalfEven(Math.sqrt((w * h) / r));
    const hs = roundHalfEven(ws * r);
    const [w2, h2, xc2, yc2] = whctr(mk(ws, hs, xc, yc));
    for (const s of scales) out.push(...mk(w2 * s, h2 * s, xc2, yc2));
  }
  return out;
}

export function refAnchorGrid(base: number[], Hf: number, Wf: number, strideH: number, strideW: number): Float64Array {
  const A = base.length / 4;
  const out = new Float64Array(Hf * Wf * A * 4);
  for (let y = 0; y < Hf; y++)
    for (let x = 0; x < Wf; x++)
      for (let a = 0; a < A; a++) {
        const o = ((y * Wf + x) * A + a) * 4;
        out.set([base[4 * a] + x * strideW, base[4 * a + 1] + y * strideH, base[4 * a + 2] + x * strideW, base[4 * a + 3] + y * strideH], o);
      }
  return out;
}

/**
 * torchvision Matcher on iou [M, N]: matches (-1 below low, -2 between) and labels (1/0/-1). A
 * row whose best IoU is negative is a padding GT (matchFinalLaunch): no low-quality match from it.
 */
export function refMatcher(iou: ArrayLike<number>, M: number, N: number, high: number, low: number, allowLow: boolean): { matches: Int32Array; labels: Int32Array } {
  const matches = new Int32Array(N), labels = new Int32Array(N);
  const best = Array.from({ length: M }, (_, m) => Math.max(...Array.from({ length: N }, (_, n) => iou[m * N + n])));
  for (let n = 0; n < N; n++) {
    let v = -Infinity, arg = 0;
    for (let m = 0; m < M; m++) if (iou[m * N + n] > v) { v = iou[m * N + n]; arg = m; }
    let r = v < low ? -1 : v < high ? -2 : arg;
    if (allowLow && r < 0) for (let m = 0; m < M; m++) if (best[m] >= 0 && iou[m * N + n] === best[m]) { r = arg; break; }
    matches[n] = r;
    labels[n] = r >= 0 ? 1 : r === -1 ? 0 : -1;
  }
  return { matches, labels };
}
