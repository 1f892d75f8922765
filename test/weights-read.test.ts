import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { readWeights, readWeightsSync, readWeightsBuffer, WeightsFormatError, toFloat32, parsePth, readSafetensors, type HostTensor } from '../model/weights/index.ts';

const FIX = 'test/fixtures/weights';
type Expect = Record<string, { dtype: string; shape: number[]; hex: string }>;
const expected = JSON.parse(readFileSync(`${FIX}/expected.json`, 'utf8')) as Record<string, Expect>;

const hexOf = (t: HostTensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

function assertExact(got: Map<string, HostTensor>, exp: Expect, file: string): void {
  assert.equal([...got.keys()].sort(), Object.keys(exp).sort(), `${file}: keys`);
  for (const [k, e] of Object.entries(exp)) {
    const t = got.get(k)!;
    assert.is(t.dtype, e.dtype, `${file}: ${k} dtype`);
    assert.equal(t.shape, e.shape, `${file}: ${k} shape`);
    assert.is(hexOf(t), e.hex, `${file}: ${k} bytes`);
  }
}

for (const f of ['basic.pth', 'basic_legacy.pth', 'basic_p4.pth', 'basic_p4_legacy.pth', 'basic_bigendian.pth']) {
  test(`pth: ${f} matches torch's tensors bit for bit (all dtypes, shared storages, strided/offset/expanded views)`, async () => {
    assertExact(await readWeights(`${FIX}/${f}`), expected.basic, f);
  });
}

test('pth: formats detected from the bytes', () => {
  assert.is(parsePth(new Uint8Array(readFileSync(`${FIX}/basic.pth`)), 'basic.pth').format, 'pth-zip');
  assert.is(parsePth(new Uint8Array(readFileSync(`${FIX}/basic_legacy.pth`)), 'basic_legacy.pth').format, 'pth-legacy');
});

for (const f of ['nested.pth', 'nested_legacy.pth']) {
  test(`pth: ${f}: the state dict under 'model' is found beside optimizer state`, () => {
    assertExact(readWeightsSync(`${FIX}/${f}`), expected.nested, f);
  });
}

for (const f of ['maskrcnn_tiny.pth', 'maskrcnn_tiny_legacy.pth']) {
  test(`pth: ${f}: all 307 torchvision keys, exact values`, () => {
    const w = readWeightsSync(`${FIX}/${f}`);
    assert.is(w.size, 307);
    assertExact(w, expected.maskrcnn_tiny, f);
  });
}

test('safetensors: a file from an independent writer reads exactly (header order != data order, metadata)', async () => {
  const { tensors, metadata } = await readSafetensors(`${FIX}/basic.safetensors`);
  const sub = Object.fromEntries(Object.entries(expected.basic).filter(([k]) => tensors.has(k)));
  assert.is(Object.keys(sub).length, 11);
  assertExact(tensors, sub, 'basic.safetensors');
  assert.is(metadata.source, 'gen_weights_fixtures.py');
  assert.equal([...readWeightsSync(`${FIX}/basic.safetensors`).keys()].sort(), Object.keys(sub).sort());
});

test('toFloat32: every dtype converts to the values torch prints', () => {
  const w = readWeightsSync(`${FIX}/basic.pth`);
  assert.equal(Array.from(toFloat32(w.get('h_f16')!)), [1.5, -0, 65504, Infinity, 5.960464477539063e-8, -3.25]);
  assert.equal(Array.from(toFloat32(w.get('b_bf16')!)).slice(0, 1), [1]);
  assert.ok(Math.abs(toFloat32(w.get('b_bf16')!)[2] - 3.140625) < 1e-7);
  assert.equal(Array.from(toFloat32(w.get('l_i64')!)).slice(0, 3), [0, -1, Math.fround(2 ** 40 + 3)]);
  assert.equal(Array.from(toFloat32(w.get('m_bool')!)), [1, 0, 1]);
  assert.equal(Array.from(toFloat32(w.get('u_u8')!)), [0, 1, 200, 255]);
  assert.equal(Array.from(toFloat32(w.get('expanded')!)), [1, 2, 1, 2, 1, 2]);
  const full = toFloat32(w.get('shared_full')!);
  assert.equal(Array.from(toFloat32(w.get('shared_t')!)), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11].map((i) => full[i]));
  assert.equal(Array.from(toFloat32(w.get('shared_step')!)), [1, 4, 7, 10].map((i) => full[i]));
  assert.equal(w.get('scalar')!.shape, []);
  assert.equal(Array.from(toFloat32(w.get('scalar')!)), [2.75]);
});

const MARK = '/tmp/mrcnn-weights-pwned-marker';
const evil = ['evil_os_system_p2.pkl', 'evil_os_system_p4.pkl', 'evil_os_system_text.pkl', 'evil_builtins_eval_p2.pkl', 'evil_builtins_eval_p4.pkl', 'evil_builtins_exec_text.pkl', 'evil_subprocess_p2.pkl', 'evil_subprocess_p4.pkl', 'evil_zip.pth', 'evil_legacy.pth'];
const evilGlobal: Record<string, RegExp> = { os_system: /global (posix|os)\.system is not allowed/, builtins_eval: /global (builtins|__builtin__)\.eval( \(Python 3: builtins\.eval\))? is not allowed/, builtins_exec: /global builtins\.exec is not allowed/, subprocess: /global (subprocess|commands)\.check_call( \(Python 3: subprocess\.check_call\))? is not allowed/, zip: /global posix\.system/, legacy: /global commands\.check_call \(Python 3: subprocess\.check_call\)/ };
test('malicious pickles (os.system, builtins.eval/exec, subprocess) fail naming the global; nothing runs', () => {
  rmSync(MARK, { force: true });
  for (const f of evil) {
    const buf = new Uint8Array(readFileSync(`${FIX}/${f}`));
    // raw .pkl payloads are fed to the pickle reader as a legacy object stream would be
    const run = (): unknown => (f.endsWith('.pkl') ? readWeightsBuffer(legacyWrap(buf), f) : readWeightsBuffer(buf, f));
    let err: unknown;
    try {
      run();
    } catch (e) {
      err = e;
    }
    assert.instance(err, WeightsFormatError, f);
    const key = Object.keys(evilGlobal).find((k) => f.includes(k))!;
    assert.match((err as Error).message, evilGlobal[key], f);
    assert.match((err as Error).message, /refused, nothing was run/);
    assert.ok((err as WeightsFormatError).offset >= 0, `${f}: offset named`);
  }
  assert.not.ok(existsSync(MARK), 'marker file appeared');
});

// magic, protocol, sys_info as torch's _legacy_save writes them, then the payload as the object
function legacyWrap(payload: Uint8Array): Uint8Array {
  const legacy = readFileSync(`${FIX}/evil_legacy.pth`);
  const head = legacy.subarray(0, legacy.indexOf(Buffer.from('type_sizes')) + 200);
  // the header ends where the fourth pickle (the object) starts: after the third STOP
  let stops = 0;
  let i = 0;
  for (; i < head.length && stops < 3; i++) if (head[i] === 0x2e && (head[i + 1] === 0x80 || i + 1 === head.length)) stops++;
  return new Uint8Array(Buffer.concat([legacy.subarray(0, i), payload, Buffer.from([0x80, 2, 0x5d, 0x2e])]));
}

test('unknown formats and dtypes are WeightsFormatError naming the file', () => {
  assert.throws(() => readWeightsBuffer(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), 'junk.bin'), (e: Error) => e instanceof WeightsFormatError && /junk\.bin/.test(e.message));
});

test.run();
