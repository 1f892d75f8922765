import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { mapTorchvisionKeys, readWeightsSync, loadIntoModule, StateDictMismatchError, toFloat32, type HostTensor, type LoadableModule } from '../model/weights/index.ts';

const FIX = 'test/fixtures/weights';
const keyFile = (f: string): Map<string, number[]> =>
  new Map(readFileSync(`${FIX}/${f}`, 'utf8').trim().split('\n').map((l) => {
    const i = l.indexOf(' ');
    return [l.slice(0, i), JSON.parse(l.slice(i + 1)) as number[]];
  }));
const legacy = keyFile('maskrcnn_resnet50_fpn_legacy_keys.txt');
const modern = keyFile('maskrcnn_resnet50_fpn_modern_keys.txt');
const keypoint = keyFile('keypointrcnn_resnet50_fpn_keys.txt');

test('mapping: all 307 legacy maskrcnn_resnet50_fpn keys map onto torchvision 0.14 module names, same shapes', () => {
  assert.is(legacy.size, 307);
  const r = mapTorchvisionKeys(legacy);
  assert.is(r.source, 'detection');
  assert.equal([...r.mapped.keys()].sort(), [...modern.keys()].sort());
  for (const [k, s] of r.mapped) assert.equal(s, modern.get(k), k);
  assert.is(r.renamed.length, 4 * 2 + 4 * 2 + 2 + 4 * 2);
  assert.ok(r.renamed.some(([a, b]) => a === 'backbone.fpn.inner_blocks.0.weight' && b === 'backbone.fpn.inner_blocks.0.0.weight'));
  assert.ok(r.renamed.some(([a, b]) => a === 'rpn.head.conv.weight' && b === 'rpn.head.conv.0.0.weight'));
  assert.ok(r.renamed.some(([a, b]) => a === 'roi_heads.mask_head.mask_fcn4.bias' && b === 'roi_heads.mask_head.3.0.bias'));
  for (const k of ['backbone.body.conv1.weight', 'backbone.body.bn1.running_mean', 'backbone.body.layer1.0.downsample.1.weight', 'backbone.fpn.layer_blocks.3.0.bias', 'rpn.head.cls_logits.weight', 'roi_heads.box_head.fc6.weight', 'roi_heads.box_predictor.bbox_pred.weight', 'roi_heads.mask_predictor.conv5_mask.weight', 'roi_heads.mask_predictor.mask_fcn_logits.weight'])
    assert.ok(r.mapped.has(k), k);
});

test('mapping: modern names (and a DataParallel module. prefix) pass through; num_batches_tracked dropped', () => {
  const r = mapTorchvisionKeys(modern);
  assert.is(r.renamed.length, 0);
  assert.equal([...r.mapped.keys()], [...modern.keys()]);
  const dp = new Map([...legacy].map(([k, v]) => [`module.${k}`, v] as [string, number[]]));
  dp.set('module.backbone.body.bn1.num_batches_tracked', []);
  const r2 = mapTorchvisionKeys(dp);
  assert.equal([...r2.mapped.keys()].sort(), [...modern.keys()].sort());
  assert.equal(r2.dropped, ['module.backbone.body.bn1.num_batches_tracked']);
});

test('mapping: keypointrcnn keys are already our names (keypoint_head.{0,2,..,14}, kps_score_lowres)', () => {
  const r = mapTorchvisionKeys(keypoint);
  assert.is(r.renamed.length, 0);
  for (let i = 0; i <= 14; i += 2) assert.ok(r.mapped.has(`roi_heads.keypoint_head.${i}.weight`), `keypoint_head.${i}`);
  assert.equal(r.mapped.get('roi_heads.keypoint_predictor.kps_score_lowres.weight'), [512, 17, 4, 4]);
});

test('mapping: plain resnet50 and the Caffe ResNet-101 go to backbone.body; fc and num_batches_tracked dropped', () => {
  const r = mapTorchvisionKeys(keyFile('resnet50_keys.txt'));
  assert.is(r.source, 'resnet');
  assert.equal(r.dropped.filter((k) => !k.endsWith('num_batches_tracked')), ['fc.weight', 'fc.bias']);
  const body = [...modern.keys()].filter((k) => k.startsWith('backbone.body.'));
  assert.equal([...r.mapped.keys()].sort(), body.sort());
  for (const [k, s] of r.mapped) assert.equal(s, modern.get(k), k);
  const c = mapTorchvisionKeys(keyFile('resnet101_caffe_keys.txt'));
  assert.ok([...c.mapped.keys()].every((k) => k.startsWith('backbone.body.')));
  assert.ok(c.mapped.has('backbone.body.layer3.22.conv3.weight'));
  assert.ok(body.every((k) => c.mapped.has(k) || /layer3\.([6-9]|\d\d)/.test(k)), 'resnet50 names are a subset of resnet101 names');
});

test('mapping: VGG16 features -> backbone.body.features.{i}, classifier fc6/fc7 -> box_head, logits dropped', () => {
  const v = keyFile('vgg16_caffe_keys.txt');
  const r = mapTorchvisionKeys(v);
  assert.is(r.source, 'vgg16');
  assert.equal(r.mapped.get('backbone.body.features.28.weight'), [512, 512, 3, 3]);
  assert.equal(r.mapped.get('roi_heads.box_head.fc6.weight'), [4096, 25088]);
  assert.equal(r.mapped.get('roi_heads.box_head.fc7.bias'), [4096]);
  assert.equal(r.dropped, ['classifier.6.weight', 'classifier.6.bias']);
  assert.is(mapTorchvisionKeys(v, { vggClassifier: 'drop' }).mapped.size, 26);
});

test('mapping: two source keys landing on one name is an error naming both', () => {
  assert.throws(() => mapTorchvisionKeys(new Map([['rpn.head.conv.weight', 1], ['rpn.head.conv.0.0.weight', 2]])), /rpn\.head\.conv\.weight and rpn\.head\.conv\.0\.0\.weight both map to rpn\.head\.conv\.0\.0\.weight/);
});

// A module with exactly torchvision's modern parameter names at the fixture's shrunk shapes.
function tinyModule(names: Map<string, number[]>): E.Module {
  const m = new E.Module();
  for (const [k, s] of names) m.param(k, E.fromArray(new Float32Array(s.reduce((a, b) => a * Math.min(b, 2), 1)).fill(NaN), s.map((d) => Math.min(d, 2))));
  return m;
}

test.before(async () => {
  await E.initEngine();
});

for (const f of ['maskrcnn_tiny.pth', 'maskrcnn_tiny_legacy.pth']) {
  test(`load: torchvision-format ${f} -> mapped -> module: zero missing/unexpected, values exact`, async () => {
    const w = readWeightsSync(`${FIX}/${f}`);
    const { mapped, renamed } = mapTorchvisionKeys(w);
    const m = tinyModule(modern);
    const rep = loadIntoModule(m as LoadableModule, mapped, { strict: true });
    assert.equal(rep, { missing: [], unexpected: [], mismatched: [] });
    const back = new Map(renamed.map(([a, b]) => [b, a]));
    const sd = m.stateDict();
    const vals = await E.toArrays([...sd.values()]);
    let i = 0;
    for (const k of sd.keys()) {
      const src = w.get(back.get(k) ?? k) as HostTensor;
      assert.equal(Array.from(vals[i++]), Array.from(toFloat32(src)), k);
    }
    for (const t of sd.values()) t.dispose();
  });
}

test('load: strict mismatch names every missing/unexpected key and both shapes; non-strict loads the rest', async () => {
  const m = new E.Module();
  m.param('a.weight', E.fromArray([0, 0, 0, 0], [2, 2]));
  m.param('b.weight', E.fromArray([0, 0], [2]));
  m.param('c.bias', E.fromArray([0], [1]));
  const file = new Map<string, HostTensor>([
    ['a.weight', { dtype: 'f16', shape: [2, 2], data: new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400]) }],
    ['b.weight', { dtype: 'f32', shape: [3], data: new Float32Array(3) }],
    ['zzz', { dtype: 'f32', shape: [1], data: new Float32Array(1) }],
  ]);
  let err: unknown;
  try {
    loadIntoModule(m, file, { strict: true });
  } catch (e) {
    err = e;
  }
  assert.instance(err, StateDictMismatchError);
  const msg = (err as Error).message;
  assert.match(msg, /missing \(in the model, not in the file\): c\.bias/);
  assert.match(msg, /unexpected \(in the file, not in the model\): zzz/);
  assert.match(msg, /shape mismatch: b\.weight: file \[3\] vs model \[2\]/);
  assert.equal(Array.from(await E.toArray(m.stateDict().get('a.weight')!)), [0, 0, 0, 0], 'strict failure loads nothing');
  const rep = loadIntoModule(m, file, { strict: false });
  assert.equal(rep.missing, ['c.bias']);
  assert.equal(Array.from(await E.toArray(m.stateDict().get('a.weight')!)), [1, 2, 3, 4]);
  for (const t of m.stateDict().values()) t.dispose();
});

test.run();
