// Batching data loader: seeded deterministic order, aspect-ratio grouping, flips, resize,
// bottom/right padding to a multiple of 32, prefetching through a worker_threads pool, and a
// tiny state object (seed, epoch, iteration) from which the exact same subsequent batches
// follow. Each epoch's batch plan is a pure function of (seed, epoch), so resuming is just
// "recompute the plan, skip `iteration` batches".
import { Worker } from 'node:worker_threads';
import type { LoadedCoco } from './coco.ts';
import { RESIZE_PRESETS, type InstanceTargets, type NormMode, type ResizeSpec } from './images.ts';
import type { WorkerReply, WorkerRequest } from './loader-worker.ts';
import { mixSeed, mulberry32, shuffled } from './prng.ts';
import { IssueCounter, type IssueReport } from './report.ts';
import { BadImageError, prepareSample, type ImageSizeInfo, type PreparedSample, type SampleConfig, type SampleInput } from './sample.ts';

export interface LoaderState {
  seed: number;
  epoch: number;
  /** Batches of `epoch` already handed out. */
  iteration: number;
}

export interface LoaderOptions {
  batchSize: number;
  /** Which images: 'train' = LoadedCoco.trainIndices, 'eval' = evalIndices. Default 'train'. */
  subset?: 'train' | 'eval';
  seed?: number;
  shuffle?: boolean;
  /** Probability of a horizontal flip per image. Default 0.5 ('train'), 0 ('eval'). */
  flipProb?: number;
  /** Landscape (w > h) and portrait images never share a batch (detectron2 / torchvision). */
  groupByAspect?: boolean;
  /** Leftover partial batches at the end of an epoch are dropped. Default true ('train'). */
  dropLast?: boolean;
  /** Default RESIZE_PRESETS.torchvision (800/1333); null = keep the original size. */
  resize?: ResizeSpec | null;
  norm?: NormMode;
  /** Batch H and W are rounded up to a multiple of this (torchvision / FPN: 32). */
  padMultiple?: number;
  /** 0 = prepare in-process. */
  numWorkers?: number;
  /** Batches prepared ahead of the consumer. */
  prefetchBatches?: number;
  /** 'skip' (default): a corrupt / truncated / mis-sized image is dropped from its batch and counted. */
  onBadImage?: 'skip' | 'throw';
  honourExifOrientation?: boolean;
  /** Resume point; its seed overrides `seed`. */
  state?: LoaderState;
  log?: ((message: string) => void) | null;
}

export interface Batch {
  epoch: number;
  iteration: number;
  /** Number of images actually in the batch (bad images skipped). */
  batchSize: number;
  /** [batchSize, 3, heightPadPx, widthPadPx], zero padding bottom/right (0 after normalisation). */
  images: Float32Array;
  heightPadPx: number;
  widthPadPx: number;
  imageIds: number[];
  recordIndices: number[];
  sizes: ImageSizeInfo[];
  /** Per image, in its resized (and flipped) frame. */
  targets: InstanceTargets[];
  /** Save this to resume right after this batch. */
  stateAfter: LoaderState;
}

export interface PlannedBatch { recordIndices: number[]; flips: boolean[] }

/**
 * The batches of one epoch. Shuffled order from (seed, epoch); with grouping, images go into a
 * landscape or portrait bucket and a bucket is emitted when it holds batchSize images (so batch
 * order follows the shuffled order, as in detectron2's AspectRatioGroupedDataset).
 */
export function planEpoch(recordIndices: readonly number[], isPortrait: (recordIndex: number) => boolean,
  o: { batchSize: number; seed: number; epoch: number; shuffle: boolean; flipProb: number; groupByAspect: boolean; dropLast: boolean }): PlannedBatch[] {
  const rand = mulberry32(mixSeed(o.seed, o.epoch));
  const order = o.shuffle ? shuffled(recordIndices, rand) : recordIndices.slice();
  const flipOf = new Map<number, boolean>();
  for (const r of order) flipOf.set(r, o.flipProb > 0 && rand() < o.flipProb);
  const batches: PlannedBatch[] = [];
  const buckets: number[][] = [[], []];
  for (const r of order) {
    const b = buckets[o.groupByAspect && isPortrait(r) ? 1 : 0];
    b.push(r);
    if (b.length === o.batchSize) { batches.push({ recordIndices: b.slice(), flips: b.map((x) => flipOf.get(x)!) }); b.length = 0; }
  }
  if (!o.dropLast) for (const b of buckets) if (b.length) batches.push({ recordIndices: b.slice(), flips: b.map((x) => flipOf.get(x)!) });
  return batches;
}

// A worker that dies (an 'error' or an exit we did not ask for, e.g. while booting tsx's loader
// hooks) is replaced and its jobs are re-sent (preparing a sample is pure); past this many
// replacements the jobs fail with an error naming the worker, instead of leaving the consumer
// awaiting a reply that never comes.
const MAX_WORKER_RESTARTS = 4;

/** Owns the worker threads; jobs are dealt to the least-loaded live worker. */
class WorkerPool {
  private readonly workers: (Worker | null)[] = [];
  private readonly inFlight: number[] = [];
  private readonly pending = new Map<number, { worker: number; req: WorkerRequest; resolve: (s: PreparedSample) => void; reject: (e: Error) => void }>();
  private nextJob = 1;
  private restarts = 0;
  private closing = false;
  private readonly url = new URL('./loader-worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url);

  constructor(n: number, private readonly log: ((m: string) => void) | null) {
    for (let i = 0; i < n; i++) {
      this.workers.push(this.spawn(i));
      this.inFlight.push(0);
    }
  }

  private spawn(i: number): Worker {
    // Under tsx a worker does not inherit the TypeScript loader (`execArgv: ['--import','tsx']`
    // fails with ERR_UNKNOWN_FILE_EXTENSION on Node 20), so boot it through tsx's register API.
    const w = this.url.pathname.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(this.url.href)}); })`, { eval: true })
      : new Worker(this.url);
    w.on('message', (r: WorkerReply) => this.onReply(i, r));
    w.on('error', (e) => this.onDeath(i, w, `error: ${e.message}`));
    w.on('exit', (code) => this.onDeath(i, w, `exited with code ${code}`));
    w.unref(); // referenced only while it has jobs, so an unclosed loader never keeps the process alive
    return w;
  }

  run(input: SampleInput, config: SampleConfig): Promise<PreparedSample> {
    const req: WorkerRequest = { jobId: this.nextJob++, input, config };
    return new Promise((resolve, reject) => {
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) if (this.workers[i] && (best < 0 || this.inFlight[i] < this.inFlight[best])) best = i;
      if (best < 0) { reject(new Error(`loader: all ${this.workers.length} worker threads died (${this.restarts} replacements used)`)); return; }
      this.pending.set(req.jobId, { worker: best, req, resolve, reject });
      this.send(best, req);
    });
  }

  private send(i: number, req: WorkerRequest): void {
    if (this.inFlight[i]++ === 0) this.workers[i]!.ref();
    this.workers[i]!.postMessage(req);
  }

  private onReply(worker: number, r: WorkerReply): void {
    const p = this.pending.get(r.jobId);
    if (!p) return;
    this.pending.delete(r.jobId);
    if (--this.inFlight[worker] === 0) this.workers[worker]?.unref();
    if (r.ok) p.resolve(r.sample);
    else p.reject(r.kind === 'decodeFailed' || r.kind === 'imageSizeMismatch' ? new BadImageError(r.kind, r.message) : new Error(r.message));
  }

  private onDeath(i: number, w: Worker, why: string): void {
    if (this.closing || this.workers[i] !== w) return; // asked to stop, or already replaced ('error' then 'exit')
    const jobs = [...this.pending.values()].filter((p) => p.worker === i);
    this.inFlight[i] = 0;
    if (this.restarts < MAX_WORKER_RESTARTS) {
      this.restarts++;
      this.log?.(`loader: worker ${i} ${why}; replacing it and re-sending its ${jobs.length} job(s)`);
      this.workers[i] = this.spawn(i);
      for (const p of jobs) this.send(i, p.req);
      return;
    }
    this.workers[i] = null;
    for (const p of jobs) {
      this.pending.delete(p.req.jobId);
      p.reject(new Error(`loader: worker ${i} ${why} while preparing image ${p.req.input.imageId} (${p.req.input.filePath}); ${MAX_WORKER_RESTARTS} replacements already used`));
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    // Neither an unref'd nor a re-ref'd worker's terminate() reliably keeps the event loop alive
    // (Node 20 with tsx's hooks thread in the worker): the process exited mid-await with code 13
    // (seen in CI). A timer holds the loop until every worker has stopped.
    const hold = setInterval(() => undefined, 1000);
    try {
      await Promise.all(this.workers.map((w) => w?.terminate()));
    } finally {
      clearInterval(hold);
    }
  }
}

function roundUp(v: number, m: number): number { return Math.ceil(v / m) * m; }

/** Zero-pads prepared samples bottom/right into one [B,3,H,W] tensor. */
export function collate(samples: PreparedSample[], padMultiple: number): { images: Float32Array; heightPadPx: number; widthPadPx: number } {
  let maxH = 1, maxW = 1;
  for (const s of samples) { maxH = Math.max(maxH, s.size.heightPx); maxW = Math.max(maxW, s.size.widthPx); }
  const H = roundUp(maxH, padMultiple), W = roundUp(maxW, padMultiple);
  const images = new Float32Array(samples.length * 3 * H * W);
  samples.forEach((s, b) => {
    const { heightPx: h, widthPx: w } = s.size;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) images.set(s.image.subarray((c * h + y) * w, (c * h + y + 1) * w), ((b * 3 + c) * H + y) * W);
    }
  });
  return { images, heightPadPx: H, widthPadPx: W };
}

export class DataLoader {
  readonly options: Required<Omit<LoaderOptions, 'state' | 'log' | 'resize'>> & { resize: ResizeSpec | null };
  /** Decode-time problems (corrupt/truncated files, size mismatches), counted. */
  readonly issues: IssueCounter;
  private readonly indices: number[];
  private readonly config: SampleConfig;
  private readonly pool: WorkerPool | null;
  private readonly log: ((m: string) => void) | null;
  private readonly knownBad = new Set<number>();
  /** Position of the next batch to *schedule* (prefetch runs ahead of the consumer). */
  private cursor: { epoch: number; iteration: number };
  private plan: { epoch: number; batches: PlannedBatch[] } | null = null;
  private readonly queue: { epoch: number; iteration: number; promise: Promise<PreparedSample[]> }[] = [];
  private consumed: LoaderState;

  constructor(private readonly data: LoadedCoco, opts: LoaderOptions) {
    const train = (opts.subset ?? 'train') === 'train';
    this.options = {
      batchSize: opts.batchSize, subset: opts.subset ?? 'train', seed: opts.state?.seed ?? opts.seed ?? 0,
      shuffle: opts.shuffle ?? train, flipProb: opts.flipProb ?? (train ? 0.5 : 0), groupByAspect: opts.groupByAspect ?? true,
      dropLast: opts.dropLast ?? train, resize: opts.resize === undefined ? RESIZE_PRESETS.torchvision : opts.resize,
      norm: opts.norm ?? 'torchvision', padMultiple: opts.padMultiple ?? 32, numWorkers: opts.numWorkers ?? 0,
      prefetchBatches: opts.prefetchBatches ?? 2, onBadImage: opts.onBadImage ?? 'skip', honourExifOrientation: opts.honourExifOrientation ?? false,
    };
    if (!(this.options.batchSize >= 1)) throw new Error(`loader: batchSize must be >= 1, got ${opts.batchSize}`);
    this.indices = train ? data.trainIndices : data.evalIndices;
    if (this.indices.length === 0) throw new Error(`loader: ${data.spec.annPath}: no images in the '${this.options.subset}' subset`);
    this.config = { resize: this.options.resize, norm: this.options.norm, honourExifOrientation: this.options.honourExifOrientation, keypointFlipMap: data.keypointFlipMap };
    this.issues = new IssueCounter(`loader: ${data.spec.name}`);
    this.log = opts.log === undefined ? (m) => console.warn(m) : opts.log;
    const start = opts.state ?? { seed: this.options.seed, epoch: 0, iteration: 0 };
    this.cursor = { epoch: start.epoch, iteration: start.iteration };
    this.consumed = { seed: this.options.seed, epoch: start.epoch, iteration: start.iteration };
    this.pool = this.options.numWorkers > 0 ? new WorkerPool(this.options.numWorkers, this.log) : null;
  }

  get report(): IssueReport { return this.issues.report; }

  /** State after the last batch returned by next(). */
  state(): LoaderState { return { ...this.consumed }; }

  epochBatches(epoch: number): PlannedBatch[] {
    if (this.plan?.epoch !== epoch) {
      const o = this.options;
      this.plan = {
        epoch,
        batches: planEpoch(this.indices, (r) => this.data.records[r].heightPx > this.data.records[r].widthPx,
          { batchSize: o.batchSize, seed: o.seed, epoch, shuffle: o.shuffle, flipProb: o.flipProb, groupByAspect: o.groupByAspect, dropLast: o.dropLast }),
      };
      if (this.plan.batches.length === 0) throw new Error(`loader: ${this.indices.length} images give no full batch of ${o.batchSize} (set dropLast: false)`);
    }
    return this.plan.batches;
  }

  iterationsPerEpoch(epoch = this.consumed.epoch): number { return this.epochBatches(epoch).length; }

  private schedule(): void {
    while (this.queue.length < Math.max(1, this.options.prefetchBatches)) {
      let batches = this.epochBatches(this.cursor.epoch);
      if (this.cursor.iteration >= batches.length) { this.cursor = { epoch: this.cursor.epoch + 1, iteration: 0 }; batches = this.epochBatches(this.cursor.epoch); }
      const planned = batches[this.cursor.iteration];
      const promise = Promise.all(planned.recordIndices.map((r, i) => this.prepare(r, planned.flips[i])))
        .then((list) => list.filter((s): s is PreparedSample => s !== null));
      promise.catch(() => undefined); // surfaced when the consumer awaits it
      this.queue.push({ ...this.cursor, promise });
      this.cursor = { epoch: this.cursor.epoch, iteration: this.cursor.iteration + 1 };
    }
  }

  private async prepare(recordIndex: number, flip: boolean): Promise<PreparedSample | null> {
    if (this.knownBad.has(recordIndex)) return null;
    const rec = this.data.records[recordIndex];
    const input: SampleInput = { recordIndex, imageId: rec.imageId, filePath: rec.filePath, heightPx: rec.heightPx, widthPx: rec.widthPx, targets: rec.targets, flip };
    try {
      return await (this.pool ? this.pool.run(input, this.config) : prepareSample(input, this.config));
    } catch (e) {
      if (!(e instanceof BadImageError) || this.options.onBadImage === 'throw') throw e;
      if (this.knownBad.has(recordIndex)) return null; // prefetch may have decoded it twice: count once
      this.knownBad.add(recordIndex);
      this.issues.add(e.kind, e.message);
      this.log?.(`loader: skipping ${e.message} (${this.issues.total()} bad images so far)`);
      return null;
    }
  }

  /** Next batch; crosses epochs forever. Batches whose images all failed are skipped. */
  async next(): Promise<Batch> {
    return (await this.nextBatch(false))!;
  }

  /** With `stopAtEpochEnd`, returns null instead of skipping an all-bad batch into the next epoch. */
  private async nextBatch(stopAtEpochEnd: boolean): Promise<Batch | null> {
    for (let attempts = 0; ; attempts++) {
      this.schedule();
      const item = this.queue.shift()!;
      const samples = await item.promise;
      this.consumed = { seed: this.options.seed, epoch: item.epoch, iteration: item.iteration + 1 };
      if (samples.length === 0) {
        this.issues.add('emptyBatchSkipped', `epoch ${item.epoch} iteration ${item.iteration}: every image failed`);
        if (attempts > this.iterationsPerEpoch(item.epoch)) throw new Error(`loader: ${this.data.spec.name}: a whole epoch of images failed to decode`);
        if (stopAtEpochEnd && this.consumed.iteration >= this.iterationsPerEpoch(item.epoch)) return null;
        continue;
      }
      const { images, heightPadPx, widthPadPx } = collate(samples, this.options.padMultiple);
      return {
        epoch: item.epoch, iteration: item.iteration, batchSize: samples.length, images, heightPadPx, widthPadPx,
        imageIds: samples.map((s) => s.imageId), recordIndices: samples.map((s) => s.recordIndex),
        sizes: samples.map((s) => s.size), targets: samples.map((s) => s.targets), stateAfter: this.state(),
      };
    }
  }

  /** All batches of the current epoch from the current position (eval: one pass, in order). */
  async *epoch(): AsyncGenerator<Batch> {
    const epoch = this.consumed.epoch;
    while (this.consumed.epoch === epoch && this.consumed.iteration < this.iterationsPerEpoch(epoch)) {
      const b = await this.nextBatch(true);
      if (!b) return;
      yield b;
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

export function createLoader(data: LoadedCoco, opts: LoaderOptions): DataLoader {
  return new DataLoader(data, opts);
}
