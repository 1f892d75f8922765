// Kernel launch machinery: pipeline cache keyed by (kernel, static params), bind-group layouts
// reflected from WGSL (wgsl_reflect), per-dispatch sizes as immediates (<= 64 B) or a per-submit
// uniform arena with dynamic offsets, one encoder + one open compute pass with periodic submits,
// batched readbacks, and a host-sync counter. ../shared/reference/webgpu-dawn-notes.md §8.
import { tagNow } from './autograd.ts';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkErrors, deviceSync, getDevice, onShutdown, type EngineDevice } from './device.ts';
import { BufferPool, bucketBytes } from './pool.ts';

import type { Launch, ProgramSource, UType } from '../kernels/common.ts';

interface Field { type: UType; offset: number }
interface Pipeline {
  key: string;
  pipeline: GPUComputePipeline;
  bgl: GPUBindGroupLayout;
  storageCount: number;
  fields: Field[];
  uniformBytes: number;
  immediate: boolean;
  compileMs: number;
}

// dawn.node settles GPU promises (mapAsync, onSubmittedWorkDone) by re-posting setImmediate ticks
// while one is pending: a busy loop on the main thread. On a software GPU (lavapipe on 2 cores) that
// loop takes a core from the shader threads: a batch-8 shapes training step took 1577 ms waiting
// that way and 1107 ms with the main thread asleep. So waits block in short sleeps (no CPU) and give
// the event loop one turn between them, where dawn's tick runs and the promise can settle.
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
async function waitQuietly<T>(p: Promise<T>, sliceMs: number): Promise<T> {
  if (sliceMs <= 0) return p;
  let settled = false;
  p.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((r) => setImmediate(r)); // a finished GPU costs no sleep
  while (!settled) {
    Atomics.wait(sleepCell, 0, 0, sliceMs);
    await new Promise((r) => setImmediate(r));
  }
  return p;
}

const fieldSize = (t: UType) => (t.startsWith('vec4') ? 16 : 4);
const wgslType = (t: UType) => (t === 'vec4u' ? 'vec4<u32>' : t === 'vec4i' ? 'vec4<i32>' : t === 'vec4f' ? 'vec4<f32>' : t);

function layoutFields(uniforms: [string, UType][]): { fields: Field[]; bytes: number } {
  let off = 0;
  let align = 4;
  const fields: Field[] = [];
  for (const [, t] of uniforms) {
    const s = fieldSize(t);
    align = Math.max(align, s);
    off = Math.ceil(off / s) * s;
    fields.push({ type: t, offset: off });
    off += s;
  }
  // WGSL rounds a struct's size up to its alignment (16 once it holds a vec4).
  return { fields, bytes: Math.ceil(off / align) * align };
}

export interface RuntimeStats {
  dispatches: number;
  submits: number;
  /** GPU→CPU syncs (mapAsync waits). A training step should cost exactly one. */
  hostSyncs: number;
  pipelines: number;
  compileMs: number;
}

const UNIFORM_ARENA_BYTES = 1 << 18;
/** MRCNN_LOG_COMPILE=1: one stderr line per pipeline compiled (finds shape-keyed kernels that recompile). */
const logCompiles = !!process.env.MRCNN_LOG_COMPILE;

/** Owns the encoder, pipelines, the uniform arena and the pool: the engine's GPU lifetime. */
export class Runtime {
  readonly dev: EngineDevice;
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly stats: RuntimeStats = { dispatches: 0, submits: 0, hostSyncs: 0, pipelines: 0, compileMs: 0 };
  /** Dispatches per submit; tfjs uses 15, our steps issue thousands. */
  submitEvery = Number(process.env.MRCNN_SUBMIT_EVERY ?? 128);
  /** Sleep slice of host waits (see waitQuietly); 0 = dawn's own polling loop. */
  waitSliceMs = Number(process.env.MRCNN_WAIT_SLICE_MS ?? 1);
  private pipelines = new Map<string, Pipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private sinceSubmit = 0;
  private arenaCpu = new ArrayBuffer(UNIFORM_ARENA_BYTES);
  private arenaView = new DataView(this.arenaCpu);
  private arenaUsed = 0;
  private arenaGpu: GPUBuffer;
  private uniformAlign: number;
  private immScratch = new ArrayBuffer(64);
  private immView = new DataView(this.immScratch);
  private staging = new Map<number, GPUBuffer[]>();
  private dumpDir = process.env.MRCNN_DUMP_WGSL ?? '';
  /** Label of the kernel most recently recorded, for error messages. */
  lastLabel = '';

  constructor(dev: EngineDevice) {
    this.dev = dev;
    this.device = dev.device;
    this.pool = new BufferPool(dev.device, Math.min(dev.limits.maxBufferSize, dev.limits.maxStorageBufferBindingSize));
    this.uniformAlign = Math.max(16, dev.limits.minUniformBufferOffsetAlignment);
    this.arenaGpu = dev.device.createBuffer({
      size: UNIFORM_ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
    if (this.dumpDir) mkdirSync(this.dumpDir, { recursive: true });
  }

  /** Cached pipeline for `key`; `build` runs only on a miss. */
  pipeline(key: string, build: () => ProgramSource): Pipeline {
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const t0 = performance.now();
    const src = build();
    const { fields, bytes } = layoutFields(src.uniforms);
    const immediate = bytes > 0 && bytes <= this.dev.immediateBytes;
    let header = '';
    if (bytes > 0) {
      header += `struct U {\n${src.uniforms.map(([n, t]) => `  ${n}: ${wgslType(t)},`).join('\n')}\n}\n`;
    }
    // Storage bindings are numbered by the kernel from 0; the uniform (arena path) goes after them.
    const reflect = new WgslReflect(src.code);
    const storage = [...reflect.storage].sort((a, b) => a.binding - b.binding);
    storage.forEach((s, i) => {
      if (s.group !== 0 || s.binding !== i) throw new Error(`kernel ${key}: storage bindings must be @group(0) 0..n-1, got ${s.name}@${s.group}/${s.binding}`);
    });
    if (bytes > 0) {
      header += immediate ? 'var<immediate> u: U;\n' : `@group(0) @binding(${storage.length}) var<uniform> u: U;\n`;
    }
    // WGSL directives (`enable subgroups;`) must precede every declaration, the header included.
    const directives = src.code.match(/^\s*enable [\w, ]+;\s*$/gm) ?? [];
    const code = directives.map((d) => d.trim()).join('\n') + '\n' + header + src.code.replace(/^\s*enable [\w, ]+;\s*$/gm, '');
    if (this.dumpDir) writeFileSync(join(this.dumpDir, `${key.replace(/[^\w.-]+/g, '_')}.wgsl`), code);
    const entries: GPUBindGroupLayoutEntry[] = storage.map((s, i) => ({
      binding: i,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: String(s.access) === 'read' ? 'read-only-storage' : 'storage' },
    }));
    if (bytes > 0 && !immediate) {
      entries.push({ binding: storage.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } });
    }
    const bgl = this.device.createBindGroupLayout({ entries, label: key });
    const layoutDesc: GPUPipelineLayoutDescriptor & { immediateSize?: number } = { bindGroupLayouts: [bgl], label: key };
    if (immediate) layoutDesc.immediateSize = Math.ceil(bytes / 4) * 4;
    const module = this.device.createShaderModule({ code, label: key });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout(layoutDesc),
      compute: { module, entryPoint: 'main' },
      label: key,
    });
    checkErrors(`compiling kernel ${key}`);
    const p: Pipeline = { key, pipeline, bgl, storageCount: storage.length, fields, uniformBytes: bytes, immediate, compileMs: performance.now() - t0 };
    this.pipelines.set(key, p);
    this.stats.pipelines++;
    this.stats.compileMs += p.compileMs;
    if (logCompiles) console.error(`compile ${p.compileMs.toFixed(0).padStart(6)} ms  ${key}`);
    return p;
  }

  private ensurePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  /**
   * Records one dispatch. `buffers` are bound whole, in binding order; `uniforms` are the flattened
   * values of the kernel's uniform fields; `grid` is in workgroups (each dim <= 65535: see grid1d).
   */
  dispatch(p: Pipeline, buffers: GPUBuffer[], uniforms: ArrayLike<number>, grid: [number, number?, number?]): void {
    if (buffers.length !== p.storageCount) {
      throw new Error(`kernel ${p.key}: ${buffers.length} buffers given, shader declares ${p.storageCount}`);
    }
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxWg = this.dev.limits.maxComputeWorkgroupsPerDimension;
    if (gx > maxWg || gy > maxWg || gz > maxWg) throw new Error(`kernel ${p.key}: grid [${gx},${gy},${gz}] exceeds ${maxWg} workgroups per dimension`);
    let dynOffset = -1;
    if (p.uniformBytes > 0) {
      const view = p.immediate ? this.immView : this.arenaView;
      let base = 0;
      if (!p.immediate) {
        if (this.arenaUsed + p.uniformBytes > UNIFORM_ARENA_BYTES) this.flush();
        base = this.arenaUsed;
        this.arenaUsed = Math.ceil((base + p.uniformBytes) / this.uniformAlign) * this.uniformAlign;
        dynOffset = base;
      }
      let k = 0;
      for (const f of p.fields) {
        const n = f.type.startsWith('vec4') ? 4 : 1;
        for (let j = 0; j < n; j++) {
          const v = uniforms[k++];
          const at = base + f.offset + 4 * j;
          if (f.type === 'f32' || f.type === 'vec4f') view.setFloat32(at, v, true);
          else if (f.type === 'i32' || f.type === 'vec4i') view.setInt32(at, v, true);
          else view.setUint32(at, v >>> 0, true);
        }
      }
      if (k !== uniforms.length) throw new Error(`kernel ${p.key}: ${uniforms.length} uniform values given, layout takes ${k}`);
    }
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, i) => ({ binding: i, resource: { buffer } }));
    if (dynOffset >= 0) entries.push({ binding: p.storageCount, resource: { buffer: this.arenaGpu, offset: 0, size: Math.ceil(p.uniformBytes / 16) * 16 } });
    const bg = this.device.createBindGroup({ layout: p.bgl, entries });
    if (this.profiler) this.beginProfiledPass();
    const pass = this.ensurePass();
    pass.setPipeline(p.pipeline);
    if (dynOffset >= 0) pass.setBindGroup(0, bg, [dynOffset]);
    else pass.setBindGroup(0, bg);
    if (p.immediate) {
      (pass as unknown as { setImmediates(o: number, d: Uint32Array): void }).setImmediates(0, new Uint32Array(this.immScratch, 0, Math.ceil(p.uniformBytes / 4)));
    }
    if (this.profiler) this.profiler.before(this, p.key);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.profiler) this.endPass();
    this.lastLabel = p.key;
    this.stats.dispatches++;
    if (++this.sinceSubmit >= this.submitEvery) this.flush();
  }

  /** Per-dispatch GPU timestamps (profiling runs only: one compute pass per dispatch). */
  profiler: Profiler | null = null;

  private beginProfiledPass(): void {
    this.endPass();
    this.pass = this.encoder!.beginComputePass({ timestampWrites: this.profiler!.slot(this.device) });
  }

  /** Starts attributing every dispatch's GPU time to (kernel key, tag). */
  startProfile(): void {
    this.flush();
    this.profiler = new Profiler();
  }

  /** Stops profiling and returns per-dispatch records (one readback; bench only). */
  async stopProfile(): Promise<ProfileRecord[]> {
    const pr = this.profiler;
    this.profiler = null;
    if (!pr) return [];
    this.flush();
    return pr.collect(this);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  clear(buf: GPUBuffer, offset = 0, bytes = buf.size): void {
    this.endPass().clearBuffer(buf, offset, bytes);
  }

  /** Runs a kernel launch spec over whole buffers. */
  launch(l: Launch, buffers: GPUBuffer[]): void {
    this.dispatch(this.pipeline(l.key, l.build), buffers, l.uniforms, l.grid);
  }

  /** Submits everything recorded so far (no wait). */
  flush(): void {
    if (!this.encoder && this.arenaUsed === 0) return;
    const enc = this.endPass();
    if (this.arenaUsed > 0) {
      // Queue order makes reusing one arena safe: this write lands after earlier submits ran.
      this.device.queue.writeBuffer(this.arenaGpu, 0, this.arenaCpu, 0, this.arenaUsed);
      this.arenaUsed = 0;
    }
    this.device.queue.submit([enc.finish()]);
    this.encoder = null;
    this.sinceSubmit = 0;
    this.stats.submits++;
    checkErrors(`submitting (last kernel ${this.lastLabel})`);
  }

  /** Uploads bytes in queue order after all recorded work (so pooled buffers can be reused safely). */
  write(dst: GPUBuffer, dstOffset: number, data: ArrayBufferView): void {
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(dst, dstOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  private takeStaging(bytes: number): GPUBuffer {
    const size = bucketBytes(bytes);
    const b = this.staging.get(size)?.pop();
    return b ?? this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging' });
  }

  /** Reads several ranges with one copy batch and one host sync. */
  async readMany(ranges: { buffer: GPUBuffer; offset: number; bytes: number }[]): Promise<ArrayBuffer[]> {
    const total = ranges.reduce((s, r) => s + Math.ceil(r.bytes / 4) * 4, 0);
    if (total === 0) return ranges.map(() => new ArrayBuffer(0));
    const st = this.takeStaging(total);
    const enc = this.endPass();
    let at = 0;
    const starts: number[] = [];
    for (const r of ranges) {
      starts.push(at);
      const n = Math.ceil(r.bytes / 4) * 4;
      if (n > 0) enc.copyBufferToBuffer(r.buffer, r.offset, st, at, n);
      at += n;
    }
    this.flush();
    this.stats.hostSyncs++;
    try {
      await waitQuietly(st.mapAsync(GPUMapMode.READ, 0, total), this.waitSliceMs);
    } catch (e) {
      checkErrors(`reading back (last kernel ${this.lastLabel})`);
      throw new Error(`engine: readback of ${total} B failed: ${(e as Error).message}`);
    }
    checkErrors(`reading back (last kernel ${this.lastLabel})`);
    const mapped = st.getMappedRange(0, total);
    const out = ranges.map((r, i) => mapped.slice(starts[i], starts[i] + r.bytes));
    st.unmap();
    let list = this.staging.get(st.size);
    if (!list) this.staging.set(st.size, (list = []));
    list.push(st);
    return out;
  }

  /** Waits until the GPU has finished all submitted work (bench/tests only; counts as a host sync). */
  async sync(): Promise<void> {
    this.flush();
    this.stats.hostSyncs++;
    await waitQuietly(this.device.queue.onSubmittedWorkDone(), this.waitSliceMs);
    checkErrors(`waiting for the queue (last kernel ${this.lastLabel})`);
  }

  /**
   * GPU time of the dispatches `record` issues, from timestamp queries around one compute pass
   * (wall clock after a sync when the adapter lacks timestamp-query). Returns milliseconds.
   */
  async timeMs(record: () => void): Promise<{ ms: number; source: 'timestamp' | 'wallclock' }> {
    if (!this.dev.features.has('timestamp-query')) {
      await this.sync();
      const t0 = performance.now();
      record();
      await this.sync();
      return { ms: performance.now() - t0, source: 'wallclock' };
    }
    this.flush();
    const qs = this.device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.encoder = this.device.createCommandEncoder();
    this.pass = this.encoder.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
    const savedEvery = this.submitEvery;
    this.submitEvery = Number.MAX_SAFE_INTEGER; // keep the timed work inside one pass
    try {
      record();
    } finally {
      this.submitEvery = savedEvery;
    }
    const enc = this.endPass();
    enc.resolveQuerySet(qs, 0, 2, resolve, 0);
    const [raw] = await this.readMany([{ buffer: resolve, offset: 0, bytes: 16 }]);
    const t = new BigUint64Array(raw);
    qs.destroy();
    resolve.destroy();
    return { ms: Number(t[1] - t[0]) / 1e6, source: 'timestamp' };
  }

  destroy(): void {
    this.pool.trim();
    for (const l of this.staging.values()) for (const b of l) b.destroy();
    this.arenaGpu.destroy();
  }
}

export interface ProfileRecord { key: string; tag: string; ms: number }

/** Query sets of 4096 timestamps (2 per dispatch); resolved and read once at the end. */
class Profiler {
  private sets: GPUQuerySet[] = [];
  private used = 0;
  readonly meta: { key: string; tag: string }[] = [];
  private static readonly PER_SET = 4096;
  slot(device: GPUDevice): GPUComputePassTimestampWrites {
    const i = this.used % Profiler.PER_SET;
    if (i === 0) this.sets.push(device.createQuerySet({ type: 'timestamp', count: Profiler.PER_SET }));
    this.used += 2;
    return { querySet: this.sets[this.sets.length - 1], beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }
  before(_rt: Runtime, key: string): void {
    this.meta.push({ key, tag: tagNow() ?? 'untagged' });
  }
  async collect(rt: Runtime): Promise<ProfileRecord[]> {
    const dev = rt.dev.device;
    const out: ProfileRecord[] = [];
    for (let s = 0; s < this.sets.length; s++) {
      const n = Math.min(Profiler.PER_SET, this.used - s * Profiler.PER_SET);
      const buf = dev.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const enc = dev.createCommandEncoder();
      enc.resolveQuerySet(this.sets[s], 0, n, buf, 0);
      dev.queue.submit([enc.finish()]);
      const [raw] = await rt.readMany([{ buffer: buf, offset: 0, bytes: n * 8 }]);
      const t = new BigUint64Array(raw);
      for (let j = 0; j < n; j += 2) {
        const m = this.meta[(s * Profiler.PER_SET + j) / 2];
        out.push({ key: m.key, tag: m.tag, ms: Number(t[j + 1] - t[j]) / 1e6 });
      }
      buf.destroy();
      this.sets[s].destroy();
    }
    return out;
  }
}

let rt: Runtime | null = null;

/** Creates the device and runtime (idempotent). */
export async function initEngine(): Promise<Runtime> {
  if (rt) return rt;
  const dev = await getDevice();
  rt = new Runtime(dev);
  onShutdown(() => {
    rt?.destroy();
    rt = null;
  });
  return rt;
}

export function runtime(): Runtime {
  if (!rt) {
    deviceSync();
    throw new Error('engine: runtime not initialised; `await initEngine()` first');
  }
  return rt;
}

