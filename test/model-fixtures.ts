// torchvision parity fixtures (issue 12): the deterministic weight formula shared with
// test/fixtures/gen_model_fixtures.py (spec: /work/notes/fixture-spec.md) and the loader of
// test/fixtures/model/<name>.{json,bin}. Plain data only; no GPU.
import { readFileSync } from 'node:fs';

export type FixtureDtype = 'f32' | 'i32' | 'u8';
export type FixtureArray = { dtype: FixtureDtype; shape: number[]; data: Float32Array | Int32Array | Uint8Array };
export type FixtureEntry = { dtype: FixtureDtype; shape: number[]; offset: number };
export type ModelFixture = {
  meta: Record<string, any>;
  arrays: Map<string, FixtureArray>;
  manifest: Record<string, FixtureEntry>;
  binBytes: number;
};

const BYTES: Record<FixtureDtype, number> = { f32: 4, i32: 4, u8: 1 };

// 32-bit FNV-1a over the UTF-8 bytes of s (offset basis 2166136261, prime 16777619).
export function fnv1a32(s: string): number {
  let h = 2166136261;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h >>> 0;
}

// The spec's weight for state-dict entry `name` of `shape`, computed in float64 then cast to float32
// (Float32Array stores round to nearest, as numpy's astype(float32)). Operation order follows the Python twin.
export function formulaWeight(name: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const phase = ((fnv1a32(name) % 100000) / 100000) * 6.283185307179586;
  let scale: number;
  let offset: number;
  if (shape.length >= 2) {
    const fan = shape.slice(1).reduce((a, b) => a * b, 1);
    [scale, offset] = [Math.sqrt(3 / fan), 0];
  } else if (name.endsWith('running_mean')) {
    [scale, offset] = [0.1, 0];
  } else if (name.endsWith('running_var')) {
    [scale, offset] = [0.25, 1];
  } else if (shape.length === 1 && name.endsWith('.weight')) {
    [scale, offset] = [0.2, 1];
  } else if (shape.length === 1 && name.endsWith('.bias')) {
    [scale, offset] = [0.1, 0];
  } else {
    throw new Error(`formulaWeight: no rule for state-dict key ${name} with shape [${shape}]`);
  }
  const out = new Float32Array(n);
  // offset 0 + x is exactly x, so one expression covers the kinds without offset
  for (let i = 0; i < n; i++) out[i] = offset + scale * Math.sin(phase + 1.2345 * i);
  return out;
}

// Reads test/fixtures/model/<name>.json (+ .bin). Arrays are copied out of the file, so every typed array
// is aligned and owns its buffer. Throws naming the array when its byte range leaves the .bin.
export function loadModelFixture(name: string): ModelFixture {
  const base = new URL(`./fixtures/model/${name}`, import.meta.url);
  const { arrays: manifest, meta } = JSON.parse(readFileSync(new URL(`${base.href}.json`), 'utf8'));
  const bin = readFileSync(new URL(`${base.href}.bin`));
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const arrays = new Map<string, FixtureArray>();
  for (const [key, e] of Object.entries(manifest as Record<string, FixtureEntry>)) {
    const numel = e.shape.reduce((a, b) => a * b, 1);
    const end = e.offset + numel * BYTES[e.dtype];
    if (!(e.offset >= 0 && end <= bin.byteLength)) {
      throw new Error(`loadModelFixture(${name}): array ${key} [${e.shape}] ${e.dtype} spans bytes [${e.offset}, ${end}) outside the ${bin.byteLength}-byte .bin`);
    }
    let data: Float32Array | Int32Array | Uint8Array;
    switch (e.dtype) {
      case 'f32':
        data = new Float32Array(numel);
        for (let i = 0; i < numel; i++) data[i] = view.getFloat32(e.offset + 4 * i, true);
        break;
      case 'i32':
        data = new Int32Array(numel);
        for (let i = 0; i < numel; i++) data[i] = view.getInt32(e.offset + 4 * i, true);
        break;
      case 'u8':
        data = Uint8Array.from(bin.subarray(e.offset, end));
        break;
      default: {
        const never: never = e.dtype;
        throw new Error(`loadModelFixture(${name}): array ${key} has unknown dtype ${never}`);
      }
    }
    arrays.set(key, { dtype: e.dtype, shape: e.shape, data });
  }
  return { meta, arrays, manifest, binBytes: bin.byteLength };
}
