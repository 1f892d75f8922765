// Test entry: runs every test/*.test.ts (or those whose name contains one of argv's
// filters) through uvu in one process, so the GPU device is created once, and ends with
// the line CI reads: `N passed, N failed`.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const g = globalThis as unknown as { UVU_DEFER: number; UVU_INDEX: number; UVU_QUEUE: unknown[][] };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [];

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => filters.length === 0 || filters.some((q) => f.includes(q)))
  .sort();

const { exec } = await import('uvu');
for (let i = 0; i < files.length; i++) {
  g.UVU_INDEX = i;
  g.UVU_QUEUE.push([files[i]]);
  await import(pathToFileURL(join(here, files[i])).href);
}

type SuiteResult = [string | true, number, number, number]; // uvu: [errors, ran, skipped, total]
let passed = 0;
let failed = 0;
for (const group of g.UVU_QUEUE) {
  for (let j = 1; j < group.length; j++) {
    const run = group[j] as () => Promise<SuiteResult>;
    group[j] = async () => {
      const r = await run();
      passed += r[1];
      failed += r[3] - r[1] - r[2];
      return r;
    };
  }
}
const t0 = performance.now();
await exec(false);
const { shutdownEngine } = await import('../engine/device.ts');
await shutdownEngine();
console.log(`test time ${((performance.now() - t0) / 1000).toFixed(1)} s over ${files.length} files`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
