// The torchvision parity fixtures themselves (no GPU): the TypeScript weight formula reproduces the float32
// values the Python generator put into torchvision, and every manifest entry lies inside its .bin.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fnv1a32, formulaWeight, loadModelFixture, type FixtureDtype } from './model-fixtures.ts';

const NAMES = ['maskrcnn_tiny', 'keypointrcnn_tiny'] as const;
const fixtures = Object.fromEntries(NAMES.map((n) => [n, loadModelFixture(n)]));
const BYTES: Record<FixtureDtype, number> = { f32: 4, i32: 4, u8: 1 };

test('fnv1a32 matches the published FNV-1a 32-bit vectors', () => {
  assert.is(fnv1a32(''), 0x811c9dc5);
  assert.is(fnv1a32('a'), 0xe40c292c);
  assert.is(fnv1a32('foobar'), 0xbf9cf968);
});

test('formulaWeight reproduces meta.weightChecks exactly (conv weight, norm scale, running mean/var, bias)', () => {
  for (const name of NAMES) {
    const checks = fixtures[name].meta.weightChecks as Record<string, { shape: number[]; first5: number[] }>;
    assert.ok(Object.keys(checks).length >= 3, `${name}: weightChecks present`);
    for (const [key, { shape, first5 }] of Object.entries(checks)) {
      const got = formulaWeight(key, shape);
      assert.is(got.length, shape.reduce((a, b) => a * b, 1), `${name} ${key}: numel`);
      for (let i = 0; i < 5; i++) {
        assert.ok(Object.is(got[i], first5[i]), `${name} ${key}[${i}]: TypeScript ${got[i]} vs torch ${first5[i]}`);
      }
    }
  }
});

test('formulaWeight has a rule for every state-dict key of both models, and refuses an unknown kind', () => {
  for (const name of NAMES) {
    const keys = fixtures[name].meta.stateDictKeys as [string, number[]][];
    assert.ok(keys.length > 100, `${name}: ${keys.length} state-dict keys`);
    for (const [key, shape] of keys) {
      const w = formulaWeight(key, shape);
      assert.ok(Number.isFinite(w[0]) && Number.isFinite(w[w.length - 1]), `${name} ${key}: finite`);
    }
  }
  assert.throws(() => formulaWeight('backbone.body.bn1.scale', [4]), /no rule for state-dict key backbone\.body\.bn1\.scale/);
});

test('every array lies within its .bin, aligned, without overlap, and loads with its shape', () => {
  for (const name of NAMES) {
    const { manifest, arrays, binBytes } = fixtures[name];
    const spans = Object.entries(manifest).map(([key, e]) => {
      const numel = e.shape.reduce((a, b) => a * b, 1);
      const end = e.offset + numel * BYTES[e.dtype];
      assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset % 8 === 0, `${name} ${key}: offset ${e.offset}`);
      assert.ok(end <= binBytes, `${name} ${key}: [${e.offset}, ${end}) within ${binBytes} bytes`);
      assert.is(arrays.get(key)!.data.length, numel, `${name} ${key}: loaded length`);
      return { key, start: e.offset, end };
    });
    spans.sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      assert.ok(spans[i].start >= spans[i - 1].end, `${name}: ${spans[i - 1].key} overlaps ${spans[i].key}`);
    }
  }
});

test('fixture contents agree with their meta (sizes, counts, FrozenBN eps, finite floats)', () => {
  for (const name of NAMES) {
    const { meta, arrays } = fixtures[name];
    assert.is(meta.frozenBnEps, 1e-5, `${name}: torchvision 0.14 FrozenBatchNorm2d eps`);
    assert.equal([...arrays.get('input.sizes')!.data], (meta.inputs.imageHw as number[][]).flat(), `${name}: input.sizes`);
    assert.equal(arrays.get('input.images')!.shape, [3, 3, 96, 96], `${name}: padded batch`);
    (meta.evalCounts.detections as number[]).forEach((n, i) => {
      assert.is(arrays.get(`det.${i}.boxes`)!.shape[0], n, `${name}: det.${i} count`);
      assert.is(arrays.get(`proposals.${i}`)!.shape[0], meta.evalCounts.proposals[i], `${name}: proposals.${i} count`);
    });
    for (const [key, a] of arrays) {
      if (a.dtype === 'f32') assert.ok(a.data.every(Number.isFinite), `${name} ${key}: finite`);
    }
  }
});

test.run();
