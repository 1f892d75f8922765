// Training checkpoints: NAME.safetensors (tensors: model, and optimizer buffers such as momentum
// under their own names) plus NAME.json (config, iteration, epoch, optimizer hyper-parameters,
// schedule, RNG state, loader position, metrics). Each file is written to a temp file, fsynced and
// renamed; the safetensors first, the JSON last, so the JSON is the commit marker: a kill at any
// moment leaves every earlier checkpoint intact and the new one either complete or invisible.
// The JSON records the tensors file's size, SHA-256 and a random checkpoint id that is also in the
// safetensors metadata, so a pair that does not belong together is detected, never loaded.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic, TMP_MARK } from './atomic.ts';
import { CorruptCheckpointError, ConfigMismatchError } from './errors.ts';
import { encodeSafetensors, parseSafetensors, MAX_HEADER_BYTES, type TensorIn } from './safetensors.ts';
import type { HostTensor } from './types.ts';

export const CHECKPOINT_FORMAT = 'mrcnn-webgpu-checkpoint';

export interface CheckpointSidecar {
  /** The model/training config the checkpoint was made with; compared on load (diffConfig). */
  config: unknown;
  iteration: number;
  epoch?: number;
  /** Hyper-parameters and step counts; the momentum buffers themselves are tensors in the safetensors file. */
  optimizer?: unknown;
  schedule?: unknown;
  rng?: unknown;
  loader?: unknown;
  metrics?: unknown;
  [key: string]: unknown;
}

interface SidecarFile {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  name: string;
  checkpointId: string;
  savedAt: string;
  tensors: { file: string; bytes: number; sha256: string; count: number };
  sidecar: CheckpointSidecar;
}

export interface CheckpointInfo {
  name: string;
  dir: string;
  jsonPath: string;
  tensorsPath: string;
  iteration: number;
  epoch: number | undefined;
}

export interface LoadedCheckpoint extends CheckpointInfo {
  tensors: Map<string, HostTensor>;
  sidecar: CheckpointSidecar;
  /** Differences between the checkpoint's config and opts.config (empty when none was given). */
  configDiff: string[];
  /** Newer checkpoints that were skipped because they did not load (directory loads only). */
  skipped: { name: string; error: string }[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export function saveCheckpoint(dir: string, name: string, tensors: Map<string, TensorIn>, sidecar: CheckpointSidecar, opts: { overwrite?: boolean } = {}): CheckpointInfo {
  if (!NAME_RE.test(name) || name.includes(TMP_MARK) || name.endsWith('.json') || name.endsWith('.safetensors')) throw new Error(`saveCheckpoint: name ${JSON.stringify(name)} must match ${NAME_RE} without an extension`);
  if (!Number.isSafeInteger(sidecar.iteration) || sidecar.iteration < 0) throw new Error(`saveCheckpoint ${name}: sidecar.iteration ${sidecar.iteration} is not a non-negative integer`);
  mkdirSync(dir, { recursive: true });
  const jsonPath = join(dir, `${name}.json`);
  const tensorsPath = join(dir, `${name}.safetensors`);
  // Overwriting a name cannot be atomic across two files: between the two renames the old JSON
  // meets the new tensors (detected by the id check). Distinct names per save never have that window.
  if (!opts.overwrite && (existsSync(jsonPath) || existsSync(tensorsPath))) throw new Error(`saveCheckpoint: ${jsonPath} exists (names carry the iteration; pass overwrite: true to replace it)`);
  let json: string;
  const checkpointId = randomBytes(12).toString('hex');
  const body = (t: { bytes: number; sha256: string }): SidecarFile => ({
    format: CHECKPOINT_FORMAT, version: 1, name, checkpointId, savedAt: new Date().toISOString(),
    tensors: { file: basename(tensorsPath), bytes: t.bytes, sha256: t.sha256, count: tensors.size }, sidecar,
  });
  try {
    json = JSON.stringify(body({ bytes: 0, sha256: '' }));
  } catch (e) {
    throw new Error(`saveCheckpoint ${name}: sidecar is not JSON-serialisable (${(e as Error).message})`);
  }
  const written = writeFileAtomic(tensorsPath, encodeSafetensors(tensors, { checkpoint_id: checkpointId, name, writer_pid: String(process.pid) }, tensorsPath));
  json = JSON.stringify(body(written), null, 1);
  writeFileAtomic(jsonPath, [Buffer.from(json, 'utf8')]);
  return { name, dir, jsonPath, tensorsPath, iteration: sidecar.iteration, epoch: sidecar.epoch };
}

function readSidecar(jsonPath: string): SidecarFile {
  let v: SidecarFile;
  try {
    v = JSON.parse(readFileSync(jsonPath, 'utf8')) as SidecarFile;
  } catch (e) {
    throw new CorruptCheckpointError(jsonPath, `sidecar is not readable JSON (${(e as Error).message.slice(0, 100)})`);
  }
  if (typeof v !== 'object' || v === null || v.format !== CHECKPOINT_FORMAT) throw new CorruptCheckpointError(jsonPath, `not a ${CHECKPOINT_FORMAT} sidecar`);
  if (v.version !== 1) throw new CorruptCheckpointError(jsonPath, `sidecar version ${String(v.version)} (this reader knows 1)`);
  if (!v.tensors || typeof v.tensors.file !== 'string' || v.tensors.file.includes('/') || typeof v.sidecar?.iteration !== 'number') throw new CorruptCheckpointError(jsonPath, 'sidecar lacks tensors.file or sidecar.iteration');
  return v;
}

const infoOf = (dir: string, jsonPath: string, s: SidecarFile): CheckpointInfo => ({
  name: s.name, dir, jsonPath, tensorsPath: join(dir, s.tensors.file), iteration: s.sidecar.iteration, epoch: s.sidecar.epoch,
});

/** Committed checkpoints (those with a sidecar), oldest iteration first. Unreadable sidecars are skipped. */
export function listCheckpoints(dir: string): CheckpointInfo[] {
  if (!existsSync(dir)) return [];
  const out: CheckpointInfo[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.json') || f.includes(TMP_MARK)) continue;
    try {
      out.push(infoOf(dir, join(dir, f), readSidecar(join(dir, f))));
    } catch {
      /* a foreign or damaged JSON file is not a checkpoint */
    }
  }
  return out.sort((a, b) => a.iteration - b.iteration || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The newest committed checkpoint whose tensors file has the recorded size, or null. */
export function latestCheckpoint(dir: string): CheckpointInfo | null {
  const all = listCheckpoints(dir);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      const s = readSidecar(all[i].jsonPath);
      if (statSync(all[i].tensorsPath).size === s.tensors.bytes) return all[i];
    } catch {
      /* fall back to the previous one */
    }
  }
  return null;
}

function loadOne(jsonPath: string, opts: LoadCheckpointOptions): LoadedCheckpoint {
  const s = readSidecar(jsonPath);
  const dir = dirname(jsonPath);
  const info = infoOf(dir, jsonPath, s);
  let buf: Buffer;
  try {
    buf = readFileSync(info.tensorsPath);
  } catch (e) {
    throw new CorruptCheckpointError(info.tensorsPath, `tensors file unreadable (${(e as Error).message.slice(0, 100)})`);
  }
  if (buf.byteLength !== s.tensors.bytes) throw new CorruptCheckpointError(info.tensorsPath, `${buf.byteLength} bytes, the sidecar ${basename(jsonPath)} records ${s.tensors.bytes}`);
  const sha = createHash('sha256').update(buf).digest('hex');
  if (sha !== s.tensors.sha256) throw new CorruptCheckpointError(info.tensorsPath, `SHA-256 ${sha.slice(0, 16)}... does not match the sidecar's ${s.tensors.sha256.slice(0, 16)}...`);
  let parsed;
  try {
    parsed = parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), info.tensorsPath);
  } catch (e) {
    throw new CorruptCheckpointError(info.tensorsPath, (e as Error).message);
  }
  if (parsed.metadata.checkpoint_id !== s.checkpointId) throw new CorruptCheckpointError(info.tensorsPath, `checkpoint id ${parsed.metadata.checkpoint_id} != ${s.checkpointId} in ${basename(jsonPath)} (a torn overwrite)`);
  const configDiff = opts.config === undefined ? [] : diffConfig(s.sidecar.config, opts.config, ['checkpoint', 'model']);
  if (configDiff.length && !opts.allowConfigDiff) throw new ConfigMismatchError(jsonPath, configDiff);
  return { ...info, tensors: parsed.tensors, sidecar: s.sidecar, configDiff, skipped: [] };
}

export interface LoadCheckpointOptions {
  /** The model's config: a checkpoint whose config differs is a ConfigMismatchError listing each difference. */
  config?: unknown;
  allowConfigDiff?: boolean;
}

/**
 * Loads NAME.json / NAME.safetensors / NAME, or, given a directory, the newest checkpoint that
 * loads (newer ones that do not are listed in `skipped`).
 */
export function loadCheckpoint(pathOrDir: string, opts: LoadCheckpointOptions = {}): LoadedCheckpoint {
  if (existsSync(pathOrDir) && statSync(pathOrDir).isDirectory()) {
    const all = listCheckpoints(pathOrDir);
    if (!all.length) throw new CorruptCheckpointError(pathOrDir, 'no committed checkpoint (NAME.json + NAME.safetensors) in this directory');
    const skipped: LoadedCheckpoint['skipped'] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      try {
        return { ...loadOne(all[i].jsonPath, opts), skipped };
      } catch (e) {
        if (e instanceof ConfigMismatchError || i === 0) throw e;
        skipped.push({ name: all[i].name, error: (e as Error).message });
      }
    }
  }
  const base = pathOrDir.replace(/\.(json|safetensors)$/, '');
  return loadOne(`${base}.json`, opts);
}

function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writerPidOf(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) < 8) return -1;
    const n = Number(head.readBigUInt64LE(0));
    if (n > MAX_HEADER_BYTES) return -1;
    const h = Buffer.alloc(n);
    readSync(fd, h, 0, n, 8);
    return Number((JSON.parse(h.toString('utf8')) as { __metadata__?: { writer_pid?: string } }).__metadata__?.writer_pid ?? -1);
  } catch {
    return -1;
  } finally {
    closeSync(fd);
  }
}

/**
 * Keeps the newest `keepLast` committed checkpoints and deletes the rest (sidecar first, so a
 * kill mid-prune never leaves a sidecar without its tensors). Also removes what killed writers
 * left behind: temp files and uncommitted .safetensors whose writer process is gone.
 */
export function pruneCheckpoints(dir: string, keepLast: number): { removed: string[] } {
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) throw new Error(`pruneCheckpoints: keepLast ${keepLast} must be >= 1`);
  const removed: string[] = [];
  const rm = (p: string): void => {
    try {
      unlinkSync(p);
      removed.push(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  };
  const all = listCheckpoints(dir);
  for (const c of all.slice(0, Math.max(0, all.length - keepLast))) {
    rm(c.jsonPath);
    rm(c.tensorsPath);
  }
  const committed = new Set(listCheckpoints(dir).map((c) => basename(c.tensorsPath)));
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    const p = join(dir, f);
    const tmp = f.lastIndexOf(TMP_MARK);
    if (tmp >= 0 && (f.endsWith('.json' + f.slice(tmp)) || f.endsWith('.safetensors' + f.slice(tmp)))) {
      if (!pidAlive(Number(f.slice(tmp + TMP_MARK.length).split('-')[0]))) rm(p);
    } else if (f.endsWith('.safetensors') && !committed.has(f) && existsSync(p) && !existsSync(join(dir, f.replace(/\.safetensors$/, '.json')))) {
      const pid = writerPidOf(p);
      if (pid > 0 && !pidAlive(pid)) rm(p);
    }
  }
  return { removed };
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** Every place two JSON-like configs differ, as `path: a-label X != b-label Y` lines (empty if equal). */
export function diffConfig(a: unknown, b: unknown, labels: [string, string] = ['a', 'b'], path = 'config'): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = `${path}.${k}`;
      if (!(k in b)) out.push(`${p}: only in ${labels[0]} (${show(a[k])})`);
      else if (!(k in a)) out.push(`${p}: only in ${labels[1]} (${show(b[k])})`);
      else out.push(...diffConfig(a[k], b[k], labels, p));
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return [`${path}: ${labels[0]} ${show(a)} (length ${a.length}) != ${labels[1]} ${show(b)} (length ${b.length})`];
    return a.flatMap((x, i) => diffConfig(x, b[i], labels, `${path}[${i}]`));
  }
  if (Object.is(a, b) || (a === 0 && b === 0)) return [];
  return [`${path}: ${labels[0]} ${show(a)} != ${labels[1]} ${show(b)}`];
}

