// Tensor: a strided view over refcounted pooled GPU storage, plus autograd bookkeeping.
// Memory is freed deterministically: dispose() or the end of a tidy() scope, never the GC.
import { contiguousStrides, numel, type DType, type View } from '../kernels/common.ts';
import { runtime } from './runtime.ts';
import { mapLaunch } from '../kernels/elementwise.ts';

export type { DType };
export const bytesPerElement = (_d: DType) => 4;

/** One pooled GPU buffer shared by a tensor and its views. */
export class Storage {
  refs = 1;
  constructor(public buffer: GPUBuffer, public elements: number, public label: string) {}
  retain(): this {
    if (this.refs <= 0) throw new Error(`tensor: use of freed storage (${this.label})`);
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) runtime().pool.release(this.buffer);
  }
}

/** Backward of one recorded op: upstream grad → grads of its inputs (null: no grad). */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** Tensors the backward reads; held with their own references until the graph is freed. */
  saved: Tensor[];
  backward: (g: Tensor, saved: Tensor[]) => (Tensor | null)[];
  /** Profiling tag current when the op ran (runtime().profileTag); its backward is tagged `${tag}:bwd`. */
  tag?: string;
}

let nextId = 1;

export class Tensor implements View {
  readonly id = nextId++;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  disposed = false;
  /** Set for tensors that must survive tidy() (parameters, optimizer state). */
  kept = false;

  constructor(
    readonly storage: Storage,
    readonly shape: number[],
    readonly strides: number[],
    readonly offset: number,
    readonly dtype: DType,
  ) {
    track(this);
  }

  get size(): number {
    return numel(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get buffer(): GPUBuffer {
    if (this.disposed) throw new Error(`tensor ${this.id} [${this.shape}]: used after dispose()`);
    return this.storage.buffer;
  }
  get isContiguous(): boolean {
    const st = contiguousStrides(this.shape);
    return this.shape.every((s, i) => s === 1 || this.strides[i] === st[i]);
  }
  /** Plain view descriptor for kernels. */
  get view(): View {
    return { shape: this.shape.slice(), strides: this.strides.slice(), offset: this.offset };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    this.node = null;
  }

  /** Excludes this tensor from the enclosing tidy() scopes. */
  keep(): this {
    this.kept = true;
    return this;
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// ---- scopes --------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s) s.add(t);
}

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v == null) return;
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v as object)) collectTensors(x, out, depth + 1);
  }
}

/**
 * Runs fn and disposes every tensor created inside that is not returned (arrays/plain objects of
 * tensors are searched) and not kept. Storage still referenced by the autograd graph survives
 * until backward() frees the graph.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } catch (e) {
    const s = scopes.pop()!;
    for (const t of s) if (!t.kept) t.dispose();
    throw e;
  }
  if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (async work escapes the scope)');
  const s = scopes.pop()!;
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  // Graph nodes still reachable from what survives (returned or kept tensors) must keep their
  // saved tensors for a later backward; the rest of this scope's graph is freed now, not by GC.
  const liveNodes = new Set<GradNode>();
  const stack = [...s].filter((t) => keep.has(t) || t.kept);
  while (stack.length) {
    const n = stack.pop()!.node;
    if (!n || liveNodes.has(n)) continue;
    liveNodes.add(n);
    stack.push(...n.inputs);
  }
  const outer = scopes[scopes.length - 1];
  for (const t of s) {
    if (keep.has(t)) {
      outer?.add(t);
      continue;
    }
    if (t.node && !liveNodes.has(t.node)) {
      for (const x of t.node.saved) x.dispose();
      t.node.saved = [];
      t.node = null;
    }
    if (!t.kept) t.dispose();
  }
  return result;
}

// ---- allocation ----------------------------------------------------------------------------

let poison = !!process.env.MRCNN_POISON;
/** Tests: fill every new tensor with NaN bits (0x7fc00000) so elements a kernel forgot to write show. */
export function setPoison(on: boolean): void {
  poison = on;
}

/** Uninitialised contiguous tensor (contents undefined until a kernel writes it; NaN-poisoned in tests). */
export function empty(shape: number[], dtype: DType = 'f32', label = 'tensor'): Tensor {
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) throw new Error(`${label}: invalid shape [${shape}]`);
  }
  const n = numel(shape);
  const buf = runtime().pool.acquire(Math.max(n, 1) * bytesPerElement(dtype), `${label}[${shape}]`);
  if (poison && n > 0) runtime().launch(mapLaunch('poison', 'bitcast<T>(bitcast<u32>(u.s0))', [], dtype, [], [n], NaN), [buf]);
  return new Tensor(new Storage(buf, n, label), shape.slice(), contiguousStrides(shape), 0, dtype);
}

/** A new tensor viewing t's storage (shares memory; holds its own reference). */
export function viewOf(t: Tensor, shape: number[], strides: number[], offset: number): Tensor {
  return new Tensor(t.storage.retain(), shape, strides, offset, t.dtype);
}

export function typedArrayFor(dtype: DType, n: number | ArrayBuffer): Float32Array | Int32Array | Uint32Array {
  if (typeof n === 'number') return dtype === 'f32' ? new Float32Array(n) : dtype === 'i32' ? new Int32Array(n) : new Uint32Array(n);
  return dtype === 'f32' ? new Float32Array(n) : dtype === 'i32' ? new Int32Array(n) : new Uint32Array(n);
}

export function fromArray(data: ArrayLike<number>, shape: number[], dtype: DType = 'f32'): Tensor {
  const n = numel(shape);
  if (data.length !== n) throw new Error(`fromArray: ${data.length} values for shape [${shape}] (${n} elements)`);
  const t = empty(shape, dtype, 'fromArray');
  if (n > 0) {
    const arr = data instanceof Float32Array && dtype === 'f32' ? data : typedArrayFor(dtype, n);
    if (arr !== data) (arr as Float32Array).set(data as ArrayLike<number>);
    runtime().write(t.buffer, 0, arr);
  }
  return t;
}
