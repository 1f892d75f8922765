// Entry points: read any supported weights file, and load named tensors into a module.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { WeightsFormatError, StateDictMismatchError } from './errors.ts';
import { isZip } from './zip.ts';
import { isLegacyPth, readPthBuffer, type PthOptions } from './pth.ts';
import { isSafetensors, parseSafetensors } from './safetensors.ts';
import { toFloat32, type HostTensor } from './types.ts';

export type WeightsFileFormat = 'pth-zip' | 'pth-legacy' | 'safetensors';

export function detectFormat(buf: Uint8Array, file: string): WeightsFileFormat {
  if (isZip(buf)) return 'pth-zip';
  if (isLegacyPth(buf)) return 'pth-legacy';
  if (isSafetensors(buf)) return 'safetensors';
  throw new WeightsFormatError(file, 0, `not a .pth (zip or legacy pickle) or safetensors file (first bytes ${Buffer.from(buf.subarray(0, 8)).toString('hex')})`);
}

/** Parses a file already in memory; throws only WeightsFormatError for bad input. */
export function readWeightsBuffer(buf: Uint8Array, file: string, opts: PthOptions = {}): Map<string, HostTensor> {
  const fmt = detectFormat(buf, file);
  return fmt === 'safetensors' ? parseSafetensors(buf, file).tensors : readPthBuffer(buf, file, opts);
}

/** Tensors of a .pth (zip or legacy) or safetensors file, told apart by their first bytes. */
export async function readWeights(path: string, opts: PthOptions = {}): Promise<Map<string, HostTensor>> {
  return readWeightsBuffer(new Uint8Array(await readFile(path)), path, opts);
}
export function readWeightsSync(path: string, opts: PthOptions = {}): Map<string, HostTensor> {
  return readWeightsBuffer(new Uint8Array(readFileSync(path)), path, opts);
}

/** What engine/nn.ts Module offers (kept structural so this file does not import the engine). */
export interface LoadableModule {
  stateDict(): Map<string, { shape: readonly number[]; dtype?: string }>;
  loadStateDict(entries: Map<string, { shape: number[]; data: ArrayLike<number> }>, strict?: boolean): void;
}

export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; fileShape: number[]; modelShape: number[] }[];
}

export function compareStateDict(module: LoadableModule, tensors: Map<string, { shape: number[] }>): LoadReport {
  const own = module.stateDict();
  const missing = [...own.keys()].filter((k) => !tensors.has(k));
  const unexpected = [...tensors.keys()].filter((k) => !own.has(k));
  const mismatched: LoadReport['mismatched'] = [];
  for (const [k, t] of tensors) {
    const m = own.get(k);
    if (m && m.shape.join() !== t.shape.join()) mismatched.push({ key: k, fileShape: t.shape.slice(), modelShape: [...m.shape] });
  }
  return { missing, unexpected, mismatched };
}

/** Float tensors go in as float32; integer ones as exact float64 values for the engine to convert. */
function hostValues(t: HostTensor): ArrayLike<number> {
  switch (t.dtype) {
    case 'f32':
    case 'f16':
    case 'bf16':
    case 'f64':
      return toFloat32(t);
    case 'i64':
      return Float64Array.from(t.data as BigInt64Array, (v) => Number(v));
    case 'i32':
    case 'u8':
    case 'bool':
      return t.data as Int32Array | Uint8Array;
  }
}

/**
 * Copies every tensor whose key and shape match the module's state dict. strict (default true):
 * any missing or unexpected key or shape mismatch is a StateDictMismatchError naming every key and
 * both shapes, and nothing is loaded. Not strict: matching tensors load, the report lists the rest.
 */
export function loadIntoModule(module: LoadableModule, tensors: Map<string, HostTensor>, opts: { strict?: boolean } = {}): LoadReport {
  const strict = opts.strict ?? true;
  const report = compareStateDict(module, tensors);
  if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) throw new StateDictMismatchError(report);
  const bad = new Set(report.mismatched.map((m) => m.key));
  const entries = new Map<string, { shape: number[]; data: ArrayLike<number> }>();
  for (const [k, t] of tensors) if (!bad.has(k) && !report.unexpected.includes(k)) entries.set(k, { shape: t.shape, data: hostValues(t) });
  module.loadStateDict(entries, false);
  return report;
}
