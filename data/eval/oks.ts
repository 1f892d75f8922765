// cocoeval.py computeOks: object keypoint similarity, D x G row-major.

import type { EvalAnn } from './loadres.ts';
import { pairwiseSum } from './numeric.ts';

const EPS = 2 ** -52; // np.spacing(1)

/**
 * OKS per (dt, gt): e = (dx²+dy²)/vars/(gt.area+eps)/2 with vars = (2σ)²; mean of exp(-e) over
 * the GT's labelled keypoints (v > 0), or over all keypoints measured as the distance to the
 * box [x-w, x+2w]×[y-h, y+2h] when the GT has none labelled. Uses the GT `area` field.
 */
export function computeOks(dts: readonly EvalAnn[], gts: readonly EvalAnn[], sigmas: Float64Array): Float64Array {
  const D = dts.length; const G = gts.length;
  const out = new Float64Array(D * G);
  if (D === 0 || G === 0) return out;
  const k = sigmas.length;
  const vars = new Float64Array(k);
  for (let i = 0; i < k; i++) { const s2 = sigmas[i] * 2; vars[i] = s2 * s2; }
  const e = new Float64Array(k);
  for (let j = 0; j < G; j++) {
    const gt = gts[j];
    const g = gt.keypoints!;
    if (g.length !== 3 * k) throw new Error(`computeOks: GT annotation id ${gt.id} has ${g.length / 3} keypoints, sigmas have ${k}`);
    let k1 = 0;
    for (let i = 0; i < k; i++) if (g[3 * i + 2] > 0) k1++;
    const bb = gt.bbox;
    const x0 = bb[0] - bb[2]; const x1 = bb[0] + bb[2] * 2;
    const y0 = bb[1] - bb[3]; const y1 = bb[1] + bb[3] * 2;
    const denomArea = gt.area + EPS;
    for (let i = 0; i < D; i++) {
      const d = dts[i].keypoints!;
      if (d.length !== 3 * k) throw new Error(`computeOks: result ${dts[i].id - 1} has ${d.length / 3} keypoints, sigmas have ${k}`);
      let n = 0;
      for (let q = 0; q < k; q++) {
        const xd = d[3 * q]; const yd = d[3 * q + 1];
        let dx: number; let dy: number;
        if (k1 > 0) {
          if (!(g[3 * q + 2] > 0)) continue;
          dx = xd - g[3 * q]; dy = yd - g[3 * q + 1];
        } else {
          dx = Math.max(0, x0 - xd) + Math.max(0, xd - x1);
          dy = Math.max(0, y0 - yd) + Math.max(0, yd - y1);
        }
        e[n++] = Math.exp(-((dx * dx + dy * dy) / vars[q] / denomArea / 2));
      }
      out[i * G + j] = pairwiseSum(e, 0, n) / n;
    }
  }
  return out;
}
