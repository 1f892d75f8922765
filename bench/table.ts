// Renders a bench JSON result (bench/run.ts --out) as the markdown table used in the README.
// Usage: npx tsx bench/table.ts bench/out/bench.json [family ...]
import { readFileSync } from 'node:fs';
import { formatTable, type BenchRow } from './harness.ts';

const [path, ...families] = process.argv.slice(2);
if (!path) throw new Error('usage: tsx bench/table.ts <bench.json> [family ...]');
const r = JSON.parse(readFileSync(path, 'utf8')) as { date: string; device: string; ceilings: { fmaGflops: number; copyGbps: number; dispatchUs: number }; rows: BenchRow[] };
const rows = families.length ? r.rows.filter((x) => families.includes(x.family)) : r.rows;
console.log(`${r.device}, ${r.date.slice(0, 10)}; opening roofs: FMA ${r.ceilings.fmaGflops.toFixed(1)} GFLOP/s, copy ${r.ceilings.copyGbps.toFixed(2)} GB/s, empty dispatch ${r.ceilings.dispatchUs.toFixed(1)} µs (each row's % is against the roof re-measured just before it)\n`);
console.log(formatTable(rows));
