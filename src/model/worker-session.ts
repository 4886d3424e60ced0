// An InferenceSession on a worker thread. onnxruntime-node runs inference synchronously on the calling
// thread (its run() only defers the call with setImmediate), so on the main thread every batch froze
// the event loop: images queued for decoding waited for the model (docs/ARCHITECTURE.md, "Performance
// facts"). Here the main thread only posts the batch and keeps decoding (or answering HTTP) meanwhile.
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Request, WireTensor } from './session-worker.js';

type Meta = Pick<ort.InferenceSession, 'inputNames' | 'outputNames' | 'inputMetadata' | 'outputMetadata'>;
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; message: string };
type Body = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export class WorkerSession implements Meta {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly worker: Worker,
    private meta: Meta = { inputNames: [], outputNames: [], inputMetadata: [], outputMetadata: [] },
  ) {
    worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id)!;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) worker.unref(); // an idle worker never keeps the process alive
      if (r.ok) w.resolve(r.result);
      else w.reject(new Error(r.message));
    });
    worker.on('error', (err) => {
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
    worker.unref();
  }

  /**
   * A session from model bytes, or from a file path for a model with external data (the worker gets no
   * node flags: `--input-type` and the like are the main script's). The bytes' buffer is handed to the
   * worker when it is theirs alone (the caller must not use them afterwards), else copied.
   */
  static async create(
    model: Uint8Array | string,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<WorkerSession> {
    const s = new WorkerSession(new Worker(new URL('./session-worker.js', import.meta.url), { execArgv: [] }));
    const own =
      typeof model !== 'string' &&
      model.byteOffset === 0 &&
      model.byteLength === model.buffer.byteLength &&
      model.buffer instanceof ArrayBuffer;
    try {
      s.meta = (await s.call({ kind: 'create', model, options }, own ? [model.buffer as ArrayBuffer] : [])) as Meta;
    } catch (err) {
      await s.worker.terminate();
      throw err;
    }
    return s;
  }

  get inputNames(): readonly string[] {
    return this.meta.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.meta.outputNames;
  }
  get inputMetadata(): Meta['inputMetadata'] {
    return this.meta.inputMetadata;
  }
  get outputMetadata(): Meta['outputMetadata'] {
    return this.meta.outputMetadata;
  }

  private call(body: Body, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const id = this.next++;
    this.worker.ref(); // a pending answer keeps the process alive
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...body }, transfer);
    });
  }

  /** Runs the model; the feeds are copied to the worker, the outputs come back without a copy. */
  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const wire = Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [k, { type: t.type, dims: t.dims, data: t.data } satisfies WireTensor]),
    );
    const out = (await this.call({ kind: 'run', feeds: wire })) as Record<string, WireTensor>;
    return Object.fromEntries(
      Object.entries(out).map(([k, t]) => [k, new ort.Tensor(t.type, t.data as Float32Array, t.dims)]),
    );
  }

  async release(): Promise<void> {
    try {
      await this.call({ kind: 'release' });
    } finally {
      await this.worker.terminate();
    }
  }
}
