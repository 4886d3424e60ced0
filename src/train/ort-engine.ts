// The fallback training engine: the same graphs as the native addon, run through onnxruntime-node with
// the model state held in JS memory (every step copies parameters and Adam state in and out of the
// runtime). Same surface and error messages as the addon's TrainSession, so TrainSession can run on
// either; checkpoints do not know which one wrote them.
import ort from 'onnxruntime-node';
import type { NativeLoadOptions, NativeSpec, NativeTrainSession } from '../native/addon.js';

type Feeds = Record<string, ort.Tensor>;

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export class OrtTrainEngine implements NativeTrainSession {
  private running = false;
  private inflight: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private o?: NativeLoadOptions;
  private train?: ort.InferenceSession;
  private optimizer?: ort.InferenceSession;
  private evaluator?: ort.InferenceSession;
  private params: Float32Array[] = [];
  private m: Float32Array[] = [];
  private v: Float32Array[] = [];
  /** Indices (into specs) of trainable tensors, and of state tensors (BN running statistics). */
  private trainable: number[] = [];
  private updated: number[] = [];

  get busy(): boolean {
    return this.running;
  }

  get loaded(): boolean {
    return this.train !== undefined && !this.disposed;
  }

  load(options: NativeLoadOptions, params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.call('load', false, async () => {
      if (this.train) throw new Error('TrainSession.load: already loaded; use setState');
      if (options.adam === 'in-place')
        throw new Error(
          'TrainSession.load: the onnxruntime-node engine runs Adam in a graph (fused or graph), not in place',
        );
      if (options.device !== 'cpu')
        throw new Error(
          `TrainSession.load: the onnxruntime-node engine trains on the CPU only, not ${options.device}; build the native addon (npm run build:native) for CUDA`,
        );
      const so: ort.InferenceSession.SessionOptions = {
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: options.interOpThreads,
        graphOptimizationLevel: 'all',
        enableMemPattern: false,
      };
      this.trainable = options.specs.flatMap((s, i) => (s.role === 'trainable' ? [i] : []));
      this.updated = options.specs.flatMap((s, i) => (s.role === 'state' ? [i] : []));
      this.checkState(options.specs, params, m, v);
      const sessions = await Promise.all([
        ort.InferenceSession.create(options.trainModel, so),
        options.adam === 'graph' ? ort.InferenceSession.create(options.optimizerModel!, so) : undefined,
        ort.InferenceSession.create(options.evalModel, so),
      ]);
      [this.train, this.optimizer, this.evaluator] = sessions;
      this.o = options;
      this.assign(params, m, v);
    });
  }

  setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.call('setState', true, async () => {
      this.checkState(this.o!.specs, params, m, v);
      this.assign(params, m, v);
    });
  }

  step(
    images: Uint8Array,
    labels: Uint8Array,
    keep: Uint8Array | null,
    n: number,
    lrT: number,
    epsT: number,
  ): Promise<number> {
    return this.call('step', true, async () => {
      const o = this.o!;
      const { io } = o;
      const specs = o.specs;
      const [train, optimizer] = [this.train!, this.optimizer]; // kept for this call even if disposed meanwhile
      const feeds = this.batchFeeds(images, labels, n);
      if (o.hasKeep) feeds[io.keep] = new ort.Tensor('bool', keep!, [n, o.hidden]);
      const adam: Feeds = {
        [io.lr]: new ort.Tensor('float32', [lrT], []),
        [io.eps]: new ort.Tensor('float32', [epsT], []),
      };
      for (const [j, i] of this.trainable.entries()) {
        adam[io.mPrefix + specs[i]!.name] = new ort.Tensor('float32', this.m[j]!, specs[i]!.shape);
        adam[io.vPrefix + specs[i]!.name] = new ort.Tensor('float32', this.v[j]!, specs[i]!.shape);
      }
      const out = await train.run(o.adam === 'fused' ? { ...feeds, ...adam } : feeds);
      let update = out;
      if (optimizer) {
        for (const i of this.trainable) {
          adam[specs[i]!.name] = feeds[specs[i]!.name]!;
          adam[io.gradPrefix + specs[i]!.name] = out[io.gradPrefix + specs[i]!.name]!;
        }
        update = await optimizer.run(adam);
      }
      const take = (r: ort.InferenceSession.OnnxValueMapType, name: string): Float32Array =>
        r[name]!.data as Float32Array;
      for (const [j, i] of this.trainable.entries()) {
        const name = specs[i]!.name;
        this.params[i] = take(update, io.newPrefix + name);
        this.m[j] = take(update, io.newPrefix + io.mPrefix + name);
        this.v[j] = take(update, io.newPrefix + io.vPrefix + name);
      }
      for (const i of this.updated) this.params[i] = take(out, io.newPrefix + specs[i]!.name);
      return take(out, io.loss)[0]!;
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

  getState(): Promise<{ params: Float32Array[]; m: Float32Array[]; v: Float32Array[] }> {
    return this.call('getState', true, async () => ({
      params: this.params.map((a) => a.slice()),
      m: this.m.map((a) => a.slice()),
      v: this.v.map((a) => a.slice()),
    }));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const sessions = [this.train, this.optimizer, this.evaluator];
    this.train = this.optimizer = this.evaluator = undefined;
    this.params = this.m = this.v = [];
    // A call in flight still uses its sessions: release them once it has settled.
    void this.inflight.then(() => Promise.all(sessions.map((s) => s?.release()))).catch(() => undefined);
  }

  /** The addon's call discipline: one call at a time, nothing after dispose, state needed after load. */
  private async call<T>(method: string, needLoaded: boolean, body: () => Promise<T>): Promise<T> {
    if (this.disposed) throw new Error(`TrainSession.${method}: the session is disposed`);
    if (this.running)
      throw new Error(`TrainSession.${method}: another call on this session is still running; await it first`);
    if (needLoaded && !this.train) throw new Error(`TrainSession.${method}: the session is not loaded`);
    this.running = true;
    const settled = body();
    this.inflight = settled.catch(() => undefined);
    try {
      return await settled;
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (!e.message.startsWith('TrainSession.')) e.message = `TrainSession.${method}: ${e.message}`;
      throw e;
    } finally {
      this.running = false;
    }
  }

  private batchFeeds(images: Uint8Array, labels: Uint8Array, n: number): Feeds {
    const o = this.o!;
    const s = o.imageSize;
    const feeds: Feeds = {
      [o.io.image]: new ort.Tensor('uint8', images, [n, s, s, 3]),
      [o.io.labels]: new ort.Tensor('uint8', labels, [n, o.tags]),
    };
    o.specs.forEach((spec, i) => {
      if (!(o.bakedFrozen && spec.role === 'frozen'))
        feeds[spec.name] = new ort.Tensor('float32', this.params[i]!, spec.shape);
    });
    return feeds;
  }

  private checkState(specs: NativeSpec[], params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): void {
    const check = (list: Float32Array[], which: NativeSpec[], what: string): void => {
      if (list.length !== which.length)
        throw new RangeError(`Expected ${which.length} tensors for ${what} but received ${list.length}`);
      list.forEach((a, i) => {
        if (!(a instanceof Float32Array)) throw new TypeError(`Expected Float32Array for ${what}[${i}]`);
        if (a.length !== numel(which[i]!.shape))
          throw new RangeError(`Expected ${numel(which[i]!.shape)} values for ${what}[${i}] but received ${a.length}`);
      });
    };
    check(params, specs, 'params');
    if (!m !== !v) throw new RangeError('Expected both m and v, or neither');
    const trainable = specs.filter((s) => s.role === 'trainable');
    if (m) check(m, trainable, 'm');
    if (v) check(v, trainable, 'v');
  }

  /** Own copies of the state (the caller's arrays stay theirs, as with the addon's upload). */
  private assign(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): void {
    const specs = this.o!.specs;
    this.params = params.map((a) => Float32Array.from(a));
    this.m = this.trainable.map((i, j) => (m ? Float32Array.from(m[j]!) : new Float32Array(numel(specs[i]!.shape))));
    this.v = this.trainable.map((i, j) => (v ? Float32Array.from(v[j]!) : new Float32Array(numel(specs[i]!.shape))));
  }
}
