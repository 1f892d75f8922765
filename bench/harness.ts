// Bench harness: each kernel family exports BenchCase rows; the harness times our dispatches with
// GPU timestamp queries (median of reps; wall clock fallback), times the same op in
// tfjs-backend-webgpu on the same adapter (wall clock around a data sync, median), and reports
// GFLOP/s or GB/s as % of the FMA and copy ceilings measured in the same run.
import { runtime } from '../engine/runtime.ts';
import { tidy } from '../engine/tensor.ts';

export type Tf = typeof import('@tensorflow/tfjs-core');

export interface BenchCase {
  family: string;
  name: string;
  /** Human-readable size, e.g. "1024x1024x1024". */
  shape: string;
  /** Napkin math per run: useful flops (2 per FMA) and/or bytes that must move. */
  flops?: number;
  bytes?: number;
  /** Allocates inputs; `record` issues one run's dispatches (no readback, no allocation-heavy setup). */
  setup: () => { record: () => void; dispose: () => void };
  /** The same op in tfjs-backend-webgpu, when it has one: `run` executes once and returns the output tensor(s). */
  tfjs?: (tf: Tf) => { run: () => unknown; dispose: () => void };
  /** Repetitions per timing sample (for very short kernels). */
  inner?: number;
}

export interface BenchRow {
  family: string;
  name: string;
  shape: string;
  ms: number;
  timing: 'timestamp' | 'wallclock';
  gflops: number | null;
  gbps: number | null;
  /** % of the measured ceiling: FMA for flop-bound rows, copy for byte-bound rows. */
  pctCeiling: number | null;
  tfjsMs: number | null;
  tfjsTiming: string | null;
  /** tfjs time / our time (> 1: we are faster). */
  speedupVsTfjs: number | null;
  /** The roofs measured just before this row. */
  ceilings: Ceilings;
}

export interface Ceilings { fmaGflops: number; copyGbps: number }

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

export async function timeOurs(c: BenchCase, reps: number): Promise<{ ms: number; timing: 'timestamp' | 'wallclock' }> {
  const rt = runtime();
  const inner = c.inner ?? 1;
  const { record, dispose } = c.setup();
  try {
    // Warm-up compiles pipelines and fills the pool.
    tidy(() => record());
    await rt.sync();
    const samples: number[] = [];
    let timing: 'timestamp' | 'wallclock' = 'timestamp';
    for (let r = 0; r < reps; r++) {
      const t = await rt.timeMs(() => tidy(() => { for (let i = 0; i < inner; i++) record(); }));
      samples.push(t.ms / inner);
      timing = t.source;
    }
    return { ms: median(samples), timing };
  } finally {
    dispose();
  }
}

/**
 * tfjs time per run: GPU kernel time from tf.time() (tfjs-backend-webgpu uses timestamp queries
 * when the adapter has them, as we do), else wall clock around a full data sync.
 */
export async function timeTfjs(tf: Tf, c: BenchCase, reps: number): Promise<{ ms: number; timing: 'timestamp' | 'wallclock' } | null> {
  if (!c.tfjs) return null;
  const { run, dispose } = c.tfjs(tf);
  const settle = async (out: unknown) => {
    const ts = (Array.isArray(out) ? out : [out]) as { data?: () => Promise<unknown>; dispose?: () => void }[];
    for (const t of ts) if (t && typeof t.data === 'function') await t.data();
    for (const t of ts) t?.dispose?.();
  };
  try {
    await settle(run()); // warm-up: compiles tfjs's pipelines
    const inner = c.inner ?? 1;
    const samples: number[] = [];
    let timing: 'timestamp' | 'wallclock' = 'timestamp';
    for (let r = 0; r < reps; r++) {
      const outs: unknown[] = [];
      const info = await tf.time(() => {
        for (let i = 0; i < inner; i++) outs.push(run());
      });
      for (const o of outs) await settle(o);
      if (typeof info.kernelMs === 'number' && info.kernelMs > 0) {
        samples.push(info.kernelMs / inner);
      } else {
        timing = 'wallclock';
        const t0 = performance.now();
        const outs2: unknown[] = [];
        for (let i = 0; i < inner; i++) outs2.push(run());
        for (const o of outs2) await settle(o);
        samples.push((performance.now() - t0) / inner);
      }
    }
    return { ms: median(samples), timing };
  } finally {
    dispose();
  }
}

export function toRow(c: BenchCase, ms: number, timing: BenchRow['timing'], tfjs: { ms: number; timing: string } | null, ceil: Ceilings): BenchRow {
  const tfjsMs = tfjs?.ms ?? null;
  const gflops = c.flops ? c.flops / ms / 1e6 : null;
  const gbps = c.bytes ? c.bytes / ms / 1e6 : null;
  const pctCeiling = gflops !== null && c.flops! / ceil.fmaGflops >= (c.bytes ?? 0) / ceil.copyGbps
    ? (100 * gflops) / ceil.fmaGflops
    : gbps !== null ? (100 * gbps) / ceil.copyGbps : null;
  return { family: c.family, name: c.name, shape: c.shape, ms, timing, gflops, gbps, pctCeiling, tfjsMs, tfjsTiming: tfjs?.timing ?? null, speedupVsTfjs: tfjsMs !== null ? tfjsMs / ms : null, ceilings: ceil };
}

const f = (x: number | null, d = 1) => (x === null ? '—' : x.toFixed(d));

export function formatTable(rows: BenchRow[]): string {
  const head = '| family | op | shape | ms | GFLOP/s | GB/s | % ceiling | tfjs ms | speedup vs tfjs |\n|---|---|---|---:|---:|---:|---:|---:|---:|';
  return [head, ...rows.map((r) => `| ${r.family} | ${r.name} | ${r.shape} | ${r.ms < 1 ? r.ms.toFixed(3) : r.ms.toFixed(2)} | ${f(r.gflops)} | ${f(r.gbps, 2)} | ${f(r.pctCeiling, 0)}% | ${r.tfjsMs === null ? '—' : r.tfjsMs.toFixed(2)} | ${r.speedupVsTfjs === null ? '—' : `${r.speedupVsTfjs.toFixed(2)}×`} |`)].join('\n');
}
