// Fuzzing the weights readers: seeded mutations of valid .pth (zip, legacy) and safetensors files
// must load or fail with WeightsFormatError, in bounded time and memory. CI runs WEIGHTS_FUZZ_N
// (default 500) cases; the big run (model/README-weights.md) sets it to tens of thousands.
// A failing case prints its index; WEIGHTS_FUZZ_ONLY=<index> replays just that case.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { readWeightsBuffer, WeightsFormatError, numelOf, encodeSafetensors, type TensorIn } from '../model/weights/index.ts';
import { readZipDirectory } from '../model/weights/zip.ts';
import { mulberry32 } from '../data/prng.ts';

const FIX = 'test/fixtures/weights';
const N = Number(process.env.WEIGHTS_FUZZ_N ?? 500);
const SEED = Number(process.env.WEIGHTS_FUZZ_SEED ?? 1);
const ONLY = process.env.WEIGHTS_FUZZ_ONLY === undefined ? -1 : Number(process.env.WEIGHTS_FUZZ_ONLY);

const rng = mulberry32;

/** A stored-entry zip with correct CRCs, so mutations inside entries reach the pickle reader. */
function makeZip(entries: [string, Uint8Array][]): Uint8Array {
  const locals: Buffer[] = [];
  const cen: Buffer[] = [];
  let off = 0;
  for (const [name, data] of entries) {
    const nb = Buffer.from(name);
    const crc = crc32(data) >>> 0;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(nb.length, 26);
    locals.push(lh, nb, Buffer.from(data));
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(nb.length, 28);
    ch.writeUInt32LE(off, 42);
    cen.push(ch, nb);
    off += 30 + nb.length + data.length;
  }
  const cd = Buffer.concat(cen);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(off, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, eocd]));
}
function unzip(buf: Uint8Array): [string, Uint8Array][] {
  return [...readZipDirectory(buf, 'seed').values()].map((e) => [e.name, buf.slice(e.dataOffset, e.dataOffset + e.size)]);
}

// Recursive and deeply nested pickles, wrapped as a legacy stream and as a zip data.pkl.
const legacyHead = (() => {
  const b = readFileSync(`${FIX}/basic_legacy.pth`);
  let stops = 0;
  let i = 0;
  for (; stops < 3; i++) if (b[i] === 0x2e && b[i + 1] === 0x80) stops++;
  return b.subarray(0, i);
})();
const P = (...parts: (string | number[] | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p as number[]))));
const key = (k: string): Buffer => P('X', [k.length, 0, 0, 0], k);
const DEEP = Number(process.env.WEIGHTS_FUZZ_DEEP ?? 20_000);
const hostile: [string, Buffer][] = [
  ['self-list', P([0x80, 2], ']q', [0], 'h', [0], 'a.')],
  ['self-dict', P([0x80, 2], '}q', [0], key('a'), 'h', [0], 's.')],
  ['self-dict-under-model', P([0x80, 2], '}q', [0], key('model'), 'h', [0], 's.')],
  ['deep-lists', P([0x80, 2], ']'.repeat(DEEP), 'a'.repeat(DEEP - 1), '.')],
  ['deep-dicts', P([0x80, 2], '}', Buffer.concat(Array.from({ length: DEEP }, () => P(key('k'), '}'))), 's'.repeat(DEEP), '.')],
  ['shared-dict-doubling', P([0x80, 2], '}q', [0], ...Array.from({ length: 40 }, (_, i) => P('}', key('a'), 'h', [i], key('b'), 'h', [i], 'sq', [i + 1])), '.')],
  ['dup-bomb', P([0x80, 2], '}', '2'.repeat(DEEP), '0'.repeat(DEEP), '.')],
  ['mark-bomb', P([0x80, 2], '('.repeat(DEEP), ')')],
  ['huge-binunicode', P([0x80, 2], 'X', [0xff, 0xff, 0xff, 0x7f], 'abc.')],
  ['huge-binunicode8', P([0x80, 4], [0x8d], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 'abc.')],
  ['huge-long4', P([0x80, 2], [0x8b], [0xff, 0xff, 0xff, 0x7f], '.')],
  ['huge-memo-index', P([0x80, 2], ']r', [0xff, 0xff, 0xff, 0xff], 'j', [0xff, 0xff, 0xff, 0xfe], '.')],
];
const hostileFiles: [string, Uint8Array][] = hostile.flatMap(([n, pkl]) => [
  [`${n} (legacy)`, new Uint8Array(Buffer.concat([legacyHead, pkl, P([0x80, 2], '].')]))],
  [`${n} (zip)`, makeZip([['archive/data.pkl', pkl], ['archive/version', Buffer.from('3\n')]])],
] as [string, Uint8Array][]);

const seeds: [string, Uint8Array][] = ['basic.pth', 'basic_legacy.pth', 'basic_p4.pth', 'basic_p4_legacy.pth', 'basic_bigendian.pth', 'nested.pth', 'nested_legacy.pth', 'basic.safetensors', 'bomb_expand.pth', 'bomb_expand_legacy.pth'].map((f) => [f, new Uint8Array(readFileSync(`${FIX}/${f}`))]);
seeds.push(['written.safetensors', new Uint8Array(Buffer.concat(encodeSafetensors(new Map<string, TensorIn>([['a', { dtype: 'f32', shape: [3, 2], data: new Float32Array(6).fill(1.5) }], ['b', { dtype: 'i64', shape: [2], data: new BigInt64Array([1n, -2n]) }], ['c', { dtype: 'bf16', shape: [1, 1], data: new Uint16Array([0x3f80]) }]]), { k: 'v' })))]);

const HUGE = [0xffffffff, 0x7fffffff, 0x80000000, 0xfffffff0, 0x10000000];
type Mut = (b: Uint8Array, r: () => number) => Uint8Array;
const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)];
const bitFlip: Mut = (b, r) => {
  const o = b.slice();
  for (let k = 1 + Math.floor(r() * 8); k > 0 && o.length; k--) o[Math.floor(r() * o.length)] ^= 1 << Math.floor(r() * 8);
  return o;
};
const byteSet: Mut = (b, r) => {
  const o = b.slice();
  for (let k = 1 + Math.floor(r() * 4); k > 0 && o.length; k--) o[Math.floor(r() * o.length)] = pick([0, 0xff, 0x7f, 0x80, 0x2e, 0x28, 0x52, 0x62], r);
  return o;
};
const truncate: Mut = (b, r) => b.slice(0, Math.floor(r() * b.length));
const hugeField: Mut = (b, r) => {
  const o = b.slice();
  if (o.length < 8) return o;
  const dv = new DataView(o.buffer);
  const at = r() < 0.2 ? 0 : Math.floor(r() * (o.length - 8));
  if (r() < 0.5) dv.setUint32(at, pick(HUGE, r), true);
  else dv.setBigUint64(at, pick([2n ** 63n, 2n ** 64n - 1n, 2n ** 40n, BigInt(o.length) * 4n], r), true);
  return o;
};
// safetensors: rewrite the header with out-of-range / overlapping offsets, bad shapes and dtypes
const stHeader: Mut = (b, r) => {
  let n: number;
  let h: Record<string, { data_offsets: unknown[]; shape: unknown[]; dtype: unknown }>;
  try {
    n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    h = JSON.parse(Buffer.from(b.subarray(8, 8 + n)).toString());
  } catch {
    return bitFlip(b, r); // an earlier mutation already broke the header
  }
  const names = Object.keys(h).filter((k) => k !== '__metadata__' && typeof h[k] === 'object' && h[k] !== null && Array.isArray(h[k].data_offsets));
  if (!names.length) return bitFlip(b, r);
  const t = h[pick(names, r)];
  switch (Math.floor(r() * 7)) {
    case 0: t.data_offsets = [pick([2 ** 40, 2 ** 53, b.length, -8, 1e300], r), pick([2 ** 40 + 4, 2 ** 53 + 8, b.length + 4, 0], r)]; break;
    case 1: t.data_offsets = [...h[pick(names, r)].data_offsets]; break;
    case 2: t.shape = [pick([2 ** 31, 2 ** 52, -1, 0.5, 1e308], r), 1]; break;
    case 3: t.dtype = pick(['F8_E4M3', 'I8', 'U64', 'f32', null, 7], r); break;
    case 4: (h as Record<string, unknown>).__metadata__ = pick([{ a: 1 }, [1], 'x', { a: { b: 'c' } }], r); break;
    case 5: (h as Record<string, unknown>)[pick(names, r)] = pick([null, 1, [], { dtype: 'F32' }], r); break;
    default: t.data_offsets = [(t.data_offsets as number[])[1], (t.data_offsets as number[])[0]];
  }
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return new Uint8Array(Buffer.concat([len, hb, b.subarray(8 + n)]));
};
// zip: mutate an entry's bytes (mostly data.pkl) and re-zip with valid CRCs
const zipInner: Mut = (b, r) => {
  let es: [string, Uint8Array][];
  try {
    es = unzip(b);
  } catch {
    return bitFlip(b, r); // an earlier mutation already broke the archive
  }
  if (!es.length) return bitFlip(b, r);
  const pkl = es.findIndex(([n]) => n.endsWith('data.pkl'));
  const i = r() < 0.7 && pkl >= 0 ? pkl : Math.floor(r() * es.length);
  es[i] = [es[i][0], pick([bitFlip, byteSet, truncate, hugeField], r)(es[i][1], r)];
  return makeZip(es);
};

function mutate(b: Uint8Array, name: string, r: () => number): { data: Uint8Array; how: string } {
  const muts: [string, Mut][] = [['bitflip', bitFlip], ['byteset', byteSet], ['truncate', truncate], ['hugefield', hugeField]];
  if (name.endsWith('.safetensors')) muts.push(['st-header', stHeader], ['st-header', stHeader]);
  if (name.endsWith('.pth') && !name.includes('legacy')) muts.push(['zip-inner', zipInner], ['zip-inner', zipInner], ['zip-inner', zipInner]);
  let data = b;
  const how: string[] = [];
  for (let k = 1 + Math.floor(r() * 2); k > 0; k--) {
    const [n, m] = pick(muts, r);
    data = m(data, r);
    how.push(n);
  }
  return { data, how: how.join('+') };
}

test(`fuzz: ${N} mutated .pth / safetensors files (seed ${SEED}) and ${hostileFiles.length} hostile pickles load or fail with WeightsFormatError, bounded time and memory`, () => {
  const stats = { ok: 0, rejected: 0, maxMs: 0, maxMsCase: '', totalMs: 0, outBytesOverIn: 0 };
  const kinds = new Map<string, number>();
  const rss0 = process.memoryUsage.rss();
  let rssPeak = rss0;
  const failures: string[] = [];
  const runOne = (label: string, data: Uint8Array): void => {
    const t0 = performance.now();
    try {
      const out = readWeightsBuffer(data, label);
      let bytes = 0;
      for (const [k, t] of out) {
        if (t.data.length !== numelOf(t.shape)) failures.push(`${label}: ${k} has ${t.data.length} elements for shape [${t.shape}]`);
        bytes += t.data.byteLength;
      }
      if (bytes > 2 * data.length + (64 << 20)) failures.push(`${label}: ${bytes} output bytes from a ${data.length}-byte file`);
      stats.outBytesOverIn = Math.max(stats.outBytesOverIn, bytes / Math.max(1, data.length));
      stats.ok++;
    } catch (e) {
      if (!(e instanceof WeightsFormatError)) failures.push(`${label}: ${(e as Error)?.constructor?.name}: ${String((e as Error)?.message).slice(0, 200)}`);
      else {
        stats.rejected++;
        const k = e.what.replace(/[\d]+/g, '#').replace(/(["'`]).*?\1/g, '$1..$1').slice(0, 48);
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
      }
    }
    const ms = performance.now() - t0;
    stats.totalMs += ms;
    if (ms > stats.maxMs) [stats.maxMs, stats.maxMsCase] = [ms, label];
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  };
  if (ONLY < 0) for (const [n, d] of hostileFiles) runOne(`hostile ${n}`, d);
  for (let i = ONLY < 0 ? 0 : ONLY; i < (ONLY < 0 ? N : ONLY + 1); i++) {
    const r = rng(SEED * 1_000_003 + i);
    const [name, buf] = pick(seeds, r);
    const { data, how } = mutate(buf, name, r);
    runOne(`case ${i} ${name} ${how}`, data);
  }
  const top = [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${v}x ${k}`);
  console.log(`  fuzz: ${ONLY < 0 ? `${N} cases (seed ${SEED}) + ${hostileFiles.length} hostile` : `case ${ONLY} (seed ${SEED})`}: ${stats.ok} loaded, ${stats.rejected} rejected, ${failures.length} failures; ${(stats.totalMs / 1000).toFixed(1)} s total, max ${stats.maxMs.toFixed(1)} ms (${stats.maxMsCase}); peak RSS +${((rssPeak - rss0) / 2 ** 20).toFixed(0)} MiB; max output/input ${stats.outBytesOverIn.toFixed(2)}\n  most common rejections: ${top.join(' | ')}`);
  assert.equal(failures.slice(0, 20), []);
  assert.ok(stats.maxMs < 2000, `slowest case ${stats.maxMs.toFixed(0)} ms: ${stats.maxMsCase}`);
  assert.ok(rssPeak - rss0 < 1024 * 2 ** 20, `peak RSS grew ${((rssPeak - rss0) / 2 ** 20).toFixed(0)} MiB`);
});

test.run();
