// The int8 inference model, in ONNX's QDQ form: every conv and dense layer reads its input through
// QuantizeLinear → DequantizeLinear (uint8 activations, one scale per tensor, calibrated) and its
// weights through DequantizeLinear (int8 on 7 bits, one scale per output channel, symmetric). ONNX Runtime's
// graph optimizer fuses each DQ → Conv → ReLU → Q into one QLinearConv on integer dot products
// (VNNI where the CPU has it); any other runtime can run the same file as plain float ops.
import { A, Graph } from '../src/onnx/graph.js';
import { maxpoolForward, normalizeForward } from './layers.js';
import { checkConfig, featureCount, io, numel, paramSpecs, POOL_AFTER, type ModelConfig, PARAM } from './params.js';

/** Activation ranges measured on calibration images (max of each conv's ReLU, BN output min/max, hidden max). */
export interface ActivationRanges {
  relu: number[];
  bn: [number, number];
  hidden: number;
}

/**
 * The largest |q| of a weight: 7 bits, as ONNX Runtime's quantizer does with `reduce_range` for CPUs
 * without VNNI. There, ORT's uint8 × int8 kernels add pairs of products into int16 with saturation
 * (AVX2's vpmaddubsw): 2 · 255 · 127 = 64,770 overflows 32,767, while 2 · 255 · 63 = 32,130 fits. An
 * exported model runs on whatever CPU its user has, so every export takes the range that is exact on all.
 */
export const WEIGHT_QMAX = 63;

/** Symmetric int8 per output channel: `w` laid out with `channels` along `axis` 0 (rows) or 1 (columns). */
export function quantizeWeights(
  w: Float32Array,
  rows: number,
  cols: number,
  axis: 0 | 1,
): { q: Int8Array; scale: Float32Array } {
  const channels = axis === 0 ? rows : cols;
  const amax = new Float64Array(channels);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const ch = axis === 0 ? r : c;
      const v = Math.abs(w[r * cols + c]!);
      if (v > amax[ch]!) amax[ch] = v;
    }
  }
  const scale = Float32Array.from(amax, (m) => (m > 0 ? m / WEIGHT_QMAX : 1));
  const q = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      q[i] = Math.max(-WEIGHT_QMAX, Math.min(WEIGHT_QMAX, Math.round(w[i]! / scale[axis === 0 ? r : c]!)));
    }
  }
  return { q, scale };
}

/** uint8 scale and zero point covering [lo, hi] (which always includes 0, so 0 is exact). */
export function activationQuant(lo: number, hi: number): { scale: number; zero: number } {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const scale = b > a ? (b - a) / 255 : 1;
  return { scale, zero: Math.max(0, Math.min(255, Math.round(-a / scale))) };
}

class QdqBuilder {
  constructor(readonly g: Graph) {}

  /** x (float) → uint8 → float again at (scale, zero): where the runtime switches to integers. */
  fakeQuant(x: string, q: { scale: number; zero: number }, hint: string): string {
    return this.dq(this.quant(x, q, hint), q, hint);
  }

  quant(x: string, q: { scale: number; zero: number }, hint: string): string {
    const s = this.g.initializer(`${hint}_scale`, 'float32', [], Float32Array.of(q.scale));
    const z = this.g.initializer(`${hint}_zero`, 'uint8', [], Uint8Array.of(q.zero));
    return this.g.op('QuantizeLinear', [x, s, z], {}, `${hint}_q`);
  }

  dq(x: string, q: { scale: number; zero: number }, hint: string): string {
    const s = this.g.initializer(`${hint}_dscale`, 'float32', [], Float32Array.of(q.scale));
    const z = this.g.initializer(`${hint}_dzero`, 'uint8', [], Uint8Array.of(q.zero));
    return this.g.op('DequantizeLinear', [x, s, z], {}, `${hint}_dq`);
  }

  /** int8 weights with per-channel scales along `axis`, dequantized in the graph. */
  weight(name: string, dims: number[], w: { q: Int8Array; scale: Float32Array }, axis: number): string {
    const q = this.g.initializer(`${name}_int8`, 'int8', dims, w.q);
    const s = this.g.initializer(`${name}_scale`, 'float32', [w.scale.length], w.scale);
    const z = this.g.initializer(`${name}_zero`, 'int8', [w.scale.length], new Int8Array(w.scale.length));
    return this.g.op('DequantizeLinear', [q, s, z], { axis: A.i(axis) }, `${name}_dq`);
  }

  /** A bias as int32 at scale (input scale × weight scale), as QLinearConv wants it. */
  bias(name: string, b: Float32Array, inScale: number, wScale: Float32Array): string {
    const scale = Float32Array.from(wScale, (s) => s * inScale);
    const q = Int32Array.from(b, (v, i) => Math.round(v / scale[i]!));
    const qi = this.g.initializer(`${name}_int32`, 'int32', [b.length], q);
    const s = this.g.initializer(`${name}_scale`, 'float32', [b.length], scale);
    const z = this.g.initializer(`${name}_zero`, 'int32', [b.length], new Int32Array(b.length));
    return this.g.op('DequantizeLinear', [qi, s, z], { axis: A.i(0) }, `${name}_dq`);
  }
}

/**
 * The int8 twin of buildInferenceGraph: same input `image` and outputs `probs` and `features`, with
 * weights stored as int8 (a quarter of the bytes) and activations quantized at `ranges`.
 */
export function buildInt8InferenceGraph(
  c: ModelConfig,
  params: Map<string, Float32Array>,
  ranges: ActivationRanges,
): Graph {
  checkConfig(c);
  for (const s of paramSpecs(c)) {
    if (params.get(s.name)?.length !== numel(s.shape))
      throw new RangeError(`parameter ${s.name}: expected ${numel(s.shape)} values for shape [${s.shape}]`);
  }
  const g = new Graph('alt_i2v_int8');
  const b = new QdqBuilder(g);
  const p = (n: string): Float32Array => params.get(n)!;
  // The normalized input spans a range known from the mean and std: no calibration needed.
  const lo = Math.min(...c.mean.map((m, i) => -m / c.std[i]!));
  const hi = Math.max(...c.mean.map((m, i) => (1 - m) / c.std[i]!));
  let inQ = activationQuant(lo, hi);
  let x = b.fakeQuant(
    normalizeForward(g, g.input(io.image, 'uint8', ['N', c.imageSize, c.imageSize, 3]), c.mean, c.std),
    inQ,
    'x0',
  );
  let ci = 3;
  for (let i = 0; i < 13; i++) {
    const co = c.widths[i]!;
    const wq = quantizeWeights(p(PARAM.convWeight(i)), co, ci * 9, 0);
    const w = b.weight(PARAM.convWeight(i), [co, ci, 3, 3], wq, 0);
    const bias = b.bias(PARAM.convBias(i), p(PARAM.convBias(i)), inQ.scale, wq.scale);
    const conv = g.op(
      'Conv',
      [x, w, bias],
      { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]), strides: A.ints([1, 1]) },
      `conv${i + 1}`,
    );
    inQ = activationQuant(0, ranges.relu[i]!);
    x = b.fakeQuant(g.op('Relu', [conv], {}, `relu${i + 1}`), inQ, `relu${i + 1}`);
    if (POOL_AFTER.has(i)) x = b.fakeQuant(maxpoolForward(g, x, `pool_${i + 1}`), inQ, `pool_${i + 1}`);
    ci = co;
  }
  const flat = g.op('Flatten', [x], { axis: A.i(1) }, 'flat');
  const bnY = batchnormAffine(g, c, p);
  const h = g.op(
    'Relu',
    [dense(b, bnY, activationQuant(ranges.bn[0], ranges.bn[1]), 'fc1', featureCount(c), c.hidden, p)],
    {},
    'features_relu',
  );
  const logits = dense(b, h, activationQuant(0, ranges.hidden), 'fc2', c.hidden, c.tags, p);
  g.output(g.op('Sigmoid', [logits]), io.probs, 'float32', ['N', c.tags]);
  g.output(h, io.features, 'float32', ['N', c.hidden]);
  return g;

  function batchnormAffine(gr: Graph, cfg: ModelConfig, pp: (n: string) => Float32Array): string {
    // Inference BN as one multiply-add per feature, folded on the host in float64.
    const gamma = pp(PARAM.bnGamma);
    const mul = Float32Array.from(gamma, (gm, j) => gm / Math.sqrt(pp(PARAM.bnVar)[j]! + cfg.bnEpsilon));
    const add = Float32Array.from(mul, (m, j) => pp(PARAM.bnBeta)[j]! - pp(PARAM.bnMean)[j]! * m);
    const f = featureCount(cfg);
    return gr.op(
      'Add',
      [
        gr.op('Mul', [flat, gr.initializer('bn_mul', 'float32', [f], mul)]),
        gr.initializer('bn_add', 'float32', [f], add),
      ],
      {},
      'bn_y',
    );
  }
}

/**
 * x (N, rows) · W (rows, cols) + bias with W int8 per column and x quantized at `inQ`: MatMulInteger on
 * (uint8, int8) then one float multiply per column, which ONNX Runtime fuses into MatMulIntegerToFloat
 * (its QDQ MatMul fusion needs per-tensor weight scales, and the head's columns differ too much for one).
 */
function dense(
  b: QdqBuilder,
  x: string,
  inQ: { scale: number; zero: number },
  name: string,
  rows: number,
  cols: number,
  p: (n: string) => Float32Array,
): string {
  const g = b.g;
  const w = quantizeWeights(p(`${name}.weight`), rows, cols, 1);
  const xq = b.quant(x, inQ, `${name}_in`);
  const xz = g.initializer(`${name}_in_mzero`, 'uint8', [], Uint8Array.of(inQ.zero));
  const wq = g.initializer(`${name}.weight_int8`, 'int8', [rows, cols], w.q);
  const wz = g.initializer(`${name}.weight_zero`, 'int8', [], Int8Array.of(0));
  const acc = g.op('MatMulInteger', [xq, wq, xz, wz], {}, `${name}_mmi`);
  const scale = g.initializer(
    `${name}_scale`,
    'float32',
    [cols],
    Float32Array.from(w.scale, (s) => s * inQ.scale),
  );
  const y = g.op('Mul', [g.op('Cast', [acc], { to: A.i(1) }, `${name}_acc`), scale], {}, `${name}_mm`);
  return g.op('Add', [y, g.initializer(`${name}.bias`, 'float32', [cols], p(`${name}.bias`))], {}, name);
}
