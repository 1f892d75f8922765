// TensorBoard event files, written and read without a dependency.
// Framing (tensorflow/core/lib/io/record_writer.cc): per record
//   uint64 LE length | uint32 LE masked CRC32C(length bytes) | data | uint32 LE masked CRC32C(data)
// with mask(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32).
// Each record is one tensorflow.Event protobuf (tensorflow/core/util/event.proto), hand-encoded:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// The first record carries file_version "brain.Event:2", as TensorFlow's EventsWriter writes it.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// ---- CRC32C (Castagnoli, reflected polynomial 0x82f63b78) ----

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: a CRC of data that itself contains CRCs would be weak otherwise. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: header (length + its masked CRC), data, masked CRC of the data. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// ---- protobuf encoding (only what Event needs) ----

function varint(v: bigint): number[] {
  let u = BigInt.asUintN(64, v); // negative int64 -> 10-byte two's complement, as protobuf does
  const out: number[] = [];
  do {
    let b = Number(u & 0x7fn);
    u >>= 7n;
    if (u !== 0n) b |= 0x80;
    out.push(b);
  } while (u !== 0n);
  return out;
}

function lengthDelimited(fieldNumber: number, payload: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint(BigInt((fieldNumber << 3) | 2)), ...varint(BigInt(payload.length)), ...payload]);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export interface ScalarValue { tag: string; value: number }

export interface TfEvent {
  wallTimeSec: number;
  step: number;
  fileVersion?: string;
  /** simple_value entries of the summary, as float32. */
  scalars: ScalarValue[];
}

/** Event protobuf bytes. Fields at their default (step 0, no summary) are omitted, as protobuf does. */
export function encodeEvent(e: TfEvent): Uint8Array {
  const parts: Uint8Array[] = [];
  const wall = new Uint8Array(9);
  wall[0] = (1 << 3) | 1; // field 1, fixed64
  new DataView(wall.buffer).setFloat64(1, e.wallTimeSec, true);
  parts.push(wall);
  if (e.step !== 0) parts.push(Uint8Array.from([(2 << 3) | 0, ...varint(BigInt(e.step))]));
  if (e.fileVersion !== undefined) parts.push(lengthDelimited(3, new TextEncoder().encode(e.fileVersion)));
  if (e.scalars.length > 0) {
    const values = e.scalars.map((s) => {
      const f = new Uint8Array(5);
      f[0] = (2 << 3) | 5; // field 2, fixed32
      new DataView(f.buffer).setFloat32(1, s.value, true);
      return lengthDelimited(1, concatBytes([lengthDelimited(1, new TextEncoder().encode(s.tag)), f]));
    });
    parts.push(lengthDelimited(5, concatBytes(values)));
  }
  return concatBytes(parts);
}

// ---- writer ----

export const FILE_VERSION = 'brain.Event:2';

/**
 * Appends scalar events to `<dir>/events.out.tfevents.<unix seconds>.<hostname>` (a `.N` suffix
 * when a writer already made that name this second). Records are buffered; flush() writes and
 * fsyncs them, so a run killed after a flush leaves only whole records behind.
 */
export class EventWriter {
  readonly path: string;
  private fd: number | null;
  private pending: Buffer[] = [];

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    const nowSec = Date.now() / 1000;
    const base = join(dir, `events.out.tfevents.${Math.floor(nowSec)}.${hostname()}`);
    let fd: number | null = null;
    let path = base;
    for (let n = 0; fd === null; n++) {
      path = n === 0 ? base : `${base}.${n}`;
      try { fd = openSync(path, 'wx'); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 1000) throw new Error(`tfevents: cannot create ${path}: ${(e as Error).message}`);
      }
    }
    this.fd = fd;
    this.path = path;
    this.pending.push(frameRecord(encodeEvent({ wallTimeSec: nowSec, step: 0, fileVersion: FILE_VERSION, scalars: [] })));
    this.flush();
  }

  scalar(tag: string, value: number, step: number, wallTimeSec = Date.now() / 1000): void {
    if (this.fd === null) throw new Error(`tfevents: scalar('${tag}') after close() of ${this.path}`);
    if (typeof tag !== 'string' || tag.length === 0) throw new Error(`tfevents: scalar tag must be a non-empty string, got ${JSON.stringify(tag)}`);
    if (!Number.isSafeInteger(step)) throw new Error(`tfevents: scalar('${tag}') step ${step} is not an integer in ±2^53`);
    this.pending.push(frameRecord(encodeEvent({ wallTimeSec, step, scalars: [{ tag, value }] })));
  }

  flush(): void {
    if (this.fd === null) return;
    if (this.pending.length > 0) {
      const buf = Buffer.concat(this.pending);
      this.pending = [];
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    }
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }
}

// ---- reader ----

class ProtoReader {
  pos = 0;
  constructor(readonly b: Uint8Array, readonly what: string) {}
  done(): boolean { return this.pos >= this.b.length; }
  varint(): bigint {
    let r = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.b.length) throw new Error(`${this.what}: truncated varint`);
      const byte = this.b[this.pos++];
      r |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return r;
      if (shift > 63n) throw new Error(`${this.what}: varint longer than 10 bytes`);
    }
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.b.length) throw new Error(`${this.what}: field of ${n} bytes runs past the end (${this.b.length - this.pos} left)`);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** Reads one field; unknown ones are skipped by wire type. */
  field(): { num: number; wire: number; varint?: bigint; bytes?: Uint8Array } {
    const key = this.varint();
    const num = Number(key >> 3n), wire = Number(key & 7n);
    switch (wire) {
      case 0: return { num, wire, varint: this.varint() };
      case 1: return { num, wire, bytes: this.bytes(8) };
      case 2: return { num, wire, bytes: this.bytes(Number(this.varint())) };
      case 5: return { num, wire, bytes: this.bytes(4) };
      default: throw new Error(`${this.what}: field ${num} has unsupported wire type ${wire}`);
    }
  }
}

const f64 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
const f32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);

export function decodeEvent(data: Uint8Array, what = 'event'): TfEvent {
  const r = new ProtoReader(data, what);
  const e: TfEvent = { wallTimeSec: 0, step: 0, scalars: [] };
  while (!r.done()) {
    const f = r.field();
    if (f.num === 1 && f.wire === 1) e.wallTimeSec = f64(f.bytes!);
    else if (f.num === 2 && f.wire === 0) e.step = Number(BigInt.asIntN(64, f.varint!));
    else if (f.num === 3 && f.wire === 2) e.fileVersion = new TextDecoder().decode(f.bytes!);
    else if (f.num === 5 && f.wire === 2) {
      const s = new ProtoReader(f.bytes!, `${what}: summary`);
      while (!s.done()) {
        const v = s.field();
        if (v.num !== 1 || v.wire !== 2) continue;
        const vr = new ProtoReader(v.bytes!, `${what}: summary value`);
        let tag = '';
        let value: number | undefined;
        while (!vr.done()) {
          const g = vr.field();
          if (g.num === 1 && g.wire === 2) tag = new TextDecoder().decode(g.bytes!);
          else if (g.num === 2 && g.wire === 5) value = f32(g.bytes!);
        }
        if (value !== undefined) e.scalars.push({ tag, value }); // images/histograms: not decoded
      }
    }
  }
  return e;
}

/** Splits a TFRecord file into record payloads, checking both CRCs of every record. */
export function readRecords(path: string): Uint8Array[] {
  const buf = readFileSync(path);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < buf.length) {
    const where = `tfevents: ${path}: record ${out.length} at byte ${off}`;
    if (off + 12 > buf.length) throw new Error(`${where}: truncated header (${buf.length - off} of 12 bytes)`);
    const lenBig = buf.readBigUInt64LE(off);
    const lenCrc = buf.readUInt32LE(off + 8);
    const wantLenCrc = maskedCrc32c(buf.subarray(off, off + 8));
    if (lenCrc !== wantLenCrc) throw new Error(`${where}: length CRC mismatch (stored 0x${lenCrc.toString(16)}, computed 0x${wantLenCrc.toString(16)})`);
    if (lenBig > BigInt(buf.length - off - 16)) throw new Error(`${where}: length ${lenBig} runs past the end of the ${buf.length}-byte file (truncated write?)`);
    const len = Number(lenBig);
    const data = buf.subarray(off + 12, off + 12 + len);
    const dataCrc = buf.readUInt32LE(off + 12 + len);
    const wantDataCrc = maskedCrc32c(data);
    if (dataCrc !== wantDataCrc) throw new Error(`${where}: data CRC mismatch (stored 0x${dataCrc.toString(16)}, computed 0x${wantDataCrc.toString(16)})`);
    out.push(data);
    off += 16 + len;
  }
  return out;
}

/** Every event of a file, in order; throws naming the record on a CRC mismatch or truncation. */
export function readEvents(path: string): TfEvent[] {
  return readRecords(path).map((d, i) => decodeEvent(d, `tfevents: ${path}: record ${i}`));
}
