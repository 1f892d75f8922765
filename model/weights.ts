// Weights CLI.
//   npx tsx model/weights.ts inspect FILE [--all] [--map]   keys, dtypes, shapes, parameter count
//   npx tsx model/weights.ts convert FILE OUT.safetensors [--map]
// FILE: a .pth (torch zip or legacy), a .safetensors, or a checkpoint sidecar NAME.json.
// --map renames torchvision / Caffe / VGG keys to our module names (model/weights/names.ts).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { detectFormat, loadCheckpoint, mapTorchvisionKeys, numelOf, parsePth, parseSafetensors, findStateDict, writeSafetensorsSync, WeightsFormatError, CorruptCheckpointError, type HostTensor } from './weights/index.ts';
import { PyDict, typeName } from './weights/pickle.ts';
import { materialize } from './weights/pth.ts';

const USAGE = 'usage: tsx model/weights.ts inspect FILE [--all] [--map] | convert FILE OUT.safetensors [--map]';

interface Loaded {
  format: string;
  tensors: Map<string, HostTensor>;
  notes: string[];
}

function load(path: string): Loaded {
  if (path.endsWith('.json')) {
    const c = loadCheckpoint(path);
    return { format: 'checkpoint', tensors: c.tensors, notes: [`iteration ${c.iteration}, epoch ${c.epoch ?? '-'}`, `sidecar keys: ${Object.keys(c.sidecar).join(', ')}`] };
  }
  const buf = new Uint8Array(readFileSync(path));
  const format = detectFormat(buf, path);
  if (format === 'safetensors') {
    const st = parseSafetensors(buf, path);
    return { format, tensors: st.tensors, notes: Object.keys(st.metadata).length ? [`metadata: ${JSON.stringify(st.metadata).slice(0, 300)}`] : [] };
  }
  const { root } = parsePth(buf, path);
  const entries = root instanceof PyDict ? [...root.map] : [];
  const nTensors = entries.filter(([, v]) => typeName(v) === 'tensor').length;
  const notes = !(root instanceof PyDict)
    ? [`top-level: ${typeName(root)}`]
    : nTensors === entries.length
      ? [`top-level: a state dict of ${nTensors} tensors`]
      : [`top-level: ${entries.slice(0, 12).map(([k, v]) => `${String(k)} (${typeName(v)})`).join(', ')}`];
  return { format, tensors: materialize(findStateDict(root, path), path, 2 * buf.byteLength + (64 << 20)), notes };
}

export function runWeightsCli(args: string[], log: (s: string) => void = console.log): number {
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const [cmd, file, out] = args.filter((a) => !a.startsWith('--'));
  if (!file || (cmd !== 'inspect' && cmd !== 'convert') || (cmd === 'convert' && !out)) {
    log(USAGE);
    return 2;
  }
  try {
    const l = load(file);
    let tensors = l.tensors;
    if (flags.has('--map')) {
      const m = mapTorchvisionKeys(tensors);
      tensors = m.mapped;
      l.notes.push(`mapped as ${m.source}: ${m.renamed.length} renamed, ${m.dropped.length} dropped${m.dropped.length ? ` (${m.dropped.slice(0, 4).join(', ')}${m.dropped.length > 4 ? ', ...' : ''})` : ''}`);
    }
    let params = 0;
    let bytes = 0;
    const byDtype = new Map<string, number>();
    for (const t of tensors.values()) {
      params += numelOf(t.shape);
      bytes += t.data.byteLength;
      byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + 1);
    }
    log(`${file}: ${l.format}, ${tensors.size} tensors, ${params.toLocaleString('en-US')} parameters, ${(bytes / 2 ** 20).toFixed(2)} MiB (${[...byDtype].map(([d, n]) => `${n} ${d}`).join(', ')})`);
    for (const n of l.notes) log(`  ${n}`);
    if (cmd === 'inspect') {
      const names = [...tensors.keys()];
      const shown = flags.has('--all') || names.length <= 60 ? names : [...names.slice(0, 40), ...names.slice(-10)];
      const w = Math.max(...shown.map((n) => n.length), 4);
      for (let i = 0; i < shown.length; i++) {
        if (shown.length < names.length && i === 40) log(`  ... ${names.length - 50} more (--all lists them)`);
        const t = tensors.get(shown[i])!;
        log(`  ${shown[i].padEnd(w)}  ${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]`);
      }
      return 0;
    }
    const written = writeSafetensorsSync(out, tensors, { source: basename(file), source_format: l.format, converted_by: 'model/weights.ts' });
    log(`wrote ${out}: ${tensors.size} tensors, ${written.bytes} bytes, sha256 ${written.sha256}`);
    return 0;
  } catch (e) {
    if (e instanceof WeightsFormatError || e instanceof CorruptCheckpointError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
      log(`error: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(runWeightsCli(process.argv.slice(2)));
