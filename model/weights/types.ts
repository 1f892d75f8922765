// Host-side named tensors as read from weight files, independent of the GPU engine.

export type WeightsDType = 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' | 'u8' | 'bool';
export const WEIGHTS_DTYPES: readonly WeightsDType[] = ['f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'u8', 'bool'];

export type HostData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

/** data is contiguous row-major; f16 and bf16 keep their raw bits in a Uint16Array, bool is 0/1 bytes. */
export interface HostTensor {
  dtype: WeightsDType;
  shape: number[];
  data: HostData;
}

export function bytesPerElement(d: WeightsDType): number {
  switch (d) {
    case 'f64':
    case 'i64':
      return 8;
    case 'f32':
    case 'i32':
      return 4;
    case 'f16':
    case 'bf16':
      return 2;
    case 'u8':
    case 'bool':
      return 1;
  }
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A typed array of the right kind over `bytes` (which must be aligned for the element size). */
export function typedView(d: WeightsDType, buf: ArrayBuffer, byteOffset: number, n: number): HostData {
  switch (d) {
    case 'f32':
      return new Float32Array(buf, byteOffset, n);
    case 'f64':
      return new Float64Array(buf, byteOffset, n);
    case 'i64':
      return new BigInt64Array(buf, byteOffset, n);
    case 'i32':
      return new Int32Array(buf, byteOffset, n);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buf, byteOffset, n);
    case 'u8':
    case 'bool':
      return new Uint8Array(buf, byteOffset, n);
  }
}

/** Whether `data` is the typed-array kind HostTensor uses for dtype `d`. */
export function dataMatchesDType(d: WeightsDType, data: HostData): boolean {
  switch (d) {
    case 'f32':
      return data instanceof Float32Array;
    case 'f64':
      return data instanceof Float64Array;
    case 'i64':
      return data instanceof BigInt64Array;
    case 'i32':
      return data instanceof Int32Array;
    case 'f16':
    case 'bf16':
      return data instanceof Uint16Array;
    case 'u8':
    case 'bool':
      return data instanceof Uint8Array;
  }
}

// IEEE binary16 -> binary32, exact (every half is representable as a float).
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const bfScratch = new Uint32Array(1);
const bfScratchF = new Float32Array(bfScratch.buffer);
export function bf16ToFloat(b: number): number {
  bfScratch[0] = b << 16;
  return bfScratchF[0];
}

/** Values as float32 (f64 and i64 round to nearest float32, as torch's .float() does). */
export function toFloat32(t: HostTensor): Float32Array {
  const n = t.data.length;
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'f32':
      out.set(t.data as Float32Array);
      break;
    case 'f16': {
      const d = t.data as Uint16Array;
      for (let i = 0; i < n; i++) out[i] = halfToFloat(d[i]);
      break;
    }
    case 'bf16': {
      const d = t.data as Uint16Array;
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = d[i] << 16;
      break;
    }
    case 'i64': {
      const d = t.data as BigInt64Array;
      for (let i = 0; i < n; i++) out[i] = Number(d[i]);
      break;
    }
    case 'f64':
    case 'i32':
    case 'u8':
    case 'bool':
      out.set(t.data as Float64Array | Int32Array | Uint8Array);
      break;
  }
  return out;
}
