// Generate (or locate) the shapes dataset and print its paths.
// Usage: npx tsx data/shapes-cli.ts [--cache-dir DIR] [--seed N] [--train N] [--val N] [--min-side PX] [--max-side PX]
import { ensureShapes, hashShapesDir } from './shapes.ts';

const arg = (name: string): string | undefined => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : undefined; };
const num = (name: string): number | undefined => (arg(name) === undefined ? undefined : Number(arg(name)));
const t0 = performance.now();
const p = await ensureShapes({ cacheDir: arg('--cache-dir'), seed: num('--seed'), numTrain: num('--train'), numVal: num('--val'), minSidePx: num('--min-side'), maxSidePx: num('--max-side') });
console.log(JSON.stringify({ ...p, sha256: hashShapesDir(p.root), seconds: +((performance.now() - t0) / 1000).toFixed(2) }, null, 1));
