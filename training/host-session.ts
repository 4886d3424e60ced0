// Training through onnxruntime-node, state held in JS: every step copies parameters and Adam state
// in and out of the runtime. The reference the native TrainSession is checked against, and what
// trains until it exists.
import ort from 'onnxruntime-node';
import { adamStepScalars, buildEvalGraph, buildOptimizerGraph, buildTrainGraph } from './model.js';
import { io, numel, paramSpecs, type ModelConfig } from './params.js';
import { batchFeeds } from './gradcheck.js';
import type { Batch } from './reference.js';
import { sessionThreads } from './threads.js';

export interface HostSessionOptions {
  /** One fused step graph instead of train + optimizer graphs. */
  fused?: boolean;
  threads?: number;
  /** onnxruntime-node execution providers (default cpu). */
  executionProviders?: string[];
  /** Profile the train graph with ONNX Runtime's profiler, writing PREFIX_<time>.json on endProfiling(). */
  profilePrefix?: string;
  /** Frozen tensors as graph initializers, as the TrainSession bakes them on the CPU. */
  bakeFrozen?: boolean;
}

export class HostTrainSession {
  /** Adam step count t (starts at 0; the first step uses t = 1). */
  step = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();

  private constructor(
    readonly config: ModelConfig,
    readonly params: Map<string, Float32Array>,
    private readonly train: ort.InferenceSession,
    private readonly optimizer: ort.InferenceSession | null,
    private readonly evaluator: ort.InferenceSession,
  ) {
    for (const s of paramSpecs(config)) {
      if (s.role !== 'trainable') continue;
      this.m.set(s.name, new Float32Array(numel(s.shape)));
      this.v.set(s.name, new Float32Array(numel(s.shape)));
    }
  }

  static async create(
    config: ModelConfig,
    params: Map<string, Float32Array>,
    opts: HostSessionOptions = {},
  ): Promise<HostTrainSession> {
    const so: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: sessionThreads(opts.threads),
      graphOptimizationLevel: 'all',
      executionProviders: opts.executionProviders ?? ['cpu'],
    };
    const profiling: ort.InferenceSession.SessionOptions = opts.profilePrefix
      ? { enableProfiling: true, profileFilePrefix: opts.profilePrefix }
      : {};
    const frozen = opts.bakeFrozen
      ? new Map(
          paramSpecs(config)
            .filter((s) => s.role === 'frozen')
            .map((s) => [s.name, params.get(s.name)!]),
        )
      : undefined;
    const train = await ort.InferenceSession.create(
      buildTrainGraph(config, { fuseOptimizer: opts.fused, frozen }).encode(),
      { ...so, ...profiling },
    );
    const optimizer = opts.fused ? null : await ort.InferenceSession.create(buildOptimizerGraph(config).encode(), so);
    const evaluator = await ort.InferenceSession.create(buildEvalGraph(config, { frozen }).encode(), so);
    return new HostTrainSession(
      config,
      new Map([...params].map(([k, v]) => [k, Float32Array.from(v)])),
      train,
      optimizer,
      evaluator,
    );
  }

  /** Write the train graph's profile (with `profilePrefix`). */
  endProfiling(): void {
    this.train.endProfiling();
  }

  /** One Adam step on a batch; returns the loss before the update. */
  async trainStep(batch: Batch, lr: number): Promise<number> {
    const c = this.config;
    this.step++;
    const { lrT, epsT } = adamStepScalars(lr, this.step);
    const trainable = paramSpecs(c).filter((s) => s.role === 'trainable');
    const adamFeeds = (): Record<string, ort.Tensor> => {
      const f: Record<string, ort.Tensor> = {
        [io.lr]: new ort.Tensor('float32', [lrT], []),
        [io.eps]: new ort.Tensor('float32', [epsT], []),
      };
      for (const s of trainable) {
        f[io.m(s.name)] = new ort.Tensor('float32', this.m.get(s.name)!, s.shape);
        f[io.v(s.name)] = new ort.Tensor('float32', this.v.get(s.name)!, s.shape);
      }
      return f;
    };
    const feeds = this.feeds(this.train, batch, true);
    let update: ort.InferenceSession.OnnxValueMapType;
    const out = await this.train.run(this.optimizer ? feeds : { ...feeds, ...adamFeeds() });
    if (this.optimizer) {
      const opt: Record<string, ort.Tensor> = adamFeeds();
      for (const s of trainable) {
        opt[io.param(s.name)] = feeds[io.param(s.name)]!;
        opt[io.grad(s.name)] = out[io.grad(s.name)]!;
      }
      update = await this.optimizer.run(opt);
    } else update = out;
    for (const s of trainable) {
      this.params.set(s.name, update[io.newParam(s.name)]!.data as Float32Array);
      this.m.set(s.name, update[io.newM(s.name)]!.data as Float32Array);
      this.v.set(s.name, update[io.newV(s.name)]!.data as Float32Array);
    }
    for (const n of ['bn.running_mean', 'bn.running_var'])
      this.params.set(n, out[io.newParam(n)]!.data as Float32Array);
    return (out[io.loss]!.data as Float32Array)[0]!;
  }

  async evaluate(batch: Batch): Promise<{ loss: number; probs: Float32Array }> {
    const out = await this.evaluator.run(this.feeds(this.evaluator, batch, false));
    return { loss: (out[io.loss]!.data as Float32Array)[0]!, probs: out[io.probs]!.data as Float32Array };
  }

  /** The feeds of `session`: batch and parameters, less the frozen tensors baked into its graph. */
  private feeds(session: ort.InferenceSession, batch: Batch, train: boolean): Record<string, ort.Tensor> {
    const f = batchFeeds(this.config, batch, this.params, train);
    for (const name of Object.keys(f)) if (!session.inputNames.includes(name)) delete f[name];
    return f;
  }

  async release(): Promise<void> {
    await this.train.release();
    await this.optimizer?.release();
    await this.evaluator.release();
  }
}
