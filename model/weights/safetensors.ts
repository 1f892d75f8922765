// safetensors reader and writer (https://github.com/huggingface/safetensors): 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
// then the tensors' bytes. The reader checks every offset against the file, as the reference
// implementation does: the tensors must tile the data section exactly, no gaps, no overlaps.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { WeightsFormatError } from './errors.ts';
import { writeFileAtomic, type WrittenFile } from './atomic.ts';
import { bytesPerElement, dataMatchesDType, numelOf, typedView, type HostData, type HostTensor, type WeightsDType } from './types.ts';

const TO_ST: Record<WeightsDType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64', i64: 'I64', i32: 'I32', u8: 'U8', bool: 'BOOL' };
const FROM_ST: Record<string, WeightsDType> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as WeightsDType]));
const KNOWN_UNSUPPORTED = ['I8', 'I16', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'C64', 'F4', 'F6_E2M3', 'F6_E3M2', 'F8_E8M0', 'E8M0'];
/** The reference implementation's header limit. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

export function isSafetensors(buf: Uint8Array): boolean {
  return buf.length >= 9 && buf[8] === 0x7b && buf[5] === 0 && buf[6] === 0 && buf[7] === 0;
}

export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsFile {
  const fail = (off: number, what: string): never => {
    throw new WeightsFormatError(file, off, `safetensors: ${what}`);
  };
  if (buf.byteLength < 8) fail(0, `file of ${buf.byteLength} bytes has no header length`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = dv.getBigUint64(0, true);
  if (hlen > BigInt(Math.min(MAX_HEADER_BYTES, buf.byteLength - 8))) fail(0, `header length ${hlen} exceeds the file (${buf.byteLength} bytes) or the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(hlen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    fail(8, `header is not UTF-8 JSON (${(e as Error).message.slice(0, 80)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(8, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; dtype: WeightsDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(8, '__metadata__ is not an object');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(8, `__metadata__.${k} is not a string`);
        metadata[k] = s as string;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(8, `${name}: entry is not an object`);
    const dt = typeof e.dtype === 'string' ? FROM_ST[e.dtype] : undefined;
    if (!dt) fail(8, `${name}: dtype ${JSON.stringify(e.dtype)} ${KNOWN_UNSUPPORTED.includes(String(e.dtype)) ? 'is not supported' : 'is unknown'}; supported: ${Object.keys(FROM_ST).join(', ')}`);
    const okInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(e.shape) || !e.shape.every(okInt)) fail(8, `${name}: shape ${JSON.stringify(e.shape)?.slice(0, 80)} is not a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(okInt) || offs[1] < offs[0]) fail(8, `${name}: data_offsets ${JSON.stringify(offs)?.slice(0, 80)} is not [begin, end]`);
    const shape = e.shape as number[];
    const [begin, end] = offs as number[];
    const numel = numelOf(shape);
    if (!Number.isSafeInteger(numel * bytesPerElement(dt!)) || end - begin !== numel * bytesPerElement(dt!)) fail(8, `${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${shape}] ${e.dtype} needs ${numel * bytesPerElement(dt!)}`);
    if (end > dataLen) fail(dataStart + begin, `${name}: data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes)`);
    spans.push({ name, dtype: dt!, shape, begin, end });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of spans) {
    if (s.begin !== at) fail(dataStart + s.begin, `${s.name}: data starts at ${s.begin}, expected ${at} (${s.begin < at ? 'overlaps the previous tensor' : 'gap'})`);
    at = s.end;
  }
  if (at !== dataLen) fail(dataStart + at, `tensors end at ${at} but the data section has ${dataLen} bytes`);
  const tensors = new Map<string, HostTensor>();
  for (const s of spans) {
    const bytes = new Uint8Array(s.end - s.begin);
    bytes.set(buf.subarray(dataStart + s.begin, dataStart + s.end));
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: typedView(s.dtype, bytes.buffer, 0, (s.end - s.begin) / bytesPerElement(s.dtype)) });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(new Uint8Array(await readFile(path)), path);
}
export function readSafetensorsSync(path: string): SafetensorsFile {
  return parseSafetensors(new Uint8Array(readFileSync(path)), path);
}

export type TensorIn = { dtype: WeightsDType; shape: number[]; data: HostData };

/** The file as chunks (header, then each tensor's bytes; tensors in name order). */
export function encodeSafetensors(tensors: Map<string, TensorIn>, metadata?: Record<string, string>, file = 'safetensors'): Uint8Array[] {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new WeightsFormatError(file, -1, `safetensors metadata ${k} is a ${typeof v}, not a string`);
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === '__metadata__') throw new WeightsFormatError(file, -1, 'a tensor may not be named __metadata__');
    if (!(t.dtype in TO_ST)) throw new WeightsFormatError(file, -1, `${name}: dtype ${t.dtype} has no safetensors code`);
    if (!dataMatchesDType(t.dtype, t.data)) throw new WeightsFormatError(file, -1, `${name}: ${t.data.constructor.name} does not hold ${t.dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || numelOf(t.shape) !== t.data.length) throw new WeightsFormatError(file, -1, `${name}: shape [${t.shape}] needs ${numelOf(t.shape)} elements, data has ${t.data.length}`);
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [off, off + b.byteLength] };
    chunks.push(b);
    off += b.byteLength;
  }
  let json = JSON.stringify(header);
  // pad with spaces so the data section starts 8-byte aligned (as the reference writer does)
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const lenBytes = new Uint8Array(8);
  new DataView(lenBytes.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  return [lenBytes, hb, ...chunks];
}

/** Writes atomically (temp file, fsync, rename). */
export function writeSafetensorsSync(path: string, tensors: Map<string, TensorIn>, metadata?: Record<string, string>): WrittenFile {
  return writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}
export async function writeSafetensors(path: string, tensors: Map<string, TensorIn>, metadata?: Record<string, string>): Promise<WrittenFile> {
  return writeSafetensorsSync(path, tensors, metadata);
}
