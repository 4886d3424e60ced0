// CheckpointWriter: checkpoints written and hashed on a worker thread while training goes on. The loop
// only waits for the snapshot (a device → host copy into buffers reused from the previous checkpoint)
// and, when one is still being written, for that one: at most one write is in flight. Each file is
// written as writeCheckpoint writes it (temp name, fsync, rename), so a kill at any moment leaves the
// previous checkpoints whole. A write's failure is thrown by the next start() or by flush().
import { Worker } from 'node:worker_threads';
import type { TensorSpec } from '../data/safetensors.js';
import { UsageError } from '../util/errors.js';
import { stateOfTensors, type CheckpointInfo, type CheckpointPayload } from './checkpoint.js';
import type { TrainState } from './train-session.js';

/** The buffers of `tensors` that can move to another thread without a copy (each whole and used once). */
export function transferList(tensors: Record<string, TensorSpec>): ArrayBuffer[] {
  const seen = new Set<ArrayBufferLike>();
  const out: ArrayBuffer[] = [];
  for (const t of Object.values(tensors))
    for (const c of t.chunks) {
      const b = c.buffer;
      if (!(b instanceof ArrayBuffer) || seen.has(b) || c.byteOffset !== 0 || c.byteLength !== b.byteLength) continue;
      seen.add(b);
      out.push(b);
    }
  return out;
}

interface Reply {
  ok: boolean;
  name?: string;
  message?: string;
  tensors: Record<string, TensorSpec>;
}

export class CheckpointWriter {
  private worker?: Worker;
  private pending: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private spare: Required<TrainState> | undefined;

  /**
   * `written` runs on this thread after each file is in place (the newest checkpoint, retention), with
   * the seconds from start() to then.
   */
  constructor(private readonly written: (info: CheckpointInfo, seconds: number) => Promise<void>) {}

  /**
   * Buffers for the next snapshot: those of the last checkpoint written, once it is (undefined before,
   * and while one is in flight). The caller owns them until it passes them to start().
   */
  takeSpare(): Required<TrainState> | undefined {
    const s = this.spare;
    this.spare = undefined;
    return s;
  }

  /** Hand `payload` to the writer thread; its state arrays move there (the caller must not use them). */
  async start(payload: CheckpointPayload): Promise<void> {
    await this.flush();
    const worker = (this.worker ??= new Worker(new URL('./checkpoint-worker.js', import.meta.url), { execArgv: [] }));
    const { file, tensors, metadata, info } = payload;
    const t0 = performance.now();
    const reply = new Promise<Reply>((resolve, reject) => {
      const onMessage = (r: Reply): void => {
        worker.off('error', onError);
        resolve(r);
      };
      const onError = (err: Error): void => {
        worker.off('message', onMessage);
        if (this.worker === worker) this.worker = undefined;
        reject(err);
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
    });
    worker.postMessage({ file, tensors, metadata }, transferList(tensors));
    this.pending = reply.then(async (r) => {
      this.spare = stateOfTensors(r.tensors);
      if (!r.ok) throw r.name === 'UsageError' ? new UsageError(r.message) : new Error(r.message);
      await this.written(info, (performance.now() - t0) / 1000);
    });
    this.pending = this.pending.catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
    });
  }

  /** Wait for the write in flight; throws its failure, once. */
  async flush(): Promise<void> {
    await this.pending;
    const f = this.failure;
    this.failure = undefined;
    if (f) throw f;
  }

  /** Wait for the write in flight (its failure is thrown) and stop the thread; harmless twice. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.worker?.terminate();
      this.worker = undefined;
    }
  }
}
