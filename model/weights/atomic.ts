// Atomic file replacement: write a temp file beside the target, fsync it, rename it over the
// target, fsync the directory. A kill at any moment leaves either the old file or the new one.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** Temp files carry the writer's pid so cleanup can tell a dead writer's leftovers from a live one's. */
export const TMP_MARK = '.tmp-';
export function tempPathFor(path: string): string {
  return join(dirname(path), `${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface WrittenFile {
  bytes: number;
  sha256: string;
}

export function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>): WrittenFile {
  const tmp = tempPathFor(path);
  const hash = createHash('sha256');
  let bytes = 0;
  const fd = openSync(tmp, 'wx');
  try {
    for (const c of chunks) {
      for (let o = 0; o < c.byteLength; ) o += writeSync(fd, c, o, c.byteLength - o);
      hash.update(c);
      bytes += c.byteLength;
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* the error below is the one to report */
    }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
  return { bytes, sha256: hash.digest('hex') };
}
