// The seed's VGG16 transfer model as graphs: train (loss, gradients, new BN running stats; with
// `fuseOptimizer`, Adam's update too), eval (loss, probabilities) and inference (uint8 image → probs,
// features). Configurable widths, input size, hidden width, tag count and freeze depth.
import { A, Graph } from '../src/onnx/graph.js';
import {
  batchnormBackward,
  batchnormForward,
  batchnormInference,
  batchnormRunningUpdate,
  bceBackward,
  bceForward,
  weightedBce,
  convBackward,
  convForward,
  denseBackward,
  denseForward,
  dropoutBackward,
  dropoutForward,
  maxpoolBackward,
  maxpoolForward,
  maxpoolForwardWithIndices,
  maxpoolUnpoolBackward,
  normalizeForward,
  reluBackward,
  reluForward,
} from './layers.js';
import {
  ModelConfig,
  POOL_AFTER,
  ParamRole,
  checkConfig,
  featureCount,
  hasDropout,
  hasHidden,
  io,
  numel,
  paramSpecs,
  PARAM,
} from './params.js';
import { adamScalars, adamUpdate, unscale } from './optimizer.js';

export { ADAM, adamConstants, adamStepScalars } from './optimizer.js';

interface Forward {
  logits: string;
  features: string;
  /** Saved values for backward. */
  convOut: string[];
  convIn: string[];
  poolIn: Map<number, string>;
  /** MaxPool Indices of the pools whose backward is a MaxUnpool. */
  poolIndices: Map<number, string>;
  flat: string;
  pool5: string;
  bn?: ReturnType<typeof batchnormForward>;
  bnY: string;
  h: string;
  hd: string;
}

type Trunk = Pick<Forward, 'convIn' | 'convOut' | 'poolIn' | 'poolIndices' | 'pool5' | 'flat'>;

/** VGG16's 13 convs and 5 pools over the normalized uint8 image, flattened: (N, F). */
function vggTrunk(
  g: Graph,
  c: ModelConfig,
  p: (name: string) => string,
  mode: 'train' | 'eval',
  device: GraphDevice,
): Trunk {
  const s = c.imageSize;
  // The train graph on the CPU: a BatchNormalization affine (see normalizeForward), MaxUnpool pools.
  const cpuTrain = mode === 'train' && device === 'cpu';
  let x = normalizeForward(
    g,
    g.input(io.image, 'uint8', ['N', s, s, 3]),
    c.mean,
    c.std,
    cpuTrain ? 'batchnorm' : 'muladd',
  );
  const convIn: string[] = [];
  const convOut: string[] = [];
  const poolIn = new Map<number, string>();
  const poolIndices = new Map<number, string>();
  for (let i = 0; i < 13; i++) {
    convIn.push(x);
    const a = reluForward(
      g,
      convForward(g, x, p(PARAM.convWeight(i)), p(PARAM.convBias(i)), `conv${i + 1}`),
      `relu${i + 1}`,
    );
    convOut.push(a);
    x = a;
    if (POOL_AFTER.has(i)) {
      poolIn.set(i, a);
      if (cpuTrain && i >= c.freeze) {
        const m = maxpoolForwardWithIndices(g, a, `pool_${i + 1}`);
        poolIndices.set(i, m.indices);
        x = m.y;
      } else {
        x = maxpoolForward(g, a, `pool_${i + 1}`);
      }
    }
  }
  const pool5 = x;
  const flat = g.op('Flatten', [pool5], { axis: A.i(1) }, 'flat'); // (N, F)
  return { convIn, convOut, poolIn, poolIndices, pool5, flat };
}

/** A frozen tagger's embedding, stored float16, as float32 (N, D): the head's input. */
function embeddingTrunk(g: Graph, c: ModelConfig): Trunk {
  const x = g.input(io.embedding, 'float16', ['N', c.embedding!]);
  const flat = g.op('Cast', [x], { to: A.i(1) }, 'flat');
  return { convIn: [], convOut: [], poolIn: new Map(), poolIndices: new Map(), pool5: flat, flat };
}

function buildForward(
  g: Graph,
  c: ModelConfig,
  p: (name: string) => string,
  mode: 'train' | 'eval',
  device: GraphDevice = 'cpu',
): Forward {
  const t = c.embedding === undefined ? vggTrunk(g, c, p, mode, device) : embeddingTrunk(g, c);
  const { convIn, convOut, poolIn, poolIndices, pool5, flat } = t;
  if (!hasHidden(c)) {
    const logits = denseForward(g, flat, p(PARAM.fc2Weight), p(PARAM.fc2Bias), 'logits'); // (N, K)
    return { logits, features: flat, convOut, convIn, poolIn, poolIndices, flat, pool5, bnY: flat, h: flat, hd: flat };
  }
  let bn: Forward['bn'];
  let bnY: string;
  if (mode === 'train') {
    bn = batchnormForward(g, flat, p(PARAM.bnGamma), p(PARAM.bnBeta), c.bnEpsilon);
    bnY = bn.y;
  } else {
    bnY = batchnormInference(g, flat, p(PARAM.bnGamma), p(PARAM.bnBeta), p(PARAM.bnMean), p(PARAM.bnVar), c.bnEpsilon);
  }
  const h = reluForward(g, denseForward(g, bnY, p(PARAM.fc1Weight), p(PARAM.fc1Bias), 'fc1'), 'features_relu'); // (N, D)
  const hd =
    mode === 'train' && hasDropout(c) ? dropoutForward(g, h, g.input(io.keep, 'bool', ['N', c.hidden]), c.dropout) : h;
  const logits = denseForward(g, hd, p(PARAM.fc2Weight), p(PARAM.fc2Bias), 'logits'); // (N, K)
  return { logits, features: h, convOut, convIn, poolIn, poolIndices, flat, pool5, bn, bnY, h, hd };
}

function labelsFloat(g: Graph, c: ModelConfig): string {
  return g.op('Cast', [g.input(io.labels, 'uint8', ['N', c.tags])], { to: A.i(1) }, 'labels_f');
}

function paramInputs(
  g: Graph,
  c: ModelConfig,
  roles: ParamRole[],
  baked?: ReadonlyMap<string, Float32Array>,
): (name: string) => string {
  const names = new Map<string, string>();
  for (const s of paramSpecs(c)) {
    if (!roles.includes(s.role)) continue;
    const value = s.role === 'frozen' ? baked?.get(s.name) : undefined;
    names.set(
      s.name,
      value
        ? g.initializer(`frozen_${s.name}`, 'float32', s.shape, value)
        : g.input(io.param(s.name), 'float32', s.shape),
    );
  }
  return (n) => {
    const v = names.get(n);
    if (!v) throw new Error(`no input for ${n}`);
    return v;
  };
}

/** Adds the backward pass of the train graph; returns gradient value names by parameter name. */
function buildBackward(
  g: Graph,
  c: ModelConfig,
  p: (n: string) => string,
  f: Forward,
  dlogits: string,
): Map<string, string> {
  const grads = new Map<string, string>();
  const fc2 = denseBackward(g, f.hd, p(PARAM.fc2Weight), dlogits, hasHidden(c), 'fc2');
  grads.set(PARAM.fc2Weight, fc2.dw).set(PARAM.fc2Bias, fc2.db);
  if (!hasHidden(c)) return grads;
  const dh = hasDropout(c) ? dropoutBackward(g, io.keep, fc2.dx!, c.dropout) : fc2.dx!;
  const dpre1 = reluBackward(g, f.h, dh);
  const fc1 = denseBackward(g, f.bnY, p(PARAM.fc1Weight), dpre1, true, 'fc1');
  grads.set(PARAM.fc1Weight, fc1.dw).set(PARAM.fc1Bias, fc1.db);
  const anyConv = c.embedding === undefined && c.freeze < 13;
  const bn = batchnormBackward(g, f.bn!, p(PARAM.bnGamma), fc1.dx!, anyConv);
  grads.set(PARAM.bnGamma, bn.dgamma).set(PARAM.bnBeta, bn.dbeta);
  if (!anyConv) return grads;
  let d = g.op('Reshape', [bn.dx!, g.op('Shape', [f.pool5])], {}, 'dpool5'); // (N, C, S/32, S/32)
  for (let i = 12; i >= c.freeze; i--) {
    const indices = f.poolIndices.get(i);
    if (indices) d = maxpoolUnpoolBackward(g, f.poolIn.get(i)!, d, indices);
    else if (f.poolIn.has(i)) d = maxpoolBackward(g, f.poolIn.get(i)!, d, c.widths[i]!);
    const dpre = reluBackward(g, f.convOut[i]!, d);
    const ci = i === 0 ? 3 : c.widths[i - 1]!;
    const size = c.imageSize / 2 ** [...POOL_AFTER].filter((j) => j < i).length;
    const dims = { ci, co: c.widths[i]!, h: size, w: size };
    const r = convBackward(g, f.convIn[i]!, p(PARAM.convWeight(i)), dpre, dims, i > c.freeze, `conv${i + 1}`);
    grads.set(PARAM.convWeight(i), r.dw).set(PARAM.convBias(i), r.db);
    if (r.dx) d = r.dx;
  }
  return grads;
}

/**
 * The device a train graph is built for. On the CPU (default) its max-pool gradients go through
 * MaxPool's Indices and MaxUnpool, and its input affine is a BatchNormalization; CUDA has no MaxUnpool
 * kernel and clamps a BatchNormalization's ε to 1e-5, so there they are SpaceToDepth/ArgMax/DepthToSpace
 * and Mul/Add. Either way the same values (tests).
 */
export type GraphDevice = 'cpu' | 'cuda';

export interface TrainGraphOptions {
  /** Fuse the Adam update into the train graph (one step graph). */
  fuseOptimizer?: boolean;
  /**
   * Frozen conv weights baked in as initializers instead of graph inputs: ONNX Runtime then reorders
   * those convs to its blocked NCHWc kernels, which it does only for constant weights
   * (docs/ARCHITECTURE.md, "Engine facts").
   */
  frozen?: ReadonlyMap<string, Float32Array>;
  /** The device the graph is for (default cpu). */
  device?: GraphDevice;
  /**
   * Dynamic loss scaling (for half-precision gradients): input loss_scale multiplies the loss's
   * gradient, and every parameter gradient is divided by it again in float32; output grads_finite
   * says whether all of them are finite, and with fuseOptimizer a step with a non-finite gradient
   * leaves parameters and moments as they were.
   */
  lossScale?: boolean;
}

/**
 * Train graph. Inputs: image uint8 (N,S,S,3), labels uint8 (N,K), dropout_keep bool (N,D) when
 * dropout > 0, every parameter and BN running stat. Outputs: loss, grad:P for each trainable P,
 * new:bn.running_mean/var. With fuseOptimizer it also takes adam_m/v and the step scalars and
 * outputs new:P, new:adam_m:P, new:adam_v:P instead of the gradients.
 */
export function buildTrainGraph(c: ModelConfig, opts: TrainGraphOptions = {}): Graph {
  checkConfig(c);
  const g = new Graph(opts.fuseOptimizer ? 'alt_i2v_step' : 'alt_i2v_train');
  const p = paramInputs(g, c, ['trainable', 'frozen', 'state'], opts.frozen);
  const f = buildForward(g, c, p, 'train', opts.device);
  const y = labelsFloat(g, c);
  const weighted = c.posWeight
    ? weightedBce(g, f.logits, y, g.const(c.posWeight, 'float32', [c.tags]))
    : { loss: bceForward(g, f.logits, y), dz: bceBackward(g, f.logits, y) };
  g.output(weighted.loss, io.loss, 'float32', []);
  const scale = opts.lossScale ? g.input(io.lossScale, 'float32', []) : undefined;
  const dlogits = weighted.dz;
  const grads = buildBackward(g, c, p, f, scale ? g.op('Mul', [dlogits, scale], {}, 'dlogits_scaled') : dlogits);
  const finite = scale ? unscale(g, grads, scale) : undefined;
  if (finite) g.output(finite, io.gradsFinite, 'bool', []);
  if (f.bn) {
    const run = batchnormRunningUpdate(g, f.bn, p(PARAM.bnMean), p(PARAM.bnVar), c.bnMomentum);
    const fcount = featureCount(c);
    g.output(run.mean, io.newParam(PARAM.bnMean), 'float32', [fcount]);
    g.output(run.var, io.newParam(PARAM.bnVar), 'float32', [fcount]);
  }
  const trainable = paramSpecs(c).filter((s) => s.role === 'trainable');
  if (opts.fuseOptimizer) {
    const scalars = adamScalars(g);
    for (const s of trainable) adamUpdate(g, s, p(s.name), grads.get(s.name)!, scalars, finite);
  } else {
    for (const s of trainable) g.output(grads.get(s.name)!, io.grad(s.name), 'float32', s.shape);
  }
  return g;
}

/** Eval graph: no dropout, running BN stats → loss and probabilities. */
export function buildEvalGraph(c: ModelConfig, opts: Pick<TrainGraphOptions, 'frozen'> = {}): Graph {
  checkConfig(c);
  const g = new Graph('alt_i2v_eval');
  const p = paramInputs(g, c, ['trainable', 'frozen', 'state'], opts.frozen);
  const f = buildForward(g, c, p, 'eval');
  g.output(bceForward(g, f.logits, labelsFloat(g, c)), io.loss, 'float32', []);
  g.output(g.op('Sigmoid', [f.logits]), io.probs, 'float32', ['N', c.tags]);
  return g;
}

/** Identity y = x for float tensors of any shape: the trainer's host ↔ device copies go through it. */
export function buildCopyGraph(): Graph {
  const g = new Graph('alt_i2v_copy');
  g.output(g.op('Identity', [g.input(io.copyIn, 'float32', null)]), io.copyOut, 'float32', null);
  return g;
}

function inferenceGraph(c: ModelConfig, params: Map<string, Float32Array>): { g: Graph; f: Forward } {
  checkConfig(c);
  const g = new Graph('alt_i2v');
  const names = new Map<string, string>();
  for (const s of paramSpecs(c)) {
    const data = params.get(s.name);
    if (!data || data.length !== numel(s.shape))
      throw new RangeError(`parameter ${s.name}: expected ${numel(s.shape)} values for shape [${s.shape}]`);
    names.set(s.name, g.initializer(s.name, 'float32', s.shape, data));
  }
  const f = buildForward(g, c, (n) => names.get(n)!, 'eval');
  g.output(g.op('Sigmoid', [f.logits]), io.probs, 'float32', ['N', c.tags]);
  g.output(f.features, io.features, 'float32', ['N', hasHidden(c) ? c.hidden : featureCount(c)]);
  return { g, f };
}

/** Inference graph with the parameters as initializers: image uint8 (N,S,S,3) → probs (N,K), features (N,D). */
export function buildInferenceGraph(c: ModelConfig, params: Map<string, Float32Array>): Graph {
  return inferenceGraph(c, params).g;
}

/** The output of buildHeadGraph: the head's scores for the new tags. */
export const HEAD_SCORES = 'head_scores';

/**
 * A head over an embedding alone, its parameters as initializers: input `embedding` float16 (N, D)
 * (what the head trained on), output HEAD_SCORES (N, K), probabilities or, with `logits`, the logits
 * before the sigmoid. What a merged model runs on its base's embedding (src/teach/merge.ts).
 */
export function buildHeadGraph(c: ModelConfig, params: Map<string, Float32Array>, logits: boolean): Graph {
  if (c.embedding === undefined) throw new RangeError('buildHeadGraph: a head over an embedding, not VGG16');
  const { g, f } = inferenceGraph(c, params);
  g.output(logits ? f.logits : g.op('Sigmoid', [f.logits]), HEAD_SCORES, 'float32', ['N', c.tags]);
  return g;
}

/** Output names of the calibration graph: the batch's max of each conv's ReLU, min/max of the BN output, max of the hidden ReLU. */
export const RANGE = {
  relu: (i: number): string => `range:relu${i + 1}`,
  bnMin: 'range:bn_min',
  bnMax: 'range:bn_max',
  hidden: 'range:hidden',
} as const;

/** The inference graph plus scalar RANGE outputs: what int8 export calibrates its activation scales from. */
export function buildCalibrationGraph(c: ModelConfig, params: Map<string, Float32Array>): Graph {
  const { g, f } = inferenceGraph(c, params);
  const reduce = (op: string, x: string, name: string): void => {
    g.output(g.op(op, [x], { keepdims: A.i(0) }), name, 'float32', []);
  };
  f.convOut.forEach((x, i) => reduce('ReduceMax', x, RANGE.relu(i)));
  reduce('ReduceMin', f.bnY, RANGE.bnMin);
  reduce('ReduceMax', f.bnY, RANGE.bnMax);
  reduce('ReduceMax', f.h, RANGE.hidden);
  return g;
}
