// The training engine seam: what runs the training graphs with the model state held by the engine. Two
// implementations: NativeEngine (the C++ addon, native-engine.ts: state on the device, CPU or CUDA) and
// OrtEngine (onnxruntime-node, ort-engine.ts: state in JS memory, CPU only). TrainSession sits above
// them and validates every argument once; `engineOptions` fills the one options object both load.
import { adamConstants, buildCopyGraph, buildEvalGraph, buildTrainGraph } from '../../training/graphs.js';
import { hasDropout, inputOf, io, paramSpecs, type ModelConfig, type ParamRole } from '../../training/params.js';
import { sessionThreads } from '../runtime/threads.js';
import { encodeModel } from '../onnx/proto.js';
import { mixedPrecision } from '../../training/precision.js';

export interface EngineSpec {
  name: string;
  role: ParamRole;
  shape: number[];
}

/** Graph names the engine binds (training/params.ts `io`), checked against the graphs at load. */
export interface EngineIoNames {
  /** The batch input: `image` of the VGG16 model, `embedding` of a head (training/params.ts inputOf). */
  input: string;
  labels: string;
  keep: string;
  loss: string;
  probs: string;
  lr: string;
  eps: string;
  lossScale: string;
  gradsFinite: string;
  copyIn: string;
  copyOut: string;
  gradPrefix: string;
  newPrefix: string;
  mPrefix: string;
  vPrefix: string;
}

/** fused: Adam inside the step graph; in-place: one C++ pass over the state after the train graph (NativeEngine, CPU). */
export type AdamPlacement = 'fused' | 'in-place';
export type EngineDevice = 'cpu' | 'cuda';

export interface EngineOptions {
  /** The step graph: train + Adam when fused, train alone (loss, gradients) in place. */
  trainModel: Uint8Array;
  evalModel: Uint8Array;
  copyModel: Uint8Array;
  adam: AdamPlacement;
  /** [β1, 1−β1, β2, 1−β2] as the graphs' float32 constants hold them (for the in-place Adam). */
  adamConstants: number[];
  device: EngineDevice;
  deviceId: number;
  tf32: boolean;
  /** Further CUDA provider options, from CUDA_OPTION_VALUES only. */
  cudaOptions?: Record<string, string>;
  intraOpThreads: number;
  interOpThreads: number;
  /** One batch item's shape and type: a uint8 image (S, S, 3) or a float16 embedding (D). */
  inputDims: readonly number[];
  inputType: 'uint8' | 'float16';
  tags: number;
  hidden: number;
  hasKeep: boolean;
  /** The train graph takes io.lossScale and outputs io.gradsFinite (float16 training). */
  lossScale: boolean;
  /** Frozen tensors are initializers of the train and eval graphs, not inputs (still part of the state). */
  bakedFrozen: boolean;
  io: EngineIoNames;
  specs: EngineSpec[];
}

export interface StepOutcome {
  loss: number;
  applied: boolean;
}

/** The state as the engines hold it: params in spec order, Adam m and v in trainable order. */
export interface EngineState {
  params: Float32Array[];
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * One call at a time (a second is rejected while one runs), nothing after dispose. Arguments are not
 * checked here: TrainSession checks them once for both engines.
 */
export interface TrainEngine {
  readonly busy: boolean;
  /** Whether state is held (false before load and after dispose). */
  readonly loaded: boolean;
  load(options: EngineOptions, params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void>;
  setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void>;
  /**
   * One step on n images; resolves to the loss before the update and whether the update was made
   * (false only under loss scaling, for a non-finite gradient: every value stays as it was). lrT and
   * epsT: Adam's bias-corrected scalars; lossScale: the loss scale (used when options.lossScale).
   */
  step(
    images: Uint8Array,
    labels: Uint8Array,
    keep: Uint8Array | null,
    n: number,
    lrT: number,
    epsT: number,
    lossScale?: number,
  ): Promise<StepOutcome>;
  evaluate(images: Uint8Array, labels: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }>;
  /**
   * Host copies of the state: into `into` when given (arrays of the specs' sizes, reused between calls
   * so a snapshot costs one copy and no page faults), else into new arrays.
   */
  getState(into?: EngineState): Promise<EngineState>;
  dispose(): void;
}

/**
 * The CUDA provider levers the benches try (ONNX Runtime's CUDA EP options) and the values each may
 * take; the trainer keeps the provider's defaults until a lever measures faster on a GPU.
 */
export const CUDA_OPTION_VALUES: Readonly<Record<string, readonly string[]>> = {
  cudnn_conv_algo_search: ['EXHAUSTIVE', 'HEURISTIC', 'DEFAULT'],
  cudnn_conv_use_max_workspace: ['0', '1'],
  prefer_nhwc: ['0', '1'],
};

/** `options` checked against CUDA_OPTION_VALUES; the error names the option and what it may be. */
export function checkCudaOptions(options: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(options)) {
    const allowed = CUDA_OPTION_VALUES[k];
    if (!allowed)
      throw new RangeError(
        `Expected a CUDA option among ${Object.keys(CUDA_OPTION_VALUES).join(', ')} but received ${JSON.stringify(k)}`,
      );
    if (!allowed.includes(v))
      throw new RangeError(`Expected ${allowed.join(' or ')} for CUDA option ${k} but received ${JSON.stringify(v)}`);
  }
  return { ...options };
}

/** The graph names, from the graphs' own `io` table. */
export const ENGINE_IO: EngineIoNames = {
  input: io.image,
  labels: io.labels,
  keep: io.keep,
  loss: io.loss,
  probs: io.probs,
  lr: io.lr,
  eps: io.eps,
  lossScale: io.lossScale,
  gradsFinite: io.gradsFinite,
  copyIn: io.copyIn,
  copyOut: io.copyOut,
  gradPrefix: io.prefix.grad,
  newPrefix: io.prefix.new,
  mPrefix: io.prefix.m,
  vPrefix: io.prefix.v,
};

export interface EngineChoices {
  device: EngineDevice;
  adam: AdamPlacement;
  deviceId?: number;
  tf32?: boolean;
  /** Further CUDA provider options (checkCudaOptions). */
  cudaOptions?: Record<string, string>;
  /** float16 graphs with dynamic loss scaling (training/precision.ts). */
  fp16?: boolean;
  /** Threads inside one op (0 = one per core). */
  intraOpThreads?: number;
  interOpThreads?: number;
  /** The frozen tensors to bake into the graphs as initializers (absent: frozen tensors are inputs). */
  frozen?: Map<string, Float32Array>;
}

/** The graphs of `config` and every option, as both engines load them. */
export function engineOptions(config: ModelConfig, o: EngineChoices): EngineOptions {
  const { frozen } = o;
  const lossScale = o.fp16 === true;
  const input = inputOf(config);
  const train = buildTrainGraph(config, { fuseOptimizer: o.adam === 'fused', frozen, device: o.device, lossScale });
  return {
    trainModel: encodeModel(lossScale ? mixedPrecision(train.toJson()).model : train.toJson()),
    evalModel: buildEvalGraph(config, { frozen }).encode(),
    copyModel: buildCopyGraph().encode(),
    adam: o.adam,
    adamConstants: adamConstants(),
    device: o.device,
    deviceId: o.deviceId ?? 0,
    tf32: o.tf32 ?? false,
    ...(o.cudaOptions ? { cudaOptions: checkCudaOptions(o.cudaOptions) } : {}),
    intraOpThreads: sessionThreads(o.intraOpThreads),
    interOpThreads: o.interOpThreads ?? 0,
    inputDims: input.dims,
    inputType: input.dtype,
    tags: config.tags,
    hidden: config.hidden,
    hasKeep: hasDropout(config),
    lossScale,
    bakedFrozen: frozen !== undefined,
    io: { ...ENGINE_IO, input: input.name },
    specs: paramSpecs(config).map((s) => ({ name: s.name, role: s.role, shape: s.shape })),
  };
}
