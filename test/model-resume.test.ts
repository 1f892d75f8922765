// Exact resume (issue 14): a run killed with SIGKILL right after a checkpoint, then resumed with
// --resume, ends with the same weights and optimizer state (SGD momentum; AdamW moments), bit for
// bit, as an uninterrupted run.
// Tiny setting of the real CLI: shapes at 64–96 px, batch 2, 4 iterations, checkpoint every 2.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsSync } from '../model/weights/index.ts';

const BASE_ARGS = ['model/train.ts', '--max_iter', '4', '--bs', '2', '--nw', '0', '--size', '64,96', '--ckpt_every', '2', '--warmup_iters', '0', '--no-final_eval', '--seed', '7'];

/** Runs train.ts; with killAfter, SIGKILLs it as soon as stdout shows that text. */
function run(args: string[], killAfter?: string): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MRCNN_POISON: '' } });
    let out = '';
    const on = (d: Buffer) => {
      out += d.toString();
      if (killAfter && out.includes(killAfter)) p.kill('SIGKILL');
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, out }));
  });
}

for (const [label, extra, stateKey] of [
  ['SGD, step schedule', ['--optimizer', 'sgd'], 'optim.momentum.'],
  ['AdamW, cosine schedule', ['--optimizer', 'adamw', '--lr_schedule', 'cosine'], 'optim.exp_avg_sq.'],
] as const) test(`${label}: SIGKILL after a checkpoint, --resume: final weights equal an uninterrupted run bit for bit`, async () => {
  const root = mkdtempSync(join(tmpdir(), 'mrcnn-resume-'));
  const ARGS = [...BASE_ARGS, ...extra];
  try {
    const a = await run([...ARGS, '--save_dir', join(root, 'a')]);
    assert.is(a.code, 0, a.out);
    const b = await run([...ARGS, '--save_dir', join(root, 'b')], 'checkpoint ckpt_0000002');
    assert.is(b.signal, 'SIGKILL', `the run was not killed: ${b.out}`);
    const c = await run([...ARGS, '--save_dir', join(root, 'b'), '--resume']);
    assert.is(c.code, 0, c.out);
    assert.match(c.out, /resumed from .*ckpt_0000002\.json at iteration 2/);
    const ta = readSafetensorsSync(join(root, 'a', 'ckpt_0000004.safetensors')).tensors;
    const tb = readSafetensorsSync(join(root, 'b', 'ckpt_0000004.safetensors')).tensors;
    assert.equal([...ta.keys()].sort(), [...tb.keys()].sort());
    assert.ok([...ta.keys()].some((k) => k.startsWith(stateKey)), `optimizer state (${stateKey}*) is saved`);
    let differing = 0;
    for (const [k, x] of ta) {
      const y = tb.get(k)!;
      const bx = new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
      const by = new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength);
      if (bx.length !== by.length || bx.some((v, i) => v !== by[i])) differing++;
    }
    assert.is(differing, 0, `${differing} of ${ta.size} tensors differ between the uninterrupted and the resumed run`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--resume with another --optimizer than the checkpoint is refused, naming both', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mrcnn-resume-'));
  try {
    const args = [...BASE_ARGS.filter((a, i, all) => a !== '--max_iter' && all[i - 1] !== '--max_iter'), '--max_iter', '2', '--save_dir', root];
    assert.is((await run([...args, '--optimizer', 'sgd'])).code, 0);
    const r = await run([...args, '--resume', '--optimizer', 'adamw']);
    assert.is(r.code, 1, r.out);
    assert.match(r.out, /trained with --optimizer sgd; this run uses --optimizer adamw/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
