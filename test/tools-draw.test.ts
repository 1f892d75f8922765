import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sharp from 'sharp';
import { INSTANCE_COLORS, drawDetections } from '../model/tools/draw.ts';
import { checkDetections, type Detections } from '../model/tools/detections.ts';
import { COCO_SKELETON } from '../data/shapes.ts';

const W = 160, H = 120, GREY = 100;

function scene(): { rgb: { data: Uint8Array; widthPx: number; heightPx: number }; dets: Detections } {
  const data = new Uint8Array(W * H * 3).fill(GREY);
  const mask = (x0: number, y0: number, x1: number, y1: number): Uint8Array => {
    const m = new Uint8Array(W * H);
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = 1;
    return m;
  };
  const kp = new Float32Array(2 * 17 * 3);
  kp.set([110, 20, 2], 0); // nose
  kp.set([150, 20, 2], 3); // left_eye: COCO_SKELETON has [1, 2] (1-based) = nose - left_eye
  kp.set([140, 60, 0], 6); // right_eye, score 0: hidden
  return {
    rgb: { data, widthPx: W, heightPx: H },
    dets: {
      boxesXyxy: Float32Array.from([40, 40, 100, 100, 2, 100, 30, 118]),
      scores: Float32Array.from([0.9, 0.3]),
      labels: Int32Array.from([1, 2]),
      masks: [mask(42, 42, 98, 98), mask(4, 102, 28, 116)],
      keypoints: kp,
    },
  };
}

async function decode(png: Buffer): Promise<(x: number, y: number) => number[]> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal([info.width, info.height, info.channels], [W, H, 3]);
  return (x, y) => Array.from(data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3));
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`expected a rejection matching ${re}`);
}

const close = (got: number[], want: readonly number[], tol: number, what: string): void =>
  assert.ok(got.every((v, c) => Math.abs(v - want[c]) <= tol), `${what}: got [${got}], want [${want}] ±${tol}`);

test('draw: mask tinted inside, untouched outside; box edges and skeleton in the instance colour', async () => {
  const { rgb, dets } = scene();
  const before = Uint8Array.from(rgb.data);
  const at = await decode(await drawDetections(rgb, dets, { labelNames: ['__background__', 'circle', 'square'], skeleton: COCO_SKELETON }));
  assert.equal(rgb.data, before, 'input pixels not modified');
  const c = INSTANCE_COLORS[0];
  const blend = c.map((v) => Math.round(GREY * 0.55 + v * 0.45));
  close(at(70, 80), blend, 1, 'mask interior');
  close(at(60, 60), blend, 1, 'mask interior');
  close(at(42, 70), c.map((v) => Math.round(GREY * 0.1 + v * 0.9)), 1, 'mask contour');
  close(at(130, 110), [GREY, GREY, GREY], 0, 'outside everything');
  close(at(15, 110), [GREY, GREY, GREY], 0, 'mask of a detection below scoreThresh');
  close(at(2, 109), [GREY, GREY, GREY], 0, 'box of a detection below scoreThresh');
  close(at(40, 70), c, 2, 'left box edge');
  close(at(99, 70), c, 2, 'right box edge');
  close(at(70, 99), c, 2, 'bottom box edge');
  close(at(130, 20), c, 2, 'skeleton line nose - left_eye (1-based pair [1, 2])');
  close(at(150, 20), c, 2, 'keypoint dot');
  close(at(140, 60), [GREY, GREY, GREY], 0, 'keypoint with score 0');
  let labelPixels = 0; // the label box sits above the box: y in [26, 40)
  for (let y = 26; y < 40; y++) for (let x = 40; x < 100; x++) if (at(x, y)[0] !== GREY || at(x, y)[2] !== GREY) labelPixels++;
  assert.ok(labelPixels > 300, `label above the box: ${labelPixels} changed pixels`);
});

test('draw: scoreThresh 0 draws the low-score instance; no masks / no keypoints is fine', async () => {
  const { rgb, dets } = scene();
  const at = await decode(await drawDetections(rgb, dets, { labelNames: [], scoreThresh: 0 }));
  assert.ok(at(15, 110).some((v) => v !== GREY), 'low-score mask drawn');
  const bare = await decode(await drawDetections(rgb, { boxesXyxy: dets.boxesXyxy, scores: dets.scores, labels: dets.labels }, { labelNames: ['bg', 'a', 'b'] }));
  close(bare(70, 80), [GREY, GREY, GREY], 0, 'no mask given');
  close(bare(40, 70), INSTANCE_COLORS[0], 2, 'box edge without masks');
  const none = await decode(await drawDetections(rgb, { boxesXyxy: new Float32Array(0), scores: new Float32Array(0), labels: new Int32Array(0) }, { labelNames: [] }));
  close(none(70, 80), [GREY, GREY, GREY], 0, 'no detections');
});

test('draw: bad input is named', async () => {
  const { rgb, dets } = scene();
  await rejects(drawDetections({ ...rgb, data: rgb.data.subarray(1) }, dets, { labelNames: [] }), /57599 bytes, expected 120x160x3/);
  await rejects(drawDetections(rgb, { ...dets, masks: [new Uint8Array(10), dets.masks![1]] }, { labelNames: [] }), /mask 0 has 10 pixels/);
  await rejects(drawDetections(rgb, dets, { labelNames: [], skeleton: [[0, 1]] }), /skeleton pair \[0, 1\] outside 1\.\.17/);
  assert.throws(() => checkDetections({ ...dets, labels: new Int32Array(3) }, W, H), /labels has 3 entries, expected 2/);
  assert.throws(() => checkDetections({ ...dets, boxesXyxy: new Float32Array(7) }, W, H), /boxesXyxy has 7 values/);
  assert.throws(() => checkDetections({ ...dets, keypoints: new Float32Array(7) }, W, H), /keypoints has 7 values/);
});

test.run();
