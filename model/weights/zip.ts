// Minimal reader for the zip archives torch.save writes (>= 1.6): stored (uncompressed) entries,
// optional ZIP64 records. Every length and offset is checked against the buffer before use, so a
// hostile archive can only produce a WeightsFormatError, never an out-of-range read or a large
// allocation (entries are views into the file buffer).
import { crc32 } from 'node:zlib';
import { WeightsFormatError } from './errors.ts';

export interface ZipEntry {
  name: string;
  /** Offset of the entry's data in the archive buffer. */
  dataOffset: number;
  size: number;
  crc32: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOC64 = 0x07064b50;
const SIG_CEN = 0x02014b50;
const SIG_LOC = 0x04034b50;

export function isZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

export function readZipDirectory(buf: Uint8Array, file: string): Map<string, ZipEntry> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = buf.byteLength;
  const fail = (off: number, what: string): never => {
    throw new WeightsFormatError(file, off, `zip: ${what}`);
  };
  const u16 = (o: number): number => (o + 2 <= n ? dv.getUint16(o, true) : fail(o, 'read past end of file'));
  const u32 = (o: number): number => (o + 4 <= n ? dv.getUint32(o, true) : fail(o, 'read past end of file'));
  const u64 = (o: number): number => {
    if (o + 8 > n) fail(o, 'read past end of file');
    const v = dv.getBigUint64(o, true);
    return v > BigInt(n) ? fail(o, `64-bit field ${v} exceeds the file size ${n}`) : Number(v);
  };

  // End of central directory: 22 bytes plus a comment of up to 65535 bytes, searched backwards.
  let eocd = -1;
  for (let o = n - 22; o >= Math.max(0, n - 22 - 0xffff); o--) {
    if (dv.getUint32(o, true) === SIG_EOCD) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) fail(n, 'no end-of-central-directory record (truncated file?)');
  let count = u16(eocd + 10);
  let cdSize = u32(eocd + 12);
  let cdOffset = u32(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || u32(loc) !== SIG_LOC64) fail(eocd, 'ZIP64 sizes without a ZIP64 locator');
    const rec = u64(loc + 8);
    if (u32(rec) !== SIG_EOCD64) fail(rec, 'bad ZIP64 end-of-central-directory signature');
    count = u64(rec + 32);
    cdSize = u64(rec + 40);
    cdOffset = u64(rec + 48);
  }
  if (cdOffset + cdSize > n) fail(eocd, `central directory [${cdOffset}, +${cdSize}) runs past the file end ${n}`);
  if (count * 46 > cdSize) fail(eocd, `${count} entries cannot fit in a ${cdSize}-byte central directory`);

  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder('utf-8', { fatal: false });
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || u32(p) !== SIG_CEN) fail(p, `central directory entry ${i} has a bad signature`);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    const crc = u32(p + 16);
    let csize = u32(p + 20);
    let usize = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let locOff = u32(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdOffset + cdSize) fail(p, `central directory entry ${i} runs past the directory`);
    const name = dec.decode(buf.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field (id 1): the 64-bit values for exactly the fields saturated at 0xffffffff.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = u16(e);
      const len = u16(e + 2);
      if (e + 4 + len > p + 46 + nameLen + extraLen) fail(e, `extra field of ${name} runs past its entry`);
      if (id === 1) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + len) fail(q, `ZIP64 extra field of ${name} too short`);
          const v = u64(q);
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (csize === 0xffffffff) csize = take();
        if (locOff === 0xffffffff) locOff = take();
      }
      e += 4 + len;
    }
    if (flags & 1) fail(p, `entry ${name} is encrypted`);
    if (method !== 0) fail(p, `entry ${name} uses compression method ${method}; torch.save writes stored entries (method 0) only`);
    if (csize !== usize) fail(p, `stored entry ${name} has compressed size ${csize} != size ${usize}`);
    if (u32(locOff) !== SIG_LOC) fail(locOff, `local header of ${name} has a bad signature`);
    const dataOffset = locOff + 30 + u16(locOff + 26) + u16(locOff + 28);
    if (dataOffset + usize > n) fail(locOff, `data of ${name} [${dataOffset}, +${usize}) runs past the file end ${n}`);
    if (entries.has(name)) fail(p, `duplicate entry ${name}`);
    entries.set(name, { name, dataOffset, size: usize, crc32: crc });
    p = end;
  }
  return entries;
}

/** The entry's bytes (a view into `buf`), CRC-checked. */
export function zipEntryData(buf: Uint8Array, e: ZipEntry, file: string): Uint8Array {
  const data = buf.subarray(e.dataOffset, e.dataOffset + e.size);
  const c = crc32(data) >>> 0;
  if (c !== e.crc32) throw new WeightsFormatError(file, e.dataOffset, `zip: entry ${e.name} fails its CRC-32 check (stored ${e.crc32.toString(16)}, computed ${c.toString(16)})`);
  return data;
}
