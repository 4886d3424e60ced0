// TrainSession: training above a TrainEngine (engine.ts: NativeEngine, or OrtEngine where the addon is
// not built; engines.ts picks). Validates every argument once, for both engines, fills every default
// into one options object, keeps the Adam step count and the dropout RNG (so a checkpoint replays
// exactly), and computes Adam's bias correction in float64 on the host.
import { engineOptions, type AdamPlacement, type EngineState, type TrainEngine } from './engine.js';
import { openEngine, type EngineChoice, type EngineKind, type OpenedEngine } from './engines.js';
import { cudaMissingMessage, runtimeReport, type Device } from '../runtime/providers.js';
import { checkInteger, expected } from '../util/errors.js';
import { Rng } from '../../training/rng.js';
import { LossScaler, type LossScaleState } from './loss-scaler.js';
import { adamStepScalars } from '../../training/graphs.js';
import {
  checkConfig,
  dropoutKeepMask,
  hasDropout,
  inputOf,
  numel,
  paramSpecs,
  type ModelConfig,
  type ParamSpec,
} from '../../training/params.js';

export interface TrainSessionOptions {
  device?: Device;
  deviceId?: number;
  /** Let CUDA use TF32 tensor cores for float32 matrix work (faster, ~1e-3 relative error). */
  tf32?: boolean;
  /**
   * Mixed precision: convolutions and GEMMs in float16 with dynamic loss scaling (training/precision.ts,
   * loss-scaler.ts); parameters, Adam moments, batch norm and the loss stay float32.
   */
  fp16?: boolean;
  /** Benches: further CUDA provider options (engine.ts CUDA_OPTION_VALUES). */
  cudaOptions?: Record<string, string>;
  /** fp16: the loss scaler's state to continue from (a checkpoint's); absent: a fresh scaler. */
  lossScale?: LossScaleState;
  /** Threads inside one op (0 = ONNX Runtime's default: one per core). */
  intraOpThreads?: number;
  interOpThreads?: number;
  /**
   * Where Adam runs: in place (default on the native engine's CPU: one C++ pass, no new buffers) or
   * fused into the step graph (default elsewhere). Both give bit-identical results.
   */
  adam?: AdamPlacement;
  /**
   * Bake the frozen convs' weights into the train and eval graphs as initializers (default on the
   * CPU): ONNX Runtime then runs those convs on its blocked NCHWc kernels, which it does only for
   * constant weights. They still belong to the state (getState returns them); setState must keep them.
   */
  bakeFrozen?: boolean;
  /** Seed of the dropout masks. */
  seed?: number;
  /** native (the addon), ort (onnxruntime-node, CPU) or auto (native when built). */
  engine?: EngineChoice;
  /** Benches only: opens the engine instead of `engine` (bench/loop.ts trains with one that does no work). */
  openEngine?: () => OpenedEngine;
}

/** Model state in host memory: what checkpoints hold. */
export interface TrainState {
  params: Map<string, Float32Array>;
  /** Adam moments per trainable tensor; absent = zeros. */
  m?: Map<string, Float32Array>;
  v?: Map<string, Float32Array>;
  /** Adam steps taken. */
  step?: number;
  /** Dropout RNG state. */
  rng?: number[];
}

export class TrainSession {
  private stepCount = 0;
  private rng: Rng;
  /** fp16 sessions: the loss scale, skipped steps and the growth count. */
  private scaler?: LossScaler;
  private readonly specs: ParamSpec[];
  private readonly trainable: ParamSpec[];
  private disposed = false;
  /** The frozen tensors baked into the graphs, when they are. */
  private baked?: Map<string, Float32Array>;

  private constructor(
    readonly config: ModelConfig,
    private impl: TrainEngine,
    private readonly options: TrainSessionOptions & { device: Device; adam: AdamPlacement },
    /** Which engine runs the graphs, and the one-line note saying so. */
    readonly engine: EngineKind,
    readonly engineNote: string,
  ) {
    this.specs = paramSpecs(config);
    this.trainable = this.specs.filter((s) => s.role === 'trainable');
    this.rng = new Rng(options.seed ?? 0);
  }

  static async create(
    config: ModelConfig,
    initial: TrainState,
    options: TrainSessionOptions = {},
  ): Promise<TrainSession> {
    checkConfig(config);
    const device = options.device ?? 'cpu';
    const { engine: impl, kind, note } = options.openEngine?.() ?? openEngine(options.engine ?? 'auto', device);
    if (device === 'cuda') {
      const missing = runtimeReport().cudaMissing;
      if (missing.length > 0) throw new Error(cudaMissingMessage(missing));
    }
    const adam = options.adam ?? (kind === 'native' && device === 'cpu' ? 'in-place' : 'fused');
    checkInteger('deviceId', options.deviceId ?? 0, 0, 64);
    checkInteger('intraOpThreads', options.intraOpThreads ?? 0, 0, 1024);
    checkInteger('interOpThreads', options.interOpThreads ?? 0, 0, 1024);
    const session = new TrainSession(config, impl, { ...options, device, adam }, kind, note);
    const state = session.stateArrays(initial, 'initial state');
    if (options.bakeFrozen ?? device === 'cpu') session.baked = session.frozenOf(state.params);
    await session.load(state);
    session.stepCount = initial.step ?? 0;
    if (initial.rng) session.rng = Rng.fromState(initial.rng);
    if (options.fp16) session.scaler = new LossScaler(options.lossScale);
    return session;
  }

  /** Builds the graphs (with the baked frozen tensors, if any) and loads them and `state` into the engine. */
  private async load(state: { params: Float32Array[]; m?: Float32Array[]; v?: Float32Array[] }): Promise<void> {
    const { options: o } = this;
    await this.impl.load(engineOptions(this.config, { ...o, frozen: this.baked }), state.params, state.m, state.v);
  }

  /** Copies of the frozen tensors among `params` (spec order). */
  private frozenOf(params: Float32Array[]): Map<string, Float32Array> {
    return new Map(this.specs.flatMap((s, i) => (s.role === 'frozen' ? [[s.name, params[i]!.slice()] as const] : [])));
  }

  /** Adam steps taken so far. */
  get steps(): number {
    return this.stepCount;
  }

  /** One training step (forward, backward, Adam) on n images; resolves to the loss before the update. */
  async step(images: Uint8Array, labels: Uint8Array, n: number, lr: number): Promise<number> {
    this.checkBatch(images, labels, n);
    if (!(lr > 0 && Number.isFinite(lr))) throw expected('a positive learning rate', 'lr', lr);
    const c = this.config;
    const rngBefore = this.rng.state();
    const keep = hasDropout(c) ? dropoutKeepMask(this.rng, n, c.hidden, c.dropout) : null;
    const { lrT, epsT } = adamStepScalars(lr, this.stepCount + 1);
    try {
      const r = await this.impl.step(images, labels, keep, n, lrT, epsT, this.scaler?.scale ?? 1);
      // A step skipped for a non-finite gradient changed nothing: Adam's step count stays (PyTorch's
      // GradScaler skips optimizer.step() too); the dropout masks drawn for it are not redrawn.
      if (this.scaler ? this.scaler.update(r.applied) : r.applied) this.stepCount++;
      return r.loss;
    } catch (err) {
      this.rng = Rng.fromState(rngBefore);
      throw err;
    }
  }

  /** Loss and probabilities (n, K) with dropout off and running BN statistics. */
  async evaluate(images: Uint8Array, labels: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }> {
    this.checkBatch(images, labels, n);
    return this.impl.evaluate(images, labels, n);
  }

  /**
   * Host copies of the whole state (the only place parameters leave the device): into `into` when
   * given (a state of this model whose arrays are overwritten), else into new arrays.
   */
  async getState(into?: Required<TrainState>): Promise<Required<TrainState>> {
    const buffers = into && this.stateArrays(into, 'snapshot buffers');
    if (buffers && !(buffers.m && buffers.v))
      throw new RangeError('TrainSession.getState: Expected Adam m and v buffers');
    const s = await this.impl.getState(buffers as EngineState | undefined);
    return {
      params: new Map(this.specs.map((spec, i) => [spec.name, s.params[i]!])),
      m: new Map(this.trainable.map((spec, i) => [spec.name, s.m[i]!])),
      v: new Map(this.trainable.map((spec, i) => [spec.name, s.v[i]!])),
      step: this.stepCount,
      rng: this.rng.state(),
    };
  }

  async setState(state: TrainState): Promise<void> {
    const arrays = this.stateArrays(state, 'state');
    const same = (a: Float32Array, b: Float32Array): boolean =>
      Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    if (this.baked && [...this.baked].some(([name, value]) => !same(state.params.get(name)!, value))) {
      // Other frozen weights: the graphs that hold them are rebuilt on a new engine of the same kind.
      if (this.disposed) throw new Error('TrainSession.setState: the session is disposed');
      if (this.impl.busy)
        throw new Error('TrainSession.setState: another call on this session is still running; await it first');
      this.impl.dispose();
      this.impl = (this.options.openEngine?.() ?? openEngine(this.engine, this.options.device)).engine;
      this.baked = this.frozenOf(arrays.params);
      await this.load(arrays);
    } else {
      await this.impl.setState(arrays.params, arrays.m, arrays.v);
    }
    this.stepCount = state.step ?? 0;
    if (state.rng) this.rng = Rng.fromState(state.rng);
  }

  /** fp16 sessions: the loss scaler's state (scale, clean steps, steps skipped); undefined otherwise. */
  get lossScale(): LossScaleState | undefined {
    return this.scaler?.state();
  }

  /** Free device memory; harmless twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.impl.dispose();
  }

  private checkBatch(images: Uint8Array, labels: Uint8Array, n: number): void {
    const c = this.config;
    checkInteger('n', n, 1, 1 << 20);
    const x = inputOf(c);
    if (!(images instanceof Uint8Array) || images.length !== n * x.bytes) {
      throw new RangeError(
        `Expected ${n * x.bytes} bytes for ${x.dtype === 'uint8' ? 'images' : 'embeddings'} (n=${n} × ${x.dims.join('×')}${x.dtype === 'uint8' ? '' : ` ${x.dtype}`}) but received ${images?.length}`,
      );
    }
    if (!(labels instanceof Uint8Array) || labels.length !== n * c.tags) {
      throw new RangeError(
        `Expected ${n * c.tags} bytes for labels (n=${n} × ${c.tags} tags) but received ${labels?.length}`,
      );
    }
  }

  private stateArrays(
    state: TrainState,
    what: string,
  ): { params: Float32Array[]; m?: Float32Array[]; v?: Float32Array[] } {
    const pick = (map: Map<string, Float32Array>, specs: ParamSpec[], label: string): Float32Array[] =>
      specs.map((s) => {
        const a = map.get(s.name);
        if (!a)
          throw new RangeError(
            `Expected tensor ${s.name} in the ${what} (${label}) but it is missing: is it a checkpoint of another model?`,
          );
        if (a.length !== numel(s.shape))
          throw new RangeError(
            `Expected ${numel(s.shape)} values for ${s.name} [${s.shape}] in the ${what} (${label}) but received ${a.length}: is it a checkpoint of another model?`,
          );
        return a;
      });
    const params = pick(state.params, this.specs, 'params');
    if (!state.m !== !state.v) throw new RangeError(`Expected both Adam m and v in the ${what}, or neither`);
    return {
      params,
      m: state.m ? pick(state.m, this.trainable, 'Adam m') : undefined,
      v: state.v ? pick(state.v, this.trainable, 'Adam v') : undefined,
    };
  }
}
