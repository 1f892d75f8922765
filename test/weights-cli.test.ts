import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWeightsCli } from '../model/weights.ts';
import { readWeightsSync, saveCheckpoint } from '../model/weights/index.ts';

const FIX = 'test/fixtures/weights';
const run = (...args: string[]): { code: number; out: string } => {
  const lines: string[] = [];
  const code = runWeightsCli(args, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
};

test('cli inspect: format, tensor count, parameter count, keys with dtype and shape; nested checkpoints', () => {
  const r = run('inspect', `${FIX}/nested_legacy.pth`);
  assert.is(r.code, 0);
  assert.match(r.out, /pth-legacy, 2 tensors, 20 parameters/);
  assert.match(r.out, /top-level: model \(dict\), optimizer \(dict\), epoch \(number\)/);
  assert.match(r.out, /conv\.weight\s+f32\s+\[2, 1, 3, 3\]/);
  const m = run('inspect', `${FIX}/maskrcnn_tiny.pth`, '--map');
  assert.match(m.out, /mapped as detection: 26 renamed, 0 dropped/);
  assert.match(m.out, /\.\.\. 257 more \(--all lists them\)/);
  assert.match(run('inspect', `${FIX}/maskrcnn_tiny.pth`, '--map', '--all').out, /rpn\.head\.conv\.0\.0\.weight\s+f32\s+\[2, 2, 2, 2\]/);
});

test('cli convert: .pth (legacy) -> safetensors with mapped names, values identical; errors exit 1 naming the file', () => {
  const d = mkdtempSync(join(tmpdir(), 'weights-cli-'));
  const out = join(d, 'm.safetensors');
  assert.is(run('convert', `${FIX}/maskrcnn_tiny_legacy.pth`, out, '--map').code, 0);
  const a = readWeightsSync(`${FIX}/maskrcnn_tiny_legacy.pth`);
  const b = readWeightsSync(out);
  assert.is(b.size, 307);
  assert.equal(Array.from(b.get('roi_heads.mask_head.2.0.weight')!.data as Float32Array), Array.from(a.get('roi_heads.mask_head.mask_fcn3.weight')!.data as Float32Array));
  assert.match(run('inspect', out).out, /"source_format":"pth-legacy"/);
  saveCheckpoint(d, 'ck', new Map([['w', { dtype: 'f32', shape: [1], data: new Float32Array([1]) }]]), { config: {}, iteration: 4 });
  assert.match(run('inspect', join(d, 'ck.json')).out, /checkpoint, 1 tensors[\s\S]*iteration 4/);
  const bad = run('inspect', `${FIX}/evil_legacy.pth`);
  assert.is(bad.code, 1);
  assert.match(bad.out, /evil_legacy\.pth @ byte \d+: pickle: global commands\.check_call/);
  assert.is(run('convert', `${FIX}/basic.pth`).code, 2);
  rmSync(d, { recursive: true });
});

test.run();
