// `npm run bench [-- --filter matmul --reps 5 --no-tfjs --full --out bench/out/bench.json]`
// Runs every bench/*.bench.ts (each exports `cases(size)`), measures the FMA/copy ceilings and
// per-dispatch overhead in the same run, prints a markdown table and writes a JSON result file.
import { readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { create } from 'webgpu';
import { initEngine, runtime } from '../engine/runtime.ts';
import { describeDevice, shutdownEngine } from '../engine/device.ts';
import { COPY_VARIANTS, copyLaunch, emptyLaunch, fmaLaunch, FMA_VARIANTS } from '../kernels/ceiling.ts';
import { formatTable, timeOurs, timeTfjs, toRow, type BenchCase, type BenchRow, type Ceilings, type Tf } from './harness.ts';

export type BenchSize = 'small' | 'full';

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const filter = opt('--filter');
const reps = Number(opt('--reps') ?? 5);
const size: BenchSize = args.includes('--full') ? 'full' : 'small';
const here = dirname(fileURLToPath(import.meta.url));
const outPath = opt('--out') ?? join(here, 'out', 'bench.json');

/**
 * The roofs right now, with only the best FMA/copy kernel shapes of the opening measurement: each
 * row is compared with the roof measured just before it, so a machine whose load changes during
 * the run (CI neighbours) does not skew the percentages.
 */
async function quickCeilings(best: { fma: number; copy: number }): Promise<Ceilings> {
  const rt = runtime();
  const out = rt.pool.acquire(4 << 20, 'ceiling-out');
  const n = 1 << 24;
  const a = rt.pool.acquire(n * 4, 'ceiling-a');
  const b = rt.pool.acquire(n * 4, 'ceiling-b');
  const f = fmaLaunch(1 << 18, FMA_VARIANTS[best.fma]);
  const c = copyLaunch(n / 4, COPY_VARIANTS[best.copy]);
  const fmaGflops = f.flops / (await rt.timeMs(() => rt.launch(f.launch, [out]))).ms / 1e6;
  const copyGbps = c.bytes / (await rt.timeMs(() => rt.launch(c.launch, [a, b]))).ms / 1e6;
  for (const x of [out, a, b]) rt.pool.release(x);
  return { fmaGflops, copyGbps };
}

async function measureCeilings(): Promise<Ceilings & { dispatchUs: number; compileMs: number; best: { fma: number; copy: number } }> {
  const rt = runtime();
  const out = rt.pool.acquire(4 << 20, 'ceiling-out');
  const fmas = FMA_VARIANTS.map((v) => fmaLaunch(1 << 18, v));
  const fma = fmas[0];
  const n = 1 << 24;
  const a = rt.pool.acquire(n * 4, 'ceiling-a');
  const b = rt.pool.acquire(n * 4, 'ceiling-b');
  const copies = COPY_VARIANTS.map((e) => copyLaunch(n / 4, e));
  const copy = copies[0];
  const t0 = performance.now();
  rt.launch(fma.launch, [out]);
  rt.launch(copy.launch, [a, b]);
  const empty = emptyLaunch();
  rt.launch(empty, [out]);
  await rt.sync();
  const compileMs = performance.now() - t0;
  let fmaGflops = 0;
  let copyGbps = 0;
  const best = { fma: 0, copy: 0 };
  for (const f of fmas) rt.launch(f.launch, [out]);
  for (const c of copies) rt.launch(c.launch, [a, b]);
  for (let r = 0; r < reps; r++) {
    for (const [i, f] of fmas.entries()) {
      const g = f.flops / (await rt.timeMs(() => rt.launch(f.launch, [out]))).ms / 1e6;
      if (g > fmaGflops) [fmaGflops, best.fma] = [g, i];
    }
    for (const [i, c] of copies.entries()) {
      const g = c.bytes / (await rt.timeMs(() => rt.launch(c.launch, [a, b]))).ms / 1e6;
      if (g > copyGbps) [copyGbps, best.copy] = [g, i];
    }
  }
  // Dispatch overhead: wall clock of many empty dispatches (record + submit + GPU), per dispatch.
  const k = 2000;
  await rt.sync();
  const w0 = performance.now();
  for (let i = 0; i < k; i++) rt.launch(empty, [out]);
  await rt.sync();
  const dispatchUs = ((performance.now() - w0) * 1000) / k;
  rt.pool.release(out);
  rt.pool.release(a);
  rt.pool.release(b);
  return { fmaGflops, copyGbps, dispatchUs, compileMs, best };
}

async function loadTfjs(): Promise<Tf | null> {
  if (args.includes('--no-tfjs')) return null;
  try {
    // tfjs-backend-webgpu looks for navigator.gpu; dawn.node provides it on the same adapter.
    const flags = process.env.MRCNN_ADAPTER ? [`adapter=${process.env.MRCNN_ADAPTER}`] : [];
    (globalThis as any).navigator = { gpu: create(flags), userAgent: 'node' };
    const tf = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
    const ok = await tf.setBackend('webgpu');
    if (!ok) throw new Error('setBackend(webgpu) returned false');
    await tf.ready();
    return tf;
  } catch (e) {
    console.log(`bench: tfjs-backend-webgpu unavailable (${(e as Error).message}); peer column left empty`);
    return null;
  }
}

async function main(): Promise<void> {
  const rt = await initEngine();
  console.log(`device: ${describeDevice(rt.dev)}`);
  const ceil = await measureCeilings();
  console.log(`ceilings: FMA ${ceil.fmaGflops.toFixed(1)} GFLOP/s, copy ${ceil.copyGbps.toFixed(2)} GB/s; empty dispatch ${ceil.dispatchUs.toFixed(1)} µs; first 3 pipelines compiled+ran in ${ceil.compileMs.toFixed(0)} ms`);
  const tf = await loadTfjs();
  const files = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
  const rows: BenchRow[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as { cases: (s: BenchSize) => BenchCase[] };
    for (const c of mod.cases(size)) {
      if (filter && !`${c.family} ${c.name}`.includes(filter)) continue;
      const compile0 = rt.stats.compileMs;
      const ours = await timeOurs(c, reps);
      const tfjs = tf ? await timeTfjs(tf, c, Math.min(reps, 3)).catch((e) => (console.log(`  tfjs ${c.name}: ${(e as Error).message}`), null)) : null;
      const rowCeil = await quickCeilings(ceil.best);
      const row = toRow(c, ours.ms, ours.timing, tfjs, rowCeil);
      const tfjsMs = row.tfjsMs;
      rows.push(row);
      console.log(`${c.family}/${c.name} ${c.shape}: ${row.ms.toFixed(3)} ms ${row.gflops ? `${row.gflops.toFixed(1)} GFLOP/s ` : ''}${row.gbps ? `${row.gbps.toFixed(2)} GB/s ` : ''}(${row.pctCeiling === null ? '—' : row.pctCeiling.toFixed(0)}% of ceiling ${rowCeil.fmaGflops.toFixed(0)} GFLOP/s / ${rowCeil.copyGbps.toFixed(1)} GB/s)${tfjsMs ? `, tfjs ${tfjsMs.toFixed(2)} ms → ${row.speedupVsTfjs!.toFixed(2)}×` : ''}; compile ${(rt.stats.compileMs - compile0).toFixed(0)} ms`);
    }
  }
  console.log('\n' + formatTable(rows));
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify({ date: new Date().toISOString(), device: describeDevice(rt.dev), size, reps, ceilings: ceil, pipelines: rt.stats.pipelines, compileMsTotal: rt.stats.compileMs, rows }, null, 2));
  console.log(`\nwrote ${outPath}`);
  await shutdownEngine();
  process.exit(0);
}

await main();
