// Size-bucketed GPU buffer pool with explicit release (no GC-driven frees).
// Buckets: multiples of 256 B up to 4 KiB, then {1, 1.25, 1.5, 1.75} × 2^k: at most 25% waste,
// and recurring-but-varying sizes (RoI counts, image sizes) still hit (ORT moved to buckets
// after exact-size pools fragmented, ../shared/reference/webgpu-dawn-notes.md §1.4).

export interface MemoryStats {
  /** Bytes of bucketed buffers currently handed out. */
  bytesInUse: number;
  /** High-water mark of bytesInUse since start or the last resetPeak(). */
  peakBytesInUse: number;
  /** Bytes sitting in free lists, ready for reuse. */
  bytesPooled: number;
  /** Live buffers handed out. */
  buffersInUse: number;
  /** Buffers ever created (pool misses). */
  buffersCreated: number;
}

export function bucketBytes(bytes: number): number {
  const b = Math.max(16, bytes);
  if (b <= 4096) return Math.ceil(b / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(b));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const s = p * f;
    if (s >= b) return s;
  }
  return 2 * p;
}

export const storageUsage = (): number =>
  GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private stats: MemoryStats = { bytesInUse: 0, peakBytesInUse: 0, bytesPooled: 0, buffersInUse: 0, buffersCreated: 0 };
  /** Pooled bytes above this are destroyed on release instead of kept (0 = unlimited). */
  capBytes = Number(process.env.MRCNN_POOL_CAP_MB ?? 0) * 2 ** 20;

  constructor(private device: GPUDevice, private maxBufferSize: number) {}
  /** The largest buffer the device allows (callers split work to stay under it). */
  get maxBytes(): number {
    return this.maxBufferSize;
  }

  acquire(bytes: number, what: string): GPUBuffer {
    const size = bucketBytes(bytes);
    if (size > this.maxBufferSize) {
      throw new Error(
        `pool: ${what} needs ${bytes} B (bucket ${size} B) > device maxBufferSize ${this.maxBufferSize} B; reduce batch or image size`,
      );
    }
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.stats.bytesPooled -= size;
    } else {
      buf = this.device.createBuffer({ size, usage: storageUsage(), label: what });
      this.stats.buffersCreated++;
    }
    this.stats.bytesInUse += size;
    this.stats.buffersInUse++;
    if (this.stats.bytesInUse > this.stats.peakBytesInUse) this.stats.peakBytesInUse = this.stats.bytesInUse;
    return buf;
  }

  /**
   * Returns a buffer for reuse. Safe while GPU work that reads it is still queued or unsubmitted:
   * later users are recorded after it in queue order (uploads flush the encoder first).
   */
  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.stats.bytesInUse -= size;
    this.stats.buffersInUse--;
    if (this.capBytes > 0 && this.stats.bytesPooled + size > this.capBytes) {
      buf.destroy();
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.stats.bytesPooled += size;
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.bytesPooled = 0;
  }

  memoryStats(): MemoryStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakBytesInUse = this.stats.bytesInUse;
  }
}
