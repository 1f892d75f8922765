import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { EventWriter, FILE_VERSION, crc32c, decodeEvent, encodeEvent, frameRecord, maskedCrc32c, readEvents, readRecords } from '../model/tools/tfevents.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('tfevents: CRC32C known vectors (RFC 3720 B.4 and the check value)', () => {
  assert.is(crc32c(enc('123456789')), 0xe3069283);
  assert.is(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.is(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.is(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.is(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.is(crc32c(new Uint8Array(0)), 0);
  // mask = rotr15 + 0xa282ead8, computed here in BigInt as an independent check
  const c = BigInt(crc32c(enc('123456789')));
  const want = Number((((c >> 15n) | (c << 17n)) + 0xa282ead8n) & 0xffffffffn);
  assert.is(maskedCrc32c(enc('123456789')), want);
});

test('tfevents: record framing layout', () => {
  const data = enc('hello');
  const r = frameRecord(data);
  assert.is(r.length, 8 + 4 + 5 + 4);
  assert.is(r.readBigUInt64LE(0), 5n);
  assert.is(r.readUInt32LE(8), maskedCrc32c(r.subarray(0, 8)));
  assert.equal(Array.from(r.subarray(12, 17)), Array.from(data));
  assert.is(r.readUInt32LE(17), maskedCrc32c(data));
});

test('tfevents: Event protobuf bytes by hand', () => {
  // wall_time 1.5 (field 1 fixed64), step 300 (field 2 varint ac 02), summary{value{tag "a", simple_value 2.0}}
  const b = encodeEvent({ wallTimeSec: 1.5, step: 300, scalars: [{ tag: 'a', value: 2 }] });
  const want = [0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0xac, 0x02, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0, 0, 0, 0x40];
  assert.equal(Array.from(b), want);
  const e = decodeEvent(b);
  assert.equal(e, { wallTimeSec: 1.5, step: 300, scalars: [{ tag: 'a', value: 2 }] });
  // negative int64 step: 10-byte varint, round trips
  assert.is(decodeEvent(encodeEvent({ wallTimeSec: 0, step: -2, scalars: [] })).step, -2);
});

test('tfevents: write, read back: file name, file_version first, CRCs and values', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tfev-'));
  try {
    const w = new EventWriter(dir);
    const w2 = new EventWriter(dir); // same second: must not clobber the first file
    assert.match(basename(w.path), /^events\.out\.tfevents\.\d{10}\.[^/]+$/);
    assert.is.not(w.path, w2.path);
    w2.close();
    const values = [0.1, 3.25, -7, 1e-8, 123456.78, NaN, Infinity];
    values.forEach((v, i) => w.scalar('loss/total', v, i * 20, 1700000000 + i));
    w.scalar('lr', 0.02, 2 ** 40);
    w.flush();
    w.scalar('late', 1, 1);
    w.close();
    assert.throws(() => w.scalar('x', 1, 1), /after close/);
    assert.throws(() => new EventWriter(dir).scalar('x', 1, 0.5), /step 0.5/);
    const evs = readEvents(w.path);
    assert.is(evs.length, 1 + values.length + 2);
    assert.is(evs[0].fileVersion, FILE_VERSION);
    assert.is(evs[0].scalars.length, 0);
    values.forEach((v, i) => {
      const e = evs[1 + i];
      assert.is(e.step, i * 20);
      assert.is(e.wallTimeSec, 1700000000 + i);
      assert.is(e.scalars.length, 1);
      assert.is(e.scalars[0].tag, 'loss/total');
      if (Number.isNaN(v)) assert.ok(Number.isNaN(e.scalars[0].value));
      else assert.is(e.scalars[0].value, Math.fround(v));
    });
    assert.equal(evs[1 + values.length].scalars, [{ tag: 'lr', value: Math.fround(0.02) }]);
    assert.is(evs[1 + values.length].step, 2 ** 40);
    assert.is(evs.at(-1)!.scalars[0].tag, 'late');
    assert.ok(readdirSync(dir).every((f) => f.startsWith('events.out.tfevents.')));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('tfevents: a flipped byte anywhere is detected (header, data or CRC), truncation too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tfev-'));
  try {
    const w = new EventWriter(dir);
    w.scalar('a', 1, 1);
    w.scalar('b', 2, 2);
    w.close();
    const good = readFileSync(w.path);
    assert.is(readRecords(w.path).length, 3);
    const bad = join(dir, 'bad');
    for (let i = 0; i < good.length; i++) {
      const b = Buffer.from(good);
      b[i] ^= 0x10;
      writeFileSync(bad, b);
      assert.throws(() => readEvents(bad), /CRC mismatch|runs past the end/, `byte ${i} flipped but not detected`);
    }
    writeFileSync(bad, good.subarray(0, good.length - 3));
    assert.throws(() => readEvents(bad), /record 2 at byte \d+: length \d+ runs past the end/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
