// The torchvision checkpoint format (legacy key spelling, zip and legacy serialization) loads into
// our MaskRCNN with zero missing / unexpected keys and exact values: the parity fixtures' tiny
// torchvision models (same module tree as maskrcnn_resnet50_fpn / keypointrcnn_resnet50_fpn at
// small widths), saved by torch with expand() views so the real shapes fit in small files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.ts';
import { MaskRCNN } from '../model/mask-rcnn.ts';
import { keypointrcnnTiny, maskrcnnTiny } from './model-parity-configs.ts';
import { readWeights, mapTorchvisionKeys, loadIntoModule } from '../model/weights/index.ts';

const FIX = 'test/fixtures/weights';
type Exp = Record<string, { shape: number[]; values?: number[]; fill?: number }>;
const expected = JSON.parse(readFileSync(`${FIX}/expected_tiny_tv.json`, 'utf8')) as Record<string, Exp>;

test.before(async () => {
  await E.initEngine();
});

const cases: [string, () => MaskRCNN][] = [
  ['maskrcnn_tiny_tv', () => new MaskRCNN(maskrcnnTiny(0))],
  ['keypointrcnn_tiny_tv', () => new MaskRCNN(keypointrcnnTiny(0))],
];
for (const [name, build] of cases) {
  for (const f of [`${name}.pth`, `${name}_legacy.pth`]) {
    test(`model: ${f} (torchvision legacy names) -> mapTorchvisionKeys -> MaskRCNN: 0 missing, 0 unexpected, values exact`, async () => {
      const raw = await readWeights(`${FIX}/${f}`);
      const exp = expected[name];
      assert.equal([...raw.keys()], Object.keys(exp));
      const { mapped, renamed } = mapTorchvisionKeys(raw);
      assert.ok(renamed.length >= 10, `${renamed.length} legacy names renamed`);
      const model = build();
      const report = loadIntoModule(model, mapped, { strict: true });
      assert.equal(report, { missing: [], unexpected: [], mismatched: [] });
      assert.is(model.stateDict().size, raw.size);
      const back = new Map(renamed.map(([from, to]) => [to, from]));
      const sd = [...model.stateDict()];
      const vals = await E.toArrays(sd.map(([, t]) => t));
      sd.forEach(([k, t], i) => {
        const e = exp[back.get(k) ?? k];
        assert.equal(t.shape, e.shape, k);
        const v = vals[i];
        if (e.values) assert.equal(Array.from(v), e.values, k);
        else assert.ok(v.every((x) => x === e.fill), `${k}: every element ${e.fill}`);
      });
      for (const [, t] of sd) t.dispose();
    });
  }
}

test.run();
