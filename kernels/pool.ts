// Pooling over NCHW planes, one thread per output (forward) or per input (backward, gather form:
// each input pixel sums the outputs whose window holds it, so no atomics and a deterministic order).
//   max pool: torch semantics incl. ceil_mode (the last window must start inside the input or the
//             left padding), padding counts as -inf; saves the argmax (index within the plane).
//   avg pool: count_include_pad (torch default true: divisor = window clipped to the padded
//             input, not to the ceil-mode overhang) or not.
//   adaptive avg pool: window [floor(o·In/Out), ceil((o+1)·In/Out)).
import { type Launch, cdiv, grid1d, WG_LINEAR } from './common.ts';

export interface PoolGeom { planes: number; H: number; W: number; Ho: number; Wo: number; kH: number; kW: number; sH: number; sW: number; pH: number; pW: number }

/** torch pooling_output_shape: ceil mode drops a last window that would start in the right padding. */
export function poolOutSize(inPx: number, k: number, stride: number, pad: number, ceil: boolean, dil = 1): number {
  const span = inPx + 2 * pad - dil * (k - 1) - 1;
  let o = Math.floor((span + (ceil ? stride - 1 : 0)) / stride) + 1;
  if (ceil && (o - 1) * stride >= inPx + pad) o--;
  return o;
}

const WG = 256;
const U: [string, 'u32' | 'i32'][] = [['n', 'u32'], ['H', 'u32'], ['W', 'u32'], ['Ho', 'u32'], ['Wo', 'u32'], ['kH', 'i32'], ['kW', 'i32'], ['sH', 'i32'], ['sW', 'i32'], ['pH', 'i32'], ['pW', 'i32']];
const vals = (g: PoolGeom, n: number) => [n, g.H, g.W, g.Ho, g.Wo, g.kH, g.kW, g.sH, g.sW, g.pH, g.pW];
const head = (bindings: string) => `${bindings}
${WG_LINEAR}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wgLinear(wid, nwg) * ${WG}u + lid;
  if (i >= u.n) { return; }`;

/** Max pool forward. Bindings: X [planes,H,W] contiguous, Y [planes,Ho,Wo], Arg (i32 index in the plane). */
export function maxPoolLaunch(g: PoolGeom): Launch {
  const n = g.planes * g.Ho * g.Wo;
  return {
    key: 'maxpool',
    build: () => ({
      uniforms: U,
      code: `${head(`@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read_write> Arg: array<i32>;`)}
  let plane = i / (u.Ho * u.Wo);
  let r = i % (u.Ho * u.Wo);
  let h0 = i32(r / u.Wo) * u.sH - u.pH;
  let w0 = i32(r % u.Wo) * u.sW - u.pW;
  let base = plane * u.H * u.W;
  var best = -3.4028234663852886e38;
  var arg = -1;
  for (var h = max(h0, 0); h < min(h0 + u.kH, i32(u.H)); h++) {
    for (var w = max(w0, 0); w < min(w0 + u.kW, i32(u.W)); w++) {
      let v = X[base + u32(h) * u.W + u32(w)];
      // torch: NaN propagates; ties keep the first index
      if (v > best || (v != v && best == best) || arg < 0) { best = v; arg = h * i32(u.W) + w; }
    }
  }
  Y[i] = best;
  Arg[i] = arg;
}`,
    }),
    uniforms: vals(g, n),
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Output rows [lo, hi] whose window (start o·s − p, size k) holds input row `x`. */
const windowRange = (x: string, k: string, s: string, p: string, out: string, name: string) =>
  `let ${name}lo = max((${x} + ${p} - ${k} + ${s}) / ${s}, 0); let ${name}hi = min((${x} + ${p}) / ${s}, i32(${out}) - 1);`;

/** Offsets [lo, hi] of the outputs whose window (start o·s − p, size k) can hold an input in s·m .. s·m+s−1, relative to m. */
const blockSpan = (k: number, s: number, p: number): [number, number] => [Math.ceil((p - k + 1) / s), Math.floor((s - 1 + p) / s)];

/** Whether maxPoolBackwardLaunch takes the blocked path (small unrolled tile; planes on grid z). */
export function maxPoolBackwardBlocked(g: PoolGeom): boolean {
  const [hlo, hhi] = blockSpan(g.kH, g.sH, g.pH);
  const [wlo, whi] = blockSpan(g.kW, g.sW, g.pW);
  return g.planes <= 65535 && g.sH * g.sW * (hhi - hlo + 1) * (whi - wlo + 1) <= 64;
}

/**
 * Max pool backward, blocked gather: one thread per sH×sW block of inputs (rows sH·m ..), which
 * only outputs m+lo .. m+hi (blockSpan, per axis) can cover; it loads their Arg/DY once and each
 * input sums DY where Arg names it. Any output whose argmax is the input covers it, so checking
 * that superset in ascending (oh, ow) order adds exactly the terms the per-pixel gather adds, in
 * its order, plus +0.0s: bit-identical. Strides and spans are baked into the WGSL (and the key).
 */
function maxPoolBackwardBlockedLaunch(g: PoolGeom): Launch {
  const [hlo, hhi] = blockSpan(g.kH, g.sH, g.pH);
  const [wlo, whi] = blockSpan(g.kW, g.sW, g.pW);
  const ohs = Array.from({ length: hhi - hlo + 1 }, (_, i) => i);
  const ows = Array.from({ length: whi - wlo + 1 }, (_, i) => i);
  const loads = [
    ...ohs.map((a) => `let oh${a} = mh + ${hlo + a}; let vh${a} = oh${a} >= 0 && oh${a} < i32(u.Ho); let rh${a} = ob + u32(clamp(oh${a}, 0, i32(u.Ho) - 1)) * u.Wo;`),
    ...ows.map((b) => `let ow${b} = mw + ${wlo + b}; let vw${b} = ow${b} >= 0 && ow${b} < i32(u.Wo); let cw${b} = u32(clamp(ow${b}, 0, i32(u.Wo) - 1));`),
    ...ohs.flatMap((a) => ows.map((b) => `let g${a}_${b} = DY[rh${a} + cw${b}]; let x${a}_${b} = select(-1, Arg[rh${a} + cw${b}], vh${a} && vw${b});`)),
  ].join('\n  ');
  const pix = Array.from({ length: g.sH }, (_, dh) => Array.from({ length: g.sW }, (_, dw) => `{ let h = mh * ${g.sH} + ${dh}; let w = mw * ${g.sW} + ${dw};
    if (h < i32(u.H) && w < i32(u.W)) {
      let r = h * i32(u.W) + w;
      var acc = 0.0;
      ${ohs.flatMap((a) => ows.map((b) => `acc += select(0.0, g${a}_${b}, x${a}_${b} == r);`)).join(' ')}
      DX[ib + u32(r)] = acc;
    } }`).join('\n  ')).join('\n  ');
  const WX = 8, WY = 8;
  return {
    key: `maxpool-bwd:blk:${g.kH}x${g.kW}:s${g.sH}x${g.sW}:p${g.pH}x${g.pW}`,
    build: () => ({
      uniforms: [['H', 'u32'], ['W', 'u32'], ['Ho', 'u32'], ['Wo', 'u32']],
      code: `@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> Arg: array<i32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(${WX}, ${WY}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let mw = i32(gid.x); let mh = i32(gid.y); let plane = gid.z;
  if (mw * ${g.sW} >= i32(u.W) || mh * ${g.sH} >= i32(u.H)) { return; }
  let ob = plane * u.Ho * u.Wo;
  let ib = plane * u.H * u.W;
  ${loads}
  ${pix}
}`,
    }),
    uniforms: [g.H, g.W, g.Ho, g.Wo],
    grid: [cdiv(cdiv(g.W, g.sW), WX), cdiv(cdiv(g.H, g.sH), WY), g.planes],
  };
}

/** Max pool backward (gather). Bindings: DY [planes,Ho,Wo], Arg, DX [planes,H,W]. */
export function maxPoolBackwardLaunch(g: PoolGeom): Launch {
  if (maxPoolBackwardBlocked(g)) return maxPoolBackwardBlockedLaunch(g);
  return maxPoolBackwardGatherLaunch(g);
}

/** Max pool backward, one thread per input pixel (general; also the blocked path's test oracle). */
export function maxPoolBackwardGatherLaunch(g: PoolGeom): Launch {
  const n = g.planes * g.H * g.W;
  return {
    key: 'maxpool-bwd',
    build: () => ({
      uniforms: U,
      code: `${head(`@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> Arg: array<i32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;`)}
  let plane = i / (u.H * u.W);
  let r = i32(i % (u.H * u.W));
  let h = r / i32(u.W);
  let w = r % i32(u.W);
  ${windowRange('h', 'u.kH', 'u.sH', 'u.pH', 'u.Ho', 'oh')}
  ${windowRange('w', 'u.kW', 'u.sW', 'u.pW', 'u.Wo', 'ow')}
  var acc = 0.0;
  for (var oh = ohlo; oh <= ohhi; oh++) {
    for (var ow = owlo; ow <= owhi; ow++) {
      let o = plane * u.Ho * u.Wo + u32(oh) * u.Wo + u32(ow);
      if (Arg[o] == r) { acc += DY[o]; }
    }
  }
  DX[i] = acc;
}`,
    }),
    uniforms: vals(g, n),
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Divisor of the avg-pool window starting at (h0, w0) as torch avg_pool2d. */
const avgDivisor = (includePad: boolean) => includePad
  ? 'f32((min(h0 + u.kH, i32(u.H) + u.pH) - h0) * (min(w0 + u.kW, i32(u.W) + u.pW) - w0))'
  : 'f32((min(h0 + u.kH, i32(u.H)) - max(h0, 0)) * (min(w0 + u.kW, i32(u.W)) - max(w0, 0)))';

/** Avg pool forward. Bindings: X, Y. */
export function avgPoolLaunch(g: PoolGeom, includePad: boolean): Launch {
  const n = g.planes * g.Ho * g.Wo;
  return {
    key: `avgpool${includePad ? ':incpad' : ''}`,
    build: () => ({
      uniforms: U,
      code: `${head(`@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;`)}
  let plane = i / (u.Ho * u.Wo);
  let r = i % (u.Ho * u.Wo);
  let h0 = i32(r / u.Wo) * u.sH - u.pH;
  let w0 = i32(r % u.Wo) * u.sW - u.pW;
  let base = plane * u.H * u.W;
  var s = 0.0;
  for (var h = max(h0, 0); h < min(h0 + u.kH, i32(u.H)); h++) {
    for (var w = max(w0, 0); w < min(w0 + u.kW, i32(u.W)); w++) { s += X[base + u32(h) * u.W + u32(w)]; }
  }
  Y[i] = s / ${avgDivisor(includePad)};
}`,
    }),
    uniforms: vals(g, n),
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Avg pool backward (gather). Bindings: DY, DX. */
export function avgPoolBackwardLaunch(g: PoolGeom, includePad: boolean): Launch {
  const n = g.planes * g.H * g.W;
  return {
    key: `avgpool-bwd${includePad ? ':incpad' : ''}`,
    build: () => ({
      uniforms: U,
      code: `${head(`@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read_write> DX: array<f32>;`)}
  let plane = i / (u.H * u.W);
  let r = i32(i % (u.H * u.W));
  let h = r / i32(u.W);
  let w = r % i32(u.W);
  ${windowRange('h', 'u.kH', 'u.sH', 'u.pH', 'u.Ho', 'oh')}
  ${windowRange('w', 'u.kW', 'u.sW', 'u.pW', 'u.Wo', 'ow')}
  var acc = 0.0;
  for (var oh = ohlo; oh <= ohhi; oh++) {
    for (var ow = owlo; ow <= owhi; ow++) {
      let h0 = oh * u.sH - u.pH;
      let w0 = ow * u.sW - u.pW;
      acc += DY[plane * u.Ho * u.Wo + u32(oh) * u.Wo + u32(ow)] / ${avgDivisor(includePad)};
    }
  }
  DX[i] = acc;
}`,
    }),
    uniforms: vals(g, n),
    grid: grid1d(cdiv(n, WG)),
  };
}

/** Adaptive avg pool forward (backward=false) or backward (gather over outputs whose window holds the input). */
export function adaptiveAvgPoolLaunch(planes: number, H: number, W: number, Ho: number, Wo: number, backward: boolean): Launch {
  const n = planes * (backward ? H * W : Ho * Wo);
  const win = (o: string, In: string, Out: string, nm: string) => `let ${nm}s = (${o} * ${In}) / ${Out}; let ${nm}e = ((${o} + 1u) * ${In} + ${Out} - 1u) / ${Out};`;
  const body = backward
    ? `let plane = i / (u.H * u.W);
  let r = i % (u.H * u.W);
  let h = r / u.W;
  let w = r % u.W;
  var acc = 0.0;
  // outputs whose window [floor(o·In/Out), ceil((o+1)·In/Out)) holds h: o in [floor(h·Out/In) − 1, ...]
  for (var oh = (h * u.Ho) / u.H; oh < u.Ho && (oh * u.H) / u.Ho <= h; oh++) {
    ${win('oh', 'u.H', 'u.Ho', 'h')}
    if (h < he) {
      for (var ow = (w * u.Wo) / u.W; ow < u.Wo && (ow * u.W) / u.Wo <= w; ow++) {
        ${win('ow', 'u.W', 'u.Wo', 'w')}
        if (w < we) { acc += DY[plane * u.Ho * u.Wo + oh * u.Wo + ow] / f32((he - hs) * (we - ws)); }
      }
    }
  }
  DX[i] = acc;`
    : `let plane = i / (u.Ho * u.Wo);
  let r = i % (u.Ho * u.Wo);
  let oh = r / u.Wo;
  let ow = r % u.Wo;
  ${win('oh', 'u.H', 'u.Ho', 'h')}
  ${win('ow', 'u.W', 'u.Wo', 'w')}
  var s = 0.0;
  for (var h = hs; h < he; h++) { for (var w = ws; w < we; w++) { s += X[plane * u.H * u.W + h * u.W + w]; } }
  Y[i] = s / f32((he - hs) * (we - ws));`;
  return {
    key: `adaptive-avgpool${backward ? '-bwd' : ''}`,
    build: () => ({
      uniforms: [['n', 'u32'], ['H', 'u32'], ['W', 'u32'], ['Ho', 'u32'], ['Wo', 'u32']],
      code: `${head(backward
        ? `@group(0) @binding(0) var<storage, read> DY: array<f32>;\n@group(0) @binding(1) var<storage, read_write> DX: array<f32>;`
        : `@group(0) @binding(0) var<storage, read> X: array<f32>;\n@group(0) @binding(1) var<storage, read_write> Y: array<f32>;`)}
  ${body}
}`,
    }),
    uniforms: [n, H, W, Ho, Wo],
    grid: grid1d(cdiv(n, WG)),
  };
}

// ---- float64 references ------------------------------------------------------------------------

export function refMaxPool(x: ArrayLike<number>, g: PoolGeom): Float64Array {
  const y = new Float64Array(g.planes * g.Ho * g.Wo);
  for (let p = 0; p < g.planes; p++)
    for (let oh = 0; oh < g.Ho; oh++)
      for (let ow = 0; ow < g.Wo; ow++) {
        let best = -Infinity;
        for (let h = oh * g.sH - g.pH; h < oh * g.sH - g.pH + g.kH; h++)
          for (let w = ow * g.sW - g.pW; w < ow * g.sW - g.pW + g.kW; w++)
            if (h >= 0 && h < g.H && w >= 0 && w < g.W) best = Math.max(best, x[(p * g.H + h) * g.W + w]);
        y[(p * g.Ho + oh) * g.Wo + ow] = best;
      }
  return y;
}

export function refAvgPool(x: ArrayLike<number>, g: PoolGeom, includePad: boolean): Float64Array {
  const y = new Float64Array(g.planes * g.Ho * g.Wo);
  for (let p = 0; p < g.planes; p++)
    for (let oh = 0; oh < g.Ho; oh++)
      for (let ow = 0; ow < g.Wo; ow++) {
        const h0 = oh * g.sH - g.pH;
        const w0 = ow * g.sW - g.pW;
        let s = 0;
        let cnt = 0;
        for (let h = h0; h < h0 + g.kH; h++)
          for (let w = w0; w < w0 + g.kW; w++)
            if (h >= 0 && h < g.H && w >= 0 && w < g.W) {
              s += x[(p * g.H + h) * g.W + w];
              cnt++;
            }
        const div = includePad ? (Math.min(h0 + g.kH, g.H + g.pH) - h0) * (Math.min(w0 + g.kW, g.W + g.pW) - w0) : cnt;
        y[(p * g.Ho + oh) * g.Wo + ow] = s / div;
      }
  return y;
}

export function refAdaptiveAvgPool(x: ArrayLike<number>, planes: number, H: number, W: number, Ho: number, Wo: number): Float64Array {
  const y = new Float64Array(planes * Ho * Wo);
  for (let p = 0; p < planes; p++)
    for (let oh = 0; oh < Ho; oh++)
      for (let ow = 0; ow < Wo; ow++) {
        const hs = Math.floor((oh * H) / Ho), he = Math.ceil(((oh + 1) * H) / Ho);
        const ws = Math.floor((ow * W) / Wo), we = Math.ceil(((ow + 1) * W) / Wo);
        let s = 0;
        for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) s += x[(p * H + h) * W + w];
        y[(p * Ho + oh) * Wo + ow] = s / ((he - hs) * (we - ws));
      }
  return y;
}
