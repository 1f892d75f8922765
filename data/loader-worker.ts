// Worker-thread side of the loader pool: prepares samples and transfers the image buffer back.
import { parentPort } from 'node:worker_threads';
import { BadImageError, prepareSample, type SampleConfig, type SampleInput } from './sample.ts';

export interface WorkerRequest { jobId: number; input: SampleInput; config: SampleConfig }
export type WorkerReply =
  | { jobId: number; ok: true; sample: Awaited<ReturnType<typeof prepareSample>> }
  | { jobId: number; ok: false; kind: string; message: string };

const port = parentPort;
if (port) {
  port.on('message', (req: WorkerRequest) => {
    prepareSample(req.input, req.config).then(
      (sample) => port.postMessage({ jobId: req.jobId, ok: true, sample } satisfies WorkerReply, [sample.image.buffer as ArrayBuffer]),
      (e: Error) => port.postMessage({ jobId: req.jobId, ok: false, kind: e instanceof BadImageError ? e.kind : 'workerError', message: e.message } satisfies WorkerReply),
    );
  });
}
