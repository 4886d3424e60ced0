// OrtEngine: the same graphs as NativeEngine, run through onnxruntime-node with the model state held in
// JS memory (every step copies parameters and Adam state in and out of the runtime); CPU only, Adam
// fused into the step graph. The same call discipline and messages as NativeEngine, so TrainSession runs
// on either and checkpoints do not know which one wrote them. Optionally profiles its step graph with
// ONNX Runtime's profiler (the benches' op tables).
import ort from 'onnxruntime-node';
import type { EngineOptions, EngineState, StepOutcome, TrainEngine } from './engine.js';

type Feeds = Record<string, ort.Tensor>;

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export class OrtEngine implements TrainEngine {
  private running = false;
  private inflight: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private o?: EngineOptions;
  private train?: ort.InferenceSession;
  private evaluator?: ort.InferenceSession;
  private params: Float32Array[] = [];
  private m: Float32Array[] = [];
  private v: Float32Array[] = [];
  /** Indices (into specs) of trainable tensors, and of state tensors (BN running statistics). */
  private trainable: number[] = [];
  private updated: number[] = [];

  /** With `profilePrefix`, the step graph writes PREFIX_<time>.json on endProfiling(). */
  constructor(private readonly opts: { profilePrefix?: string } = {}) {}

  get busy(): boolean {
    return this.running;
  }

  get loaded(): boolean {
    return this.train !== undefined && !this.disposed;
  }

  load(options: EngineOptions, params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.call('load', false, async () => {
      if (this.train) throw new Error('already loaded; use setState');
      if (options.adam !== 'fused')
        throw new Error('the onnxruntime-node engine runs Adam fused into the step graph, not in place');
      if (options.device !== 'cpu')
        throw new Error(
          `the onnxruntime-node engine trains on the CPU only, not ${options.device}; build the native addon (npm run build:native) for CUDA`,
        );
      const so: ort.InferenceSession.SessionOptions = {
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: options.interOpThreads,
        graphOptimizationLevel: 'all',
        enableMemPattern: false,
      };
      const profiling = this.opts.profilePrefix
        ? { enableProfiling: true, profileFilePrefix: this.opts.profilePrefix }
        : {};
      this.trainable = options.specs.flatMap((s, i) => (s.role === 'trainable' ? [i] : []));
      this.updated = options.specs.flatMap((s, i) => (s.role === 'state' ? [i] : []));
      [this.train, this.evaluator] = await Promise.all([
        ort.InferenceSession.create(options.trainModel, { ...so, ...profiling }),
        ort.InferenceSession.create(options.evalModel, so),
      ]);
      this.o = options;
      this.assign(params, m, v);
    });
  }

  setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.call('setState', true, async () => this.assign(params, m, v));
  }

  step(
    images: Uint8Array,
    labels: Uint8Array,
    keep: Uint8Array | null,
    n: number,
    lrT: number,
    epsT: number,
    lossScale = 1,
  ): Promise<StepOutcome> {
    return this.call('step', true, async () => {
      const o = this.o!;
      const { io, specs } = o;
      const train = this.train!; // kept for this call even if disposed meanwhile
      const feeds = this.batchFeeds(images, labels, n);
      if (o.hasKeep && keep) feeds[io.keep] = new ort.Tensor('bool', keep, [n, o.hidden]);
      feeds[io.lr] = new ort.Tensor('float32', [lrT], []);
      feeds[io.eps] = new ort.Tensor('float32', [epsT], []);
      if (o.lossScale) feeds[io.lossScale] = new ort.Tensor('float32', [lossScale], []);
      for (const [j, i] of this.trainable.entries()) {
        feeds[io.mPrefix + specs[i]!.name] = new ort.Tensor('float32', this.m[j]!, specs[i]!.shape);
        feeds[io.vPrefix + specs[i]!.name] = new ort.Tensor('float32', this.v[j]!, specs[i]!.shape);
      }
      const out = await train.run(feeds);
      const take = (name: string): Float32Array => out[name]!.data as Float32Array;
      for (const [j, i] of this.trainable.entries()) {
        const name = specs[i]!.name;
        this.params[i] = take(io.newPrefix + name);
        this.m[j] = take(io.newPrefix + io.mPrefix + name);
        this.v[j] = take(io.newPrefix + io.vPrefix + name);
      }
      for (const i of this.updated) this.params[i] = take(io.newPrefix + specs[i]!.name);
      // A skipped step's graph outputs the old values (training/graphs.ts), so taking them keeps them.
      const applied = !o.lossScale || Boolean(out[io.gradsFinite]!.data[0]);
      return { loss: take(io.loss)[0]!, applied };
    });
  }

  evaluate(images: Uint8Array, labels: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }> {
    return this.call('evaluate', true, async () => {
      const out = await this.evaluator!.run(this.batchFeeds(images, labels, n));
      return {
        loss: (out[this.o!.io.loss]!.data as Float32Array)[0]!,
        probs: out[this.o!.io.probs]!.data as Float32Array,
      };
    });
  }

  getState(into?: EngineState): Promise<EngineState> {
    return this.call('getState', true, async () => {
      const copy = (from: Float32Array[], to: Float32Array[] | undefined, what: string): Float32Array[] => {
        if (!to) return from.map((a) => a.slice());
        if (to.length !== from.length || to.some((a, i) => a.length !== from[i]!.length))
          throw new RangeError(`OrtEngine.getState: Expected ${what} buffers of the state's sizes`);
        to.forEach((a, i) => a.set(from[i]!));
        return to;
      };
      return {
        params: copy(this.params, into?.params, 'params'),
        m: copy(this.m, into?.m, 'm'),
        v: copy(this.v, into?.v, 'v'),
      };
    });
  }

  /** Write the step graph's profile (with `profilePrefix`). */
  endProfiling(): void {
    this.train?.endProfiling();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const sessions = [this.train, this.evaluator];
    this.train = this.evaluator = undefined;
    this.params = this.m = this.v = [];
    // A call in flight still uses its sessions: release them once it has settled.
    void this.inflight.then(() => Promise.all(sessions.map((s) => s?.release()))).catch(() => undefined);
  }

  /** The engines' call discipline: one call at a time, nothing after dispose, state needed after load. */
  private async call<T>(method: string, needLoaded: boolean, body: () => Promise<T>): Promise<T> {
    const name = `OrtEngine.${method}`;
    if (this.disposed) throw new Error(`${name}: the engine is disposed`);
    if (this.running) throw new Error(`${name}: another call on this engine is still running; await it first`);
    if (needLoaded && !this.train) throw new Error(`${name}: the engine is not loaded`);
    this.running = true;
    const settled = body();
    this.inflight = settled.catch(() => undefined);
    try {
      return await settled;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (!e.message.startsWith(name)) e.message = `${name}: ${e.message}`;
      throw e;
    } finally {
      this.running = false;
    }
  }

  private batchFeeds(images: Uint8Array, labels: Uint8Array, n: number): Feeds {
    const o = this.o!;
    const x =
      o.inputType === 'float16'
        ? new ort.Tensor('float16', new Uint16Array(images.buffer, images.byteOffset, images.length / 2), [
            n,
            ...o.inputDims,
          ])
        : new ort.Tensor('uint8', images, [n, ...o.inputDims]);
    const feeds: Feeds = {
      [o.io.input]: x,
      [o.io.labels]: new ort.Tensor('uint8', labels, [n, o.tags]),
    };
    o.specs.forEach((spec, i) => {
      if (!(o.bakedFrozen && spec.role === 'frozen'))
        feeds[spec.name] = new ort.Tensor('float32', this.params[i]!, spec.shape);
    });
    return feeds;
  }

  /** Own copies of the state (the caller's arrays stay theirs, as with the addon's upload). */
  private assign(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): void {
    const specs = this.o!.specs;
    this.params = params.map((a) => Float32Array.from(a));
    this.m = this.trainable.map((i, j) => (m ? Float32Array.from(m[j]!) : new Float32Array(numel(specs[i]!.shape))));
    this.v = this.trainable.map((i, j) => (v ? Float32Array.from(v[j]!) : new Float32Array(numel(specs[i]!.shape))));
  }
}
