// Fast paths of kernels/resample.ts (bilinear align_corners=false at exactly 2×) and kernels/pool.ts
// (blocked max-pool backward): which shapes take them, forward/backward vs float64 references, and
// against the general kernels they replace (outputs poisoned, so a missed pixel shows as NaN).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { run } from '../engine/ops.ts';
import { empty } from '../engine/tensor.ts';
import { isBilinear2x, refResample, refResampleBackward, resampleGeneralLaunch, resampleLaunch, type ResampleMode } from '../kernels/resample.ts';
import { maxPoolBackwardBlocked, maxPoolBackwardGatherLaunch, maxPoolBackwardLaunch, maxPoolLaunch, poolOutSize, type PoolGeom } from '../kernels/pool.ts';
import { assertClose, randArray } from './util.ts';

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
});

async function resampleOnGpu(mode: ResampleMode, general: boolean, backward: boolean, src: Float64Array, planes: number, H: number, W: number, Ho: number, Wo: number): Promise<Float32Array> {
  const x = E.fromArray(Float32Array.from(src), backward ? [planes, Ho, Wo] : [planes, H, W]);
  const y = empty(backward ? [planes, H, W] : [planes, Ho, Wo], 'f32', 'test-resample');
  run((general ? resampleGeneralLaunch : resampleLaunch)(mode, planes, H, W, Ho, Wo, backward), [x, y]);
  const out = (await E.toArray(y)) as Float32Array;
  x.dispose();
  y.dispose();
  return out;
}

// [planes, H, W]: odd sizes, 1-pixel planes, single rows/columns, the keypoint head's 28 → 56
const twoX: [number, number, number][] = [[1, 1, 1], [3, 1, 1], [2, 1, 5], [2, 6, 1], [2, 3, 4], [3, 7, 9], [2, 2, 2], [17, 28, 28], [1, 13, 31]];

test('bilinear 2x: fast path taken only for align_corners=false at exactly 2x per axis', () => {
  assert.ok(isBilinear2x('bilinear', 4, 28, 28, 56, 56));
  assert.ok(isBilinear2x('bilinear', 1, 1, 1, 2, 2));
  assert.not.ok(isBilinear2x('bilinearAligned', 4, 28, 28, 56, 56));
  assert.not.ok(isBilinear2x('nearest', 4, 28, 28, 56, 56));
  assert.not.ok(isBilinear2x('bilinear', 4, 28, 28, 56, 57));
  assert.not.ok(isBilinear2x('bilinear', 4, 28, 28, 55, 56));
  assert.not.ok(isBilinear2x('bilinear', 4, 7, 5, 13, 10)); // FPN-like odd size: general path
  assert.not.ok(isBilinear2x('bilinear', 70000, 2, 2, 4, 4)); // planes beyond grid z
  assert.is(resampleLaunch('bilinear', 4, 28, 28, 56, 56, false).key, 'resample:bilinear:2x');
  assert.is(resampleLaunch('bilinear', 4, 28, 28, 56, 56, true).key, 'resample:bilinear:2x:bwd');
  assert.is(resampleLaunch('bilinear', 4, 28, 28, 56, 57, true).key, 'resample:bilinear:bwd');
  assert.is(resampleLaunch('bilinearAligned', 4, 28, 28, 56, 56, false).key, 'resample:bilinearAligned');
});

test('bilinear 2x fast path: forward bit-identical to the general kernel, both vs float64', async () => {
  for (const [P, H, W] of twoX) {
    const x = randArray(P * H * W, 11 + H * 7 + W);
    const fast = await resampleOnGpu('bilinear', false, false, x, P, H, W, 2 * H, 2 * W);
    const gen = await resampleOnGpu('bilinear', true, false, x, P, H, W, 2 * H, 2 * W);
    assertClose(fast, refResample('bilinear', x, P, H, W, 2 * H, 2 * W), `bilinear 2x fwd [${P},${H},${W}]`);
    assert.equal(Array.from(fast), Array.from(gen), `bilinear 2x fwd [${P},${H},${W}]: fast == general bit for bit`);
  }
});

test('bilinear 2x fast path: backward vs float64 adjoint and the general kernel', async () => {
  for (const [P, H, W] of twoX) {
    const dy = randArray(P * 4 * H * W, 23 + H * 5 + W);
    const want = refResampleBackward('bilinear', dy, P, H, W, 2 * H, 2 * W);
    const fast = await resampleOnGpu('bilinear', false, true, dy, P, H, W, 2 * H, 2 * W);
    const gen = await resampleOnGpu('bilinear', true, true, dy, P, H, W, 2 * H, 2 * W);
    assertClose(fast, want, `bilinear 2x bwd [${P},${H},${W}] fast`);
    assertClose(gen, want, `bilinear 2x bwd [${P},${H},${W}] general`);
  }
});

test('non-2x and other modes still go through the general kernel and match float64', async () => {
  const cases: [ResampleMode, number, number, number, number, number][] = [
    ['bilinear', 2, 28, 28, 56, 57], ['bilinear', 2, 7, 5, 13, 10], ['bilinear', 1, 4, 4, 8, 4], ['bilinearAligned', 2, 5, 6, 10, 12], ['nearest', 2, 5, 6, 10, 12],
  ];
  for (const [mode, P, H, W, Ho, Wo] of cases) {
    const x = randArray(P * H * W, 3 + Ho);
    assertClose(await resampleOnGpu(mode, false, false, x, P, H, W, Ho, Wo), refResample(mode, x, P, H, W, Ho, Wo), `${mode} fwd ${H}x${W} → ${Ho}x${Wo}`);
    const dy = randArray(P * Ho * Wo, 5 + Wo);
    assertClose(await resampleOnGpu(mode, false, true, dy, P, H, W, Ho, Wo), refResampleBackward(mode, dy, P, H, W, Ho, Wo), `${mode} bwd ${H}x${W} → ${Ho}x${Wo}`);
  }
});

const geom = (planes: number, H: number, W: number, k: number, s: number, p: number, ceil: boolean): PoolGeom =>
  ({ planes, H, W, Ho: poolOutSize(H, k, s, p, ceil), Wo: poolOutSize(W, k, s, p, ceil), kH: k, kW: k, sH: s, sW: s, pH: p, pW: p });

test('maxPool backward, blocked path: bit-identical to the per-pixel gather (incl. ties, 1-pixel planes)', async () => {
  const geoms: PoolGeom[] = [
    geom(3, 1, 1, 3, 2, 1, false), geom(2, 1, 7, 3, 2, 1, false), geom(2, 5, 1, 3, 2, 1, true),
    geom(4, 13, 17, 3, 2, 1, false), geom(2, 14, 22, 3, 2, 1, false), geom(2, 7, 9, 3, 2, 0, true), geom(1, 6, 5, 3, 2, 1, false),
    geom(2, 5, 7, 2, 2, 1, true), geom(3, 5, 6, 1, 2, 0, false), geom(2, 8, 7, 3, 1, 1, false), geom(1, 9, 11, 3, 3, 1, true),
    { planes: 2, H: 9, W: 10, Ho: poolOutSize(9, 3, 2, 1, false), Wo: poolOutSize(10, 2, 1, 0, false), kH: 3, kW: 2, sH: 2, sW: 1, pH: 1, pW: 0 },
    geom(1, 12, 12, 9, 1, 4, false), // 9x9 windows at stride 1: too big a tile, gather path
  ];
  assert.ok(maxPoolBackwardBlocked(geom(16, 144, 216, 3, 2, 1, false)));
  assert.not.ok(maxPoolBackwardBlocked(geom(1, 12, 12, 9, 1, 4, false)));
  for (const [gi, g] of geoms.entries()) {
    for (const ties of [false, true]) {
      const n = g.planes * g.H * g.W;
      // ties: few distinct values, so windows hold equal maxima (torch keeps the first index)
      const xs = randArray(n, 41 + gi).map((v) => (ties ? Math.round(v * 2) : v));
      const x = E.fromArray(Float32Array.from(xs), [g.planes, g.H, g.W]);
      const y = empty([g.planes, g.Ho, g.Wo], 'f32', 'test-maxpool');
      const arg = empty([g.planes, g.Ho, g.Wo], 'i32', 'test-maxpool-arg');
      run(maxPoolLaunch(g), [x, y, arg]);
      const dyv = randArray(g.planes * g.Ho * g.Wo, 57 + gi);
      const dy = E.fromArray(Float32Array.from(dyv), [g.planes, g.Ho, g.Wo]);
      const dxFast = empty([g.planes, g.H, g.W], 'f32', 'test-maxpool-dx');
      const dxRef = empty([g.planes, g.H, g.W], 'f32', 'test-maxpool-dx');
      run(maxPoolBackwardLaunch(g), [dy, arg, dxFast]);
      run(maxPoolBackwardGatherLaunch(g), [dy, arg, dxRef]);
      const [fast, ref, a] = await E.toArrays([dxFast, dxRef, arg]);
      const what = `maxpool bwd ${JSON.stringify(g)} ties=${ties}`;
      assert.equal(Array.from(fast), Array.from(ref), `${what}: blocked == gather bit for bit`);
      // float64: scatter dy to the recorded argmax
      const want = new Float64Array(n);
      for (let p = 0; p < g.planes; p++) for (let o = 0; o < g.Ho * g.Wo; o++) want[p * g.H * g.W + a[p * g.Ho * g.Wo + o]] += dyv[p * g.Ho * g.Wo + o];
      assertClose(fast, want, what);
      for (const t of [x, y, arg, dy, dxFast, dxRef]) t.dispose();
    }
  }
});

test.run();
