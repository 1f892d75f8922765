import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, pruneCheckpoints, diffConfig, CorruptCheckpointError, ConfigMismatchError, writeSafetensors, readSafetensors, WeightsFormatError, type TensorIn } from '../model/weights/index.ts';
import { patternTensors } from './fixtures/weights/ckpt-pattern.ts';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'weights-ckpt-'));
const config = { model: { numClasses: 91, fpn: { channels: 256 }, anchors: [32, 64, 128] }, lr: 0.02 };
const sidecar = (it: number) => ({ config, iteration: it, epoch: Math.floor(it / 10), optimizer: { kind: 'sgd', lr: 0.02, momentum: 0.9, weightDecay: 1e-4, step: it }, schedule: { warmupIters: 500, steps: [16, 22] }, rng: { seed: 7, state: [1, 2, 3, 4] }, loader: { epoch: 0, position: it * 2 }, metrics: { loss: 1.5 } });
const small = (v: number): Map<string, TensorIn> => new Map<string, TensorIn>([
  ['w', { dtype: 'f32', shape: [2, 2], data: new Float32Array([v, 2, 3, 4]) }],
  ['optimizer.momentum.w', { dtype: 'f32', shape: [2, 2], data: new Float32Array([0.5, 0, 0, v]) }],
  ['steps', { dtype: 'i64', shape: [1], data: new BigInt64Array([BigInt(v)]) }],
  ['h', { dtype: 'bf16', shape: [1], data: new Uint16Array([0x3f80]) }],
]);

test('safetensors: writer round-trips every dtype and metadata; readers reject bad offsets/dtypes', async () => {
  const d = tmp();
  const ts = new Map<string, TensorIn>([
    ['a', { dtype: 'f32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
    ['b', { dtype: 'f16', shape: [1], data: new Uint16Array([0x3c00]) }],
    ['c', { dtype: 'f64', shape: [], data: new Float64Array([Math.PI]) }],
    ['d', { dtype: 'i32', shape: [2], data: new Int32Array([-1, 7]) }],
    ['e', { dtype: 'u8', shape: [0], data: new Uint8Array(0) }],
    ['f', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
    ['g', { dtype: 'i64', shape: [1], data: new BigInt64Array([-(2n ** 60n)]) }],
  ]);
  await writeSafetensors(join(d, 'x.safetensors'), ts, { note: 'hi' });
  const raw = readFileSync(join(d, 'x.safetensors'));
  assert.is((8 + Number(raw.readBigUInt64LE(0))) % 8, 0, 'data section 8-byte aligned');
  const back = await readSafetensors(join(d, 'x.safetensors'));
  assert.equal(back.metadata, { note: 'hi' });
  for (const [k, t] of ts) {
    assert.equal(back.tensors.get(k)!.shape, t.shape, k);
    assert.equal(Array.from(back.tensors.get(k)!.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), k);
  }
  const header = JSON.parse(raw.subarray(8, 8 + Number(raw.readBigUInt64LE(0))).toString());
  const withHeader = (h: unknown, extra = 0): Uint8Array => {
    const hb = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    return Buffer.concat([len, hb, raw.subarray(8 + Number(raw.readBigUInt64LE(0))), Buffer.alloc(extra)]);
  };
  const bad: [unknown, RegExp, number?][] = [
    [{ ...header, a: { ...header.a, data_offsets: [0, 1 << 30] } }, /a: data_offsets \[0, 1073741824\] hold/],
    [{ ...header, a: { ...header.a, shape: [3, 3] } }, /shape \[3,3\] F32 needs 36/],
    [{ ...header, a: { ...header.a, dtype: 'I8' } }, /dtype "I8" is not supported/],
    [{ ...header, b: { ...header.b, data_offsets: header.a.data_offsets.map((x: number) => x + 2).slice(0, 1).concat([header.a.data_offsets[0] + 4]) } }, /overlaps|gap/],
    [header, /tensors end at \d+ but the data section has \d+ bytes/, 8],
  ];
  for (const [h, re, extra] of bad) {
    const p = join(d, 'bad.safetensors');
    writeFileSync(p, withHeader(h, extra));
    const err = await readSafetensors(p).then(() => null, (e: Error) => e);
    assert.ok(err instanceof WeightsFormatError && re.test(err.message) && err.message.includes('bad.safetensors'), `${re}: ${err?.message}`);
  }
  rmSync(d, { recursive: true });
});

test('checkpoint: save/list/load round trip; sidecar carries config, optimizer, schedule, rng, loader, metrics', () => {
  const d = tmp();
  saveCheckpoint(d, 'ckpt-000010', small(10), sidecar(10));
  saveCheckpoint(d, 'ckpt-000002', small(2), sidecar(2));
  saveCheckpoint(d, 'ckpt-000030', small(30), sidecar(30));
  assert.equal(listCheckpoints(d).map((c) => c.iteration), [2, 10, 30]);
  assert.is(latestCheckpoint(d)!.name, 'ckpt-000030');
  const c = loadCheckpoint(d, { config });
  assert.is(c.iteration, 30);
  assert.equal(c.sidecar, sidecar(30));
  assert.equal(Array.from(c.tensors.get('w')!.data as Float32Array), [30, 2, 3, 4]);
  assert.equal(Array.from(c.tensors.get('optimizer.momentum.w')!.data as Float32Array), [0.5, 0, 0, 30]);
  assert.is((c.tensors.get('steps')!.data as BigInt64Array)[0], 30n);
  assert.equal(loadCheckpoint(join(d, 'ckpt-000002.json')).iteration, 2);
  assert.equal(loadCheckpoint(join(d, 'ckpt-000010.safetensors')).iteration, 10);
  assert.throws(() => saveCheckpoint(d, 'ckpt-000030', small(1), sidecar(30)), /exists/);
  assert.equal(pruneCheckpoints(d, 2).removed.map((p) => p.slice(d.length + 1)), ['ckpt-000002.json', 'ckpt-000002.safetensors']);
  assert.equal(listCheckpoints(d).map((c) => c.iteration), [10, 30]);
  rmSync(d, { recursive: true });
});

test('checkpoint: config differences are named; corrupt tensors, torn overwrite and missing files are CorruptCheckpointError; a directory load falls back', () => {
  const d = tmp();
  saveCheckpoint(d, 'a', small(1), sidecar(1));
  saveCheckpoint(d, 'b', small(2), sidecar(2));
  const other = { model: { numClasses: 81, fpn: { channels: 256, extra: true }, anchors: [32, 64] }, lr: 0.02 };
  assert.throws(() => loadCheckpoint(d, { config: other }), (e: Error) => e instanceof ConfigMismatchError && /config\.model\.numClasses: checkpoint 91 != model 81/.test(e.message) && /config\.model\.fpn\.extra: only in model \(true\)/.test(e.message) && /config\.model\.anchors: checkpoint \[32,64,128\] \(length 3\) != model \[32,64\] \(length 2\)/.test(e.message));
  assert.equal(loadCheckpoint(d, { config: other, allowConfigDiff: true }).configDiff.length, 3);
  assert.equal(diffConfig({ a: 1, b: [1, { c: 'x' }] }, { a: 1, b: [1, { c: 'y' }] }), ['config.b[1].c: a "x" != b "y"']);
  // flip one byte of b's tensors: b is corrupt, the directory load falls back to a
  const p = join(d, 'b.safetensors');
  const raw = readFileSync(p);
  raw[raw.length - 1] ^= 1;
  writeFileSync(p, raw);
  assert.throws(() => loadCheckpoint(join(d, 'b')), (e: Error) => e instanceof CorruptCheckpointError && /b\.safetensors: SHA-256/.test(e.message));
  const c = loadCheckpoint(d);
  assert.is(c.name, 'a');
  assert.is(c.skipped[0].name, 'b');
  // a torn overwrite: a's sidecar with another save's tensors
  saveCheckpoint(d, 'c', small(3), sidecar(3));
  writeFileSync(join(d, 'a.safetensors'), readFileSync(join(d, 'c.safetensors')));
  const j = JSON.parse(readFileSync(join(d, 'a.json'), 'utf8'));
  j.tensors.sha256 = JSON.parse(readFileSync(join(d, 'c.json'), 'utf8')).tensors.sha256;
  writeFileSync(join(d, 'a.json'), JSON.stringify(j));
  assert.throws(() => loadCheckpoint(join(d, 'a.json')), /a\.safetensors: checkpoint id [0-9a-f]+ != [0-9a-f]+ in a\.json \(a torn overwrite\)/);
  rmSync(join(d, 'c.safetensors'));
  assert.throws(() => loadCheckpoint(join(d, 'c')), (e: Error) => e instanceof CorruptCheckpointError && /c\.safetensors: tensors file unreadable/.test(e.message));
  rmSync(d, { recursive: true });
});

// SIGKILL a child that keeps saving large checkpoints, at random moments; after every kill the
// newest committed checkpoint must load with exactly the tensors of its iteration.
const KILLS = Number(process.env.WEIGHTS_KILLS ?? 4);
const MIB = Number(process.env.WEIGHTS_KILL_MIB ?? 8);
test(`checkpoint: ${KILLS} SIGKILLs of a writer saving ${MIB} MiB checkpoints never lose the previous checkpoint`, async () => {
  const d = tmp();
  let seed = 12345;
  const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let t0 = performance.now();
  saveCheckpoint(d, 'ckpt-000000', patternTensors(0, MIB), { config: { mib: MIB }, iteration: 0 });
  const saveMs = performance.now() - t0;
  let committed = 0;
  let midWrite = 0;
  t0 = performance.now();
  for (let k = 0; k < KILLS; k++) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/weights/ckpt-writer.ts', d, String(committed + 1), String(MIB)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    await new Promise<void>((res) => child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) res();
    }));
    if (k % 2 === 0) {
      await new Promise((r) => setTimeout(r, rand() * 2.5 * saveMs));
    } else {
      // odd kills aim inside a write: wait for this child's temp file to appear, then a bit more
      const t = performance.now();
      while (!readdirSync(d).some((f) => f.includes(`.tmp-${child.pid}-`)) && performance.now() - t < 20_000) await new Promise((r) => setTimeout(r, 2));
      await new Promise((r) => setTimeout(r, rand() * 0.3 * saveMs));
    }
    child.kill('SIGKILL');
    await exited;
    const saved = [...out.matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
    if (readdirSync(d).some((f) => f.includes(`.tmp-${child.pid}-`))) midWrite++; // this kill landed inside a file write
    const c = loadCheckpoint(d, { config: { mib: MIB } });
    assert.ok(c.iteration >= committed, `kill ${k}: loaded ${c.iteration}, older than the ${committed} loaded before`);
    assert.ok(c.iteration >= (saved.length ? saved[saved.length - 1] : committed), `kill ${k}: loaded ${c.iteration}, child reported ${saved.at(-1)}`);
    assert.equal(c.skipped, [], `kill ${k}: a committed checkpoint failed to load`);
    const want = patternTensors(c.iteration, MIB);
    for (const [n, t] of want) assert.ok(Buffer.from((c.tensors.get(n)!.data as Float32Array).buffer).equals(Buffer.from((t.data as Float32Array).buffer)), `kill ${k}: ${n} of iteration ${c.iteration}`);
    committed = c.iteration;
  }
  const leftovers = readdirSync(d).filter((f) => f.includes('.tmp-')).length;
  pruneCheckpoints(d, 1);
  assert.is(readdirSync(d).filter((f) => f.includes('.tmp-')).length, 0, 'prune removes dead writers\' temp files');
  assert.equal(readdirSync(d).sort(), [`${latestCheckpoint(d)!.name}.json`, `${latestCheckpoint(d)!.name}.safetensors`]);
  console.log(`  kill test: ${KILLS} kills in ${((performance.now() - t0) / 1000).toFixed(1)} s, one save ${saveMs.toFixed(0)} ms, ${midWrite} kills left a temp file (${leftovers} at the end), last iteration ${committed}`);
  rmSync(d, { recursive: true });
});

test.run();
