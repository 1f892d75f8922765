// Detections of one image in original-image pixels: what inference returns and what the drawing,
// results-JSON and evaluation tools take.

export interface Detections {
  /** [n*4] x1, y1, x2, y2 in image pixels (continuous, no +1). */
  boxesXyxy: Float32Array;
  /** [n] class scores. */
  scores: Float32Array;
  /** [n] contiguous labels 1..K (0 is background), indices into LoadedCoco.labelNames. */
  labels: Int32Array;
  /** n masks, each heightPx*widthPx row-major 0/1 at the image size. */
  masks?: Uint8Array[];
  /** [n*K*3] x, y, score per keypoint, in image pixels. */
  keypoints?: Float32Array;
}

/** Number of detections; throws naming the field when the arrays disagree or masks have the wrong size. */
export function checkDetections(d: Detections, widthPx: number, heightPx: number, where = 'detections'): number {
  const n = d.scores.length;
  if (d.boxesXyxy.length !== n * 4) throw new Error(`${where}: boxesXyxy has ${d.boxesXyxy.length} values, expected 4 x ${n} scores`);
  if (d.labels.length !== n) throw new Error(`${where}: labels has ${d.labels.length} entries, expected ${n} (one per score)`);
  if (d.masks) {
    if (d.masks.length !== n) throw new Error(`${where}: ${d.masks.length} masks for ${n} detections`);
    d.masks.forEach((m, i) => {
      if (m.length !== widthPx * heightPx) throw new Error(`${where}: mask ${i} has ${m.length} pixels, expected ${heightPx}x${widthPx} = ${widthPx * heightPx}`);
    });
  }
  if (d.keypoints && n > 0 && d.keypoints.length % (n * 3) !== 0) {
    throw new Error(`${where}: keypoints has ${d.keypoints.length} values, not a multiple of 3 x ${n} detections`);
  }
  if (d.keypoints && n === 0 && d.keypoints.length !== 0) throw new Error(`${where}: ${d.keypoints.length} keypoint values for 0 detections`);
  return n;
}
