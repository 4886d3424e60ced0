// The worker side of WorkerSession: one onnxruntime-node InferenceSession on this thread. Its run()
// blocks the thread it is called on for the whole inference, so it lives here, not on the main
// thread, where image decoding and HTTP requests must go on meanwhile.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';

export interface WireTensor {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

export type Request =
  | { id: number; kind: 'create'; model: Uint8Array | string; options: ort.InferenceSession.SessionOptions }
  | { id: number; kind: 'run'; feeds: Record<string, WireTensor> }
  | { id: number; kind: 'release' };

let session: ort.InferenceSession | undefined;

async function handle(m: Request): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  if (m.kind === 'create') {
    // A file path where the model has external data: ONNX Runtime reads it beside the model (checked first:
    // src/model/external-data.ts).
    session =
      typeof m.model === 'string'
        ? await ort.InferenceSession.create(m.model, m.options)
        : await ort.InferenceSession.create(m.model, m.options);
    const { inputNames, outputNames, inputMetadata, outputMetadata } = session;
    return { result: { inputNames, outputNames, inputMetadata, outputMetadata }, transfer: [] };
  }
  if (!session) throw new Error('no session');
  if (m.kind === 'release') {
    await session.release();
    session = undefined;
    return { result: null, transfer: [] };
  }
  const feeds = Object.fromEntries(
    Object.entries(m.feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data as Float32Array, t.dims)]),
  );
  const out = await session.run(feeds);
  const result: Record<string, WireTensor> = {};
  const transfer: ArrayBuffer[] = [];
  for (const [k, t] of Object.entries(out)) {
    result[k] = { type: t.type, dims: t.dims, data: t.data };
    const buf = (t.data as Float32Array).buffer;
    if (buf instanceof ArrayBuffer && !transfer.includes(buf)) transfer.push(buf);
  }
  return { result, transfer };
}

// One request at a time, in order: a release that arrives while a run waits for its turn (run()
// defers with setImmediate) must not free the session under it.
let queue: Promise<unknown> = Promise.resolve();
parentPort!.on('message', (m: Request) => {
  queue = queue
    .then(() => handle(m))
    .then(
      ({ result, transfer }) => parentPort!.postMessage({ id: m.id, ok: true, result }, transfer),
      (err: unknown) =>
        parentPort!.postMessage({ id: m.id, ok: false, message: err instanceof Error ? err.message : String(err) }),
    );
});
