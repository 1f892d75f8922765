// Clear failures: no adapter, allocation over the device limit, a broken kernel, pipeline caching
// and uniform paths (immediates vs arena) behaving the same.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../engine/index.ts';
import { assertClose } from './util.ts';

const t = suite('engine device and runtime');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

t.before(async () => {
  await E.initEngine();
});

t('no adapter: one clear error with the install line, not a stack trace', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./engine/runtime.ts').then(m => m.initEngine()).then(() => { console.log('ADAPTER'); process.exit(0); }, (e) => { console.log(e.message); process.exit(3); })"], {
    cwd: root,
    env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.is(r.status, 3, `exit ${r.status}: ${r.stdout} ${r.stderr}`);
  assert.match(r.stdout, /no WebGPU adapter found/);
  assert.match(r.stdout, /scripts\/setup-gpu\.sh/);
});

t('allocations over the device limit name the tensor, the size and the limit', () => {
  const limit = E.runtime().dev.limits.maxStorageBufferBindingSize;
  assert.throws(() => E.empty([Math.ceil(limit / 4) + 1024], 'f32', 'huge'), /pool: huge\[\d+\] needs \d+ B .* > device maxBufferSize \d+ B/);
});

t('a kernel that fails to compile is reported with its key', () => {
  const rt = E.runtime();
  const bad = { key: 'test:broken', build: () => ({ uniforms: [] as [string, 'u32'][], code: '@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = undefined_thing; }' }), uniforms: [], grid: [1] as [number] };
  const buf = rt.pool.acquire(16, 'x');
  assert.throws(() => rt.launch(bad, [buf]), /test:broken/);
  rt.pool.release(buf);
});

t('pipelines are cached across shapes: changing sizes does not recompile', async () => {
  const rt = E.runtime();
  // Same layout class (odd sizes take the scalar flat path; multiples of 4 the vec4 one).
  E.tidy(() => E.add(E.ones([7]), E.ones([7])));
  const before = rt.stats.pipelines;
  E.tidy(() => {
    for (const n of [5, 9, 1001, 31]) E.add(E.ones([n]), E.ones([n]));
  });
  assert.is(rt.stats.pipelines, before);
});

t('uniform arena path (> 64 B of uniforms) matches the immediate path', async () => {
  // A rank-5 non-coalescable view takes the general strided path, whose uniforms exceed 64 B.
  const x = E.reshape(E.arange(2 * 3 * 2 * 3 * 2), [2, 3, 2, 3, 2]);
  const p = E.permute(x, [4, 2, 0, 3, 1]);
  const got = await E.toArray(E.add(p, 1));
  const data = Array.from({ length: 72 }, (_, i) => i);
  const want: number[] = [];
  for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 2; c++) for (let d = 0; d < 3; d++) for (let e = 0; e < 3; e++) {
    // p[a,b,c,d,e] = x[c, e, b, d, a]
    want.push(data[(((c * 3 + e) * 2 + b) * 3 + d) * 2 + a] + 1);
  }
  assertClose(got, want, 'rank-5 permuted add', 0, 0);
});

t.run();
