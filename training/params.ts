// The model's parameters and names: its configuration (widths, size, hidden width, tags, freeze depth),
// the parameter list with roles and initial values, and the names the graphs give their inputs and outputs.
import { Rng } from './rng.js';

/** VGG16's 13 conv widths; a max-pool follows convs 2, 4, 7, 10 and 13. */
export const VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512] as const;
export const VGG16_TINY_WIDTHS = [8, 8, 16, 16, 24, 24, 24, 32, 32, 32, 32, 32, 32] as const;
export const POOL_AFTER = new Set([1, 3, 6, 9, 12]);
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface ModelConfig {
  /**
   * A head over a frozen tagger's embedding (`pairs --backbone`): the input is the embedding, float16
   * (N, D), instead of an image, and there is no conv trunk (widths, imageSize and freeze unused).
   * With hidden 0 the head is one linear layer (fc2 of D × K), without BN.
   */
  embedding?: number;
  /**
   * Weights on each tag's positive term of the training loss (length tags, each ≥ 1): few positives
   * against many negatives (train --pos-weight auto). Absent: plain binary cross-entropy.
   */
  posWeight?: number[];
  /** Output channels of the 13 convs. */
  widths: number[];
  /** Input side S, a multiple of 32. */
  imageSize: number;
  hidden: number;
  /** Number of tags K (rows of tags.csv). */
  tags: number;
  /** Convs frozen from the bottom (Keras layers[:12] = 8). */
  freeze: number;
  dropout: number;
  bnMomentum: number;
  bnEpsilon: number;
  mean: number[];
  std: number[];
}

export function defaultConfig(over: Partial<ModelConfig> & Pick<ModelConfig, 'tags'>): ModelConfig {
  return {
    widths: [...VGG16_WIDTHS],
    imageSize: 224,
    hidden: 5000,
    freeze: 8,
    dropout: 0.3,
    bnMomentum: 0.99,
    bnEpsilon: 0.001,
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
    ...over,
  };
}

/** Checks a config; the message names the field and what was expected. */
export function checkConfig(c: ModelConfig): void {
  const bad = (what: string): never => {
    throw new RangeError(`model config: ${what}`);
  };
  if (c.embedding !== undefined) {
    if (!Number.isInteger(c.embedding) || c.embedding < 1)
      bad(`expected an embedding width ≥ 1 but received ${c.embedding}`);
    if (!Number.isInteger(c.hidden) || c.hidden < 0) bad(`expected hidden ≥ 0 but received ${c.hidden}`);
  } else {
    if (c.widths.length !== 13 || !c.widths.every((w) => Number.isInteger(w) && w > 0))
      bad(`expected 13 positive integer conv widths but received [${c.widths}]`);
    if (!Number.isInteger(c.imageSize) || c.imageSize < 32 || c.imageSize % 32 !== 0)
      bad(`expected imageSize a multiple of 32 (≥ 32) but received ${c.imageSize}`);
    if (!Number.isInteger(c.hidden) || c.hidden < 1) bad(`expected hidden ≥ 1 but received ${c.hidden}`);
    if (!Number.isInteger(c.freeze) || c.freeze < 0 || c.freeze > 13)
      bad(`expected freeze between 0 and 13 but received ${c.freeze}`);
  }
  if (!Number.isInteger(c.tags) || c.tags < 1) bad(`expected tags ≥ 1 but received ${c.tags}`);
  if (c.posWeight !== undefined && (c.posWeight.length !== c.tags || !c.posWeight.every((w) => w >= 1 && w <= 1e6)))
    bad(`expected ${c.tags} positive weights between 1 and 1e6 but received ${c.posWeight.length}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) bad(`expected dropout in [0, 1) but received ${c.dropout}`);
}

export type ParamRole = 'trainable' | 'frozen' | 'state';

export interface ParamSpec {
  name: string;
  shape: number[];
  role: ParamRole;
  init: 'glorot' | 'zeros' | 'ones';
  /** Glorot fans. */
  fanIn?: number;
  fanOut?: number;
}

/** The width of what the head's BN reads: VGG16's flattened pool5, or the embedding. */
export const featureCount = (c: ModelConfig): number => c.embedding ?? c.widths[12]! * (c.imageSize / 32) ** 2;

/** Whether the head has its hidden layer (BN, fc1, ReLU, dropout) before fc2: all but a linear embedding head. */
export const hasHidden = (c: ModelConfig): boolean => c.hidden > 0;

/** Whether the train graph takes a dropout keep mask (N, hidden): a hidden layer with dropout. */
export const hasDropout = (c: ModelConfig): boolean => hasHidden(c) && c.dropout > 0;

/** The model's input per item: a uint8 letterboxed image (S, S, 3), or a float16 embedding (D). */
export function inputOf(c: ModelConfig): { name: string; dtype: 'uint8' | 'float16'; dims: number[]; bytes: number } {
  if (c.embedding !== undefined)
    return { name: io.embedding, dtype: 'float16', dims: [c.embedding], bytes: c.embedding * 2 };
  const s = c.imageSize;
  return { name: io.image, dtype: 'uint8', dims: [s, s, 3], bytes: s * s * 3 };
}

/** The names of the model's tensors, as checkpoints and graphs know them (`paramSpecs` lists them all). */
export const PARAM = {
  /** conv i (0-based) of the 13: `conv1.weight` … `conv13.weight`. */
  convWeight: (i: number): string => `conv${i + 1}.weight`,
  convBias: (i: number): string => `conv${i + 1}.bias`,
  bnGamma: 'bn.gamma',
  bnBeta: 'bn.beta',
  bnMean: 'bn.running_mean',
  bnVar: 'bn.running_var',
  fc1Weight: 'fc1.weight',
  fc1Bias: 'fc1.bias',
  fc2Weight: 'fc2.weight',
  fc2Bias: 'fc2.bias',
} as const;

/** Every tensor of model state in a fixed order: convs, BN (γ, β, running mean, var), fc1, fc2. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  let cin = 3;
  if (c.embedding === undefined)
    c.widths.forEach((co, i) => {
      const role: ParamRole = i < c.freeze ? 'frozen' : 'trainable';
      specs.push({
        name: PARAM.convWeight(i),
        shape: [co, cin, 3, 3],
        role,
        init: 'glorot',
        fanIn: cin * 9,
        fanOut: co * 9,
      });
      specs.push({ name: PARAM.convBias(i), shape: [co], role, init: 'zeros' });
      cin = co;
    });
  const f = featureCount(c);
  if (hasHidden(c)) {
    specs.push({ name: PARAM.bnGamma, shape: [f], role: 'trainable', init: 'ones' });
    specs.push({ name: PARAM.bnBeta, shape: [f], role: 'trainable', init: 'zeros' });
    specs.push({ name: PARAM.bnMean, shape: [f], role: 'state', init: 'zeros' });
    specs.push({ name: PARAM.bnVar, shape: [f], role: 'state', init: 'ones' });
    specs.push({
      name: PARAM.fc1Weight,
      shape: [f, c.hidden],
      role: 'trainable',
      init: 'glorot',
      fanIn: f,
      fanOut: c.hidden,
    });
    specs.push({ name: PARAM.fc1Bias, shape: [c.hidden], role: 'trainable', init: 'zeros' });
  }
  const into = hasHidden(c) ? c.hidden : f;
  specs.push({
    name: PARAM.fc2Weight,
    shape: [into, c.tags],
    role: 'trainable',
    init: 'glorot',
    fanIn: into,
    fanOut: c.tags,
  });
  specs.push({ name: PARAM.fc2Bias, shape: [c.tags], role: 'trainable', init: 'zeros' });
  return specs;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** A dropout keep mask (N, D) as bytes 0/1, drawn from `rng`: made on the host so runs replay exactly. */
export function dropoutKeepMask(rng: Rng, n: number, hidden: number, rate: number): Uint8Array {
  return rng.fillKeep(new Uint8Array(n * hidden), rate);
}

/** Keras-style initial values, seeded: Glorot uniform kernels, zero biases, BN γ = 1, β = 0. */
export function initParams(c: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const s of paramSpecs(c)) {
    const a = new Float32Array(numel(s.shape));
    if (s.init === 'ones') a.fill(1);
    else if (s.init === 'glorot') {
      const limit = Math.sqrt(6 / (s.fanIn! + s.fanOut!));
      for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * limit;
    }
    out.set(s.name, a);
  }
  return out;
}

/** Prefixes of per-tensor graph names: grad:P, new:P, adam_m:P, adam_v:P, new:adam_m:P, new:adam_v:P. */
const PREFIX = { grad: 'grad:', new: 'new:', m: 'adam_m:', v: 'adam_v:' } as const;

/**
 * Graph names of the tensors the trainer binds: the one contract between these graphs and whoever runs
 * them (the native engine receives these names in its options and checks them against the graphs).
 */
export const io = {
  image: 'image',
  /** The embedding input of a head over a frozen tagger (ModelConfig.embedding). */
  embedding: 'embedding',
  labels: 'labels',
  keep: 'dropout_keep',
  loss: 'loss',
  probs: 'probs',
  features: 'features',
  lr: 'adam_lr_t',
  eps: 'adam_eps_t',
  /** Loss scaling (TrainGraphOptions.lossScale): the scale in, whether every gradient is finite out. */
  lossScale: 'loss_scale',
  gradsFinite: 'grads_finite',
  copyIn: 'x',
  copyOut: 'y',
  prefix: PREFIX,
  param: (n: string): string => n,
  grad: (n: string): string => `${PREFIX.grad}${n}`,
  newParam: (n: string): string => `${PREFIX.new}${n}`,
  m: (n: string): string => `${PREFIX.m}${n}`,
  v: (n: string): string => `${PREFIX.v}${n}`,
  newM: (n: string): string => `${PREFIX.new}${PREFIX.m}${n}`,
  newV: (n: string): string => `${PREFIX.new}${PREFIX.v}${n}`,
};
