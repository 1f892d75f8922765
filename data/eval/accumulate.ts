// cocoeval.py accumulate and summarize.

import type { EvalImg, EvalState } from './cocoeval.ts';
import { argsortDescStable, formatFixedPy, pairwiseSum } from './numeric.ts';
import type { EvalParams } from './params.ts';

export interface Accumulated {
  /** [T, R, K, A, M] as in pycocotools. */
  counts: [number, number, number, number, number];
  /** T*R*K*A*M, C order; -1 where the setting has no non-ignored GT. */
  precision: Float64Array;
  /** T*K*A*M, C order. */
  recall: Float64Array;
  scores: Float64Array;
}

const EPS = 2 ** -52; // np.spacing(1)

/** First index i with sorted[i] >= v (np.searchsorted side='left'). */
function searchLeft(sorted: Float64Array, n: number, v: number): number {
  let lo = 0; let hi = n;
  while (lo < hi) { const mid = (lo + hi) >>> 1; if (sorted[mid] < v) lo = mid + 1; else hi = mid; }
  return lo;
}

export function accumulate(state: EvalState): Accumulated {
  const p = state.params;
  const T = p.iouThrs.length; const R = p.recThrs.length; const K = p.useCats ? p.catIds.length : 1;
  const A = p.areaRng.length; const M = p.maxDets.length; const I = p.imgIds.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < A; a++) {
      const E: EvalImg[] = [];
      for (let i = 0; i < I; i++) { const e = state.evalImgs[(k * A + a) * I + i]; if (e) E.push(e); }
      if (E.length === 0) continue;
      let npig = 0;
      for (const e of E) for (let g = 0; g < e.gtIgnore.length; g++) if (e.gtIgnore[g] === 0) npig++;
      for (let m = 0; m < M; m++) {
        const maxDet = p.maxDets[m];
        let nd = 0;
        for (const e of E) nd += Math.min(e.D, maxDet);
        // Concatenate per image (first maxDet), remembering the source of each column.
        const sc = new Float64Array(nd); const srcE = new Int32Array(nd); const srcD = new Int32Array(nd);
        let c = 0;
        for (let ei = 0; ei < E.length; ei++) {
          const e = E[ei]; const n = Math.min(e.D, maxDet);
          for (let d = 0; d < n; d++) { sc[c] = e.dtScores[d]; srcE[c] = ei; srcD[c] = d; c++; }
        }
        if (npig === 0) continue;
        const inds = argsortDescStable(sc);
        const scSorted = Float64Array.from(inds, (j) => sc[j]);
        const rcT = new Float64Array(nd); const pr = new Float64Array(nd);
        for (let t = 0; t < T; t++) {
          let tp = 0; let fp = 0;
          for (let j = 0; j < nd; j++) {
            const src = inds[j]; const e = E[srcE[src]]; const off = t * e.D + srcD[src];
            if (!e.dtIgnore[off]) { if (e.dtMatched[off]) tp++; else fp++; }
            rcT[j] = tp / npig;
            pr[j] = tp / (fp + tp + EPS);
          }
          const base4 = ((t * K + k) * A + a) * M + m;
          recall[base4] = nd ? rcT[nd - 1] : 0;
          for (let j = nd - 1; j > 0; j--) if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          // q stays 0 past the last reachable recall (the try/except in pycocotools stops there).
          for (let r = 0; r < R; r++) {
            const pi = searchLeft(rcT, nd, p.recThrs[r]);
            const off5 = (((t * R + r) * K + k) * A + a) * M + m;
            if (pi >= nd) {
              for (let rr = r; rr < R; rr++) {
                const o = (((t * R + rr) * K + k) * A + a) * M + m;
                precision[o] = 0; scores[o] = 0;
              }
              break;
            }
            precision[off5] = pr[pi]; scores[off5] = scSorted[pi];
          }
        }
      }
    }
  }
  return { counts: [T, R, K, A, M], precision, recall, scores };
}

/** Mean of the entries > -1 (np.mean on the boolean-selected array), -1 if none. */
function meanValid(vals: number[]): number {
  const v = vals.filter((x) => x > -1);
  return v.length === 0 ? -1 : pairwiseSum(v) / v.length;
}

/** cocoeval.py summarize()._summarize: one line and its value. */
export function summarizeOne(acc: Accumulated, p: EvalParams, ap: boolean, iouThr: number | null, areaRng: string, maxDets: number): [number, string] {
  const [T, R, K, A, M] = acc.counts;
  const tSel: number[] = [];
  for (let t = 0; t < T; t++) if (iouThr === null || p.iouThrs[t] === iouThr) tSel.push(t); // np.where(iouThr == iouThrs): exact
  const aind = p.areaRngLbl.findIndex((l) => l === areaRng);
  const mind = p.maxDets.findIndex((x) => x === maxDets);
  const vals: number[] = [];
  if (aind >= 0 && mind >= 0) {
    for (const t of tSel) {
      if (ap) {
        for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) vals.push(acc.precision[(((t * R + r) * K + k) * A + aind) * M + mind]);
      } else {
        for (let k = 0; k < K; k++) vals.push(acc.recall[((t * K + k) * A + aind) * M + mind]);
      }
    }
  }
  const mean = meanValid(vals);
  const title = ap ? 'Average Precision' : 'Average Recall';
  const type = ap ? '(AP)' : '(AR)';
  const iouStr = iouThr === null
    ? `${formatFixedPy(p.iouThrs[0], 2)}:${formatFixedPy(p.iouThrs[T - 1], 2)}`
    : formatFixedPy(iouThr, 2);
  const line = ` ${title.padEnd(18)} ${type} @[ IoU=${iouStr.padEnd(9)} | area=${areaRng.padStart(6)} | maxDets=${String(maxDets).padStart(3)} ] = ${formatFixedPy(mean, 3)}`;
  return [mean, line];
}

/** The 12 (bbox/segm) or 10 (keypoints) summary numbers and pycocotools' printed lines. */
export function summarize(acc: Accumulated, p: EvalParams): { stats: number[]; lines: string[] } {
  const specs: [boolean, number | null, string, number][] = [];
  if (p.iouType === 'keypoints') {
    for (const ap of [true, false]) {
      specs.push([ap, null, 'all', 20], [ap, 0.5, 'all', 20], [ap, 0.75, 'all', 20], [ap, null, 'medium', 20], [ap, null, 'large', 20]);
    }
  } else {
    const md = p.maxDets;
    if (md.length < 3) throw new Error(`summarize: bbox/segm summary needs 3 maxDets (pycocotools indexes maxDets[2]), got ${md.length}`);
    specs.push([true, null, 'all', 100], [true, 0.5, 'all', md[2]], [true, 0.75, 'all', md[2]],
      [true, null, 'small', md[2]], [true, null, 'medium', md[2]], [true, null, 'large', md[2]],
      [false, null, 'all', md[0]], [false, null, 'all', md[1]], [false, null, 'all', md[2]],
      [false, null, 'small', md[2]], [false, null, 'medium', md[2]], [false, null, 'large', md[2]]);
  }
  const stats: number[] = []; const lines: string[] = [];
  for (const [ap, thr, area, md] of specs) {
    const [v, l] = summarizeOne(acc, p, ap, thr, area, md);
    stats.push(v); lines.push(l);
  }
  return { stats, lines };
}

/** AP@[.5:.95] per category at area 'all' and the largest maxDet; -1 without GT. */
export function perCategoryAP(acc: Accumulated, p: EvalParams): { catId: number; ap: number }[] {
  const [T, R, K, A, M] = acc.counts;
  const cats = p.useCats ? p.catIds : [-1];
  const out: { catId: number; ap: number }[] = [];
  for (let k = 0; k < K; k++) {
    const vals: number[] = [];
    for (let t = 0; t < T; t++) for (let r = 0; r < R; r++) vals.push(acc.precision[(((t * R + r) * K + k) * A + 0) * M + (M - 1)]);
    out.push({ catId: cats[k], ap: meanValid(vals) });
  }
  return out;
}
