// Pascal VOC detection AP as py-faster-rcnn lib/datasets/voc_eval.py computes it: greedy
// matching by descending confidence at IoU > ovthresh with VOC's +1 pixel convention,
// difficult GTs neither counted in npos nor scored (a detection matched to one is ignored),
// VOC07 11-point or all-points (area) AP.

export interface VocGtObject { boxXyxy: [number, number, number, number]; difficult: boolean }
export interface VocDetection { imageId: string | number; score: number; boxXyxy: [number, number, number, number] }

export interface VocEvalResult { rec: Float64Array; prec: Float64Array; ap: number; npos: number }

const F64_EPS = 2 ** -52; // np.finfo(np.float64).eps

/** voc_eval.py voc_ap. */
export function vocAp(rec: ArrayLike<number>, prec: ArrayLike<number>, use07Metric: boolean): number {
  const n = rec.length;
  if (use07Metric) {
    let ap = 0;
    for (let i = 0; i < 11; i++) {
      const t = i * 0.1; // np.arange(0., 1.1, 0.1): 0.30000000000000004 etc.
      let p = 0; let any = false;
      for (let j = 0; j < n; j++) if (rec[j] >= t) { p = any ? Math.max(p, prec[j]) : prec[j]; any = true; }
      ap = ap + (any ? p : 0) / 11;
    }
    return ap;
  }
  const mrec = [0, ...Array.from(rec), 1];
  const mpre = [0, ...Array.from(prec), 0];
  for (let i = mpre.length - 1; i > 0; i--) mpre[i - 1] = Math.max(mpre[i - 1], mpre[i]);
  let ap = 0;
  for (let i = 0; i < mrec.length - 1; i++) if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
  return ap;
}

/**
 * voc_eval for one class. `gtByImage` maps image id -> that class's GT objects; detections of
 * images absent from it raise (voc_eval would KeyError). Ties in confidence are broken by
 * input order (voc_eval's np.argsort quicksort order is not reproducible across numpy builds).
 */
export function vocEvalClass(gtByImage: Map<string | number, VocGtObject[]>, dets: readonly VocDetection[],
  opts: { ovThresh?: number; use07Metric?: boolean } = {}): VocEvalResult {
  const ovThresh = opts.ovThresh ?? 0.5;
  const use07 = opts.use07Metric ?? false;
  let npos = 0;
  const used = new Map<string | number, Uint8Array>();
  for (const [img, objs] of gtByImage) {
    for (const o of objs) if (!o.difficult) npos++;
    used.set(img, new Uint8Array(objs.length));
  }
  const order = dets.map((_, i) => i).sort((a, b) => dets[b].score - dets[a].score);
  const nd = dets.length;
  const tp = new Float64Array(nd); const fp = new Float64Array(nd);
  for (let d = 0; d < nd; d++) {
    const det = dets[order[d]];
    const objs = gtByImage.get(det.imageId);
    if (!objs) throw new Error(`vocEvalClass: detection ${order[d]} has imageId ${String(det.imageId)}, which has no GT entry (list every test image, even with no objects)`);
    const bb = det.boxXyxy;
    let ovmax = -Infinity; let jmax = -1;
    for (let j = 0; j < objs.length; j++) {
      const g = objs[j].boxXyxy;
      const iw = Math.max(Math.min(g[2], bb[2]) - Math.max(g[0], bb[0]) + 1, 0);
      const ih = Math.max(Math.min(g[3], bb[3]) - Math.max(g[1], bb[1]) + 1, 0);
      const inters = iw * ih;
      const uni = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inters;
      const ov = inters / uni;
      if (ov > ovmax) { ovmax = ov; jmax = j; } // np.argmax: first maximum
    }
    if (ovmax > ovThresh) {
      if (!objs[jmax].difficult) {
        const u = used.get(det.imageId)!;
        if (!u[jmax]) { tp[d] = 1; u[jmax] = 1; } else fp[d] = 1;
      }
    } else {
      fp[d] = 1;
    }
  }
  const rec = new Float64Array(nd); const prec = new Float64Array(nd);
  let ctp = 0; let cfp = 0;
  for (let d = 0; d < nd; d++) {
    ctp += tp[d]; cfp += fp[d];
    rec[d] = ctp / npos;
    prec[d] = ctp / Math.max(ctp + cfp, F64_EPS);
  }
  return { rec, prec, ap: vocAp(rec, prec, use07), npos };
}

/** Mean AP over classes (py-faster-rcnn pascal_voc._do_python_eval prints np.mean(aps)). */
export function vocEvalMap(classes: readonly { name: string; gtByImage: Map<string | number, VocGtObject[]>; dets: readonly VocDetection[] }[],
  opts: { ovThresh?: number; use07Metric?: boolean } = {}): { aps: { name: string; ap: number }[]; mAP: number } {
  const aps = classes.map((c) => ({ name: c.name, ap: vocEvalClass(c.gtByImage, c.dets, opts).ap }));
  const mAP = aps.reduce((s, a) => s + a.ap, 0) / Math.max(aps.length, 1);
  return { aps, mAP };
}
