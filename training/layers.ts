// Layers as pairs of graph builders, forward next to backward (llm.c style), in standard ONNX ops.
// Letters: N batch, C/Ci/Co channels, H×W spatial, F flattened features, D hidden units, K tags.
// Each backward takes what its forward saved and the gradient of its output, and returns gradients.
import { A, type Graph } from '../src/onnx/graph.js';

// ---- input normalization (no backward: nothing below it is trainable) ----

/**
 * uint8 image (N, S, S, 3) RGB → float (N, 3, S, S), x·(1/(255·std)) − mean/std per channel, by Mul
 * and Add or (`batchnorm`) by a BatchNormalization with mean 0, variance 1 and ε 0, equal to the last
 * bit on every value measured. The train graph on the CPU takes the second: there ONNX Runtime's
 * transpose optimizer moved the Transpose below Mul and Add, to merge it with the one conv1's dW
 * takes, so both ran on floats with a 3-wide innermost axis (docs/ARCHITECTURE.md, "Layer rules").
 * CUDA clamps a BatchNormalization's ε to 1e-5, so it keeps Mul and Add.
 */
export function normalizeForward(
  g: Graph,
  image: string,
  mean: readonly number[],
  std: readonly number[],
  affine: 'muladd' | 'batchnorm' = 'muladd',
): string {
  const nchw = g.op('Transpose', [image], { perm: A.ints([0, 3, 1, 2]) }, 'image_nchw');
  const f = g.op('Cast', [nchw], { to: A.i(1) }, 'image_f');
  const scale = std.map((s) => 1 / (255 * s));
  const shift = mean.map((m, i) => -m / std[i]!);
  if (affine === 'muladd')
    return g.op(
      'Add',
      [g.op('Mul', [f, g.const(scale, 'float32', [1, 3, 1, 1])]), g.const(shift, 'float32', [1, 3, 1, 1])],
      {},
      'x0',
    );
  const [zero, one] = [g.const([0, 0, 0], 'float32', [3]), g.const([1, 1, 1], 'float32', [3])];
  return g.op(
    'BatchNormalization',
    [f, g.const(scale, 'float32', [3]), g.const(shift, 'float32', [3]), zero, one],
    { epsilon: A.f(0) },
    'x0',
  );
}

// ---- conv 3×3, stride 1, pad 1 ----

/** (N, Ci, H, W) · W (Co, Ci, 3, 3) + b (Co) → (N, Co, H, W) */
export function convForward(g: Graph, x: string, w: string, b: string, hint = 'conv'): string {
  return g.op(
    'Conv',
    [x, w, b],
    { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]), strides: A.ints([1, 1]) },
    hint,
  );
}

export interface ConvGrads {
  dx?: string;
  dw: string;
  db: string;
}

/** A conv layer's sizes: input and output channels, and the (input = output) height and width. */
export interface ConvDims {
  ci: number;
  co: number;
  h: number;
  w: number;
  /** dW through one im2col (true) or 9 windows (false); by default by IM2COL_MAX_BYTES. */
  im2col?: boolean;
}

/**
 * The largest im2col per image (9·Ci·H·W floats) that dW builds whole. Above it, dW takes the 9
 * windows one at a time instead, each a ninth of the memory (a 64-channel 224² layer's im2col would
 * be 9·64·224²·4 bytes per image; docs/ARCHITECTURE.md, "Layer rules").
 */
export const IM2COL_MAX_BYTES = 4 * 2 ** 20;

/** Per graph, the im2col index of each spatial size (one initializer per H×W). */
const im2colIndex = new WeakMap<Graph, Map<string, string>>();

/**
 * For each of the 9 kernel offsets (kh, kw) and each output position (y, x), the flat position
 * (y + kh)·(W + 2) + x + kw in the zero-padded (H+2)×(W+2) grid: Gather with it lays X out as im2col.
 */
function im2colIndices(g: Graph, h: number, w: number): string {
  let byGraph = im2colIndex.get(g);
  if (!byGraph) im2colIndex.set(g, (byGraph = new Map()));
  const key = `${h}x${w}`;
  const hit = byGraph.get(key);
  if (hit) return hit;
  const idx = new Int32Array(9 * h * w);
  let k = 0;
  for (let kh = 0; kh < 3; kh++)
    for (let kw = 0; kw < 3; kw++)
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) idx[k++] = (y + kh) * (w + 2) + x + kw;
  const name = g.initializer(`im2col_${key}`, 'int32', [idx.length], idx);
  byGraph.set(key, name);
  return name;
}

/**
 * dY (N, Co, H, W) → dX (N, Ci, H, W) as a convolution with W transposed and flipped (same cost as
 * the forward); dW (Co, Ci, 3, 3) as GEMMs of dY against X laid out as im2col, whole (one Gather)
 * or a window at a time (docs/ARCHITECTURE.md, "Engine facts"); dB. dX is skipped when `needDx` is
 * false (the first trainable layer).
 */
export function convBackward(
  g: Graph,
  x: string,
  w: string,
  dy: string,
  dims: ConvDims,
  needDx: boolean,
  hint = 'conv',
): ConvGrads {
  const { ci, co, h, w: wd } = dims;
  const db = g.op('ReduceSum', [dy, g.const([0, 2, 3])], { keepdims: A.i(0) }, `${hint}_db`);
  // Both operands with the batch innermost, (C, H, W, N): a window's copy then moves runs of N floats
  // (Gather) or W·N floats (Slice), not rows of W.
  const dyT = g.op('Transpose', [dy], { perm: A.ints([1, 2, 3, 0]) });
  const dyM = g.op('Reshape', [dyT, g.const([co, -1])]); // (Co, H·W·N)
  const xT = g.op('Transpose', [x], { perm: A.ints([1, 2, 3, 0]) });
  const xp = g.op('Pad', [xT, g.const([0, 1, 1, 0, 0, 1, 1, 0])]); // (Ci, H+2, W+2, N)
  let dw: string;
  if (dims.im2col ?? 9 * ci * h * wd * 4 <= IM2COL_MAX_BYTES) {
    const xf = g.op('Reshape', [xp, g.const([ci, (h + 2) * (wd + 2), -1])]);
    const col = g.op('Gather', [xf, im2colIndices(g, h, wd)], { axis: A.i(1) }); // (Ci, 9·H·W, N)
    const colM = g.op('Reshape', [col, g.const([ci * 9, -1])]); // (Ci·9, H·W·N): row i·9 + kh·3 + kw
    const dwM = g.op('Gemm', [dyM, colM], { transB: A.i(1) }); // (Co, Ci·9)
    dw = g.op('Reshape', [dwM, g.const([co, ci, 3, 3])], {}, `${hint}_dw`);
  } else {
    const parts: string[] = [];
    for (let kh = 0; kh < 3; kh++) {
      for (let kw = 0; kw < 3; kw++) {
        const win = g.op('Slice', [xp, g.const([kh, kw]), g.const([kh + h, kw + wd]), g.const([1, 2])]);
        const winM = g.op('Reshape', [win, g.const([ci, -1])]); // (Ci, H·W·N)
        parts.push(g.op('Unsqueeze', [g.op('Gemm', [dyM, winM], { transB: A.i(1) }), g.const([2])])); // (Co, Ci, 1)
      }
    }
    dw = g.op('Reshape', [g.op('Concat', parts, { axis: A.i(2) }), g.const([co, ci, 3, 3])], {}, `${hint}_dw`);
  }
  if (!needDx) return { dw, db };
  // W (Co, Ci, 3, 3) → (Ci, Co, 3, 3) flipped in both spatial axes.
  const wT = g.op('Transpose', [w], { perm: A.ints([1, 0, 2, 3]) });
  const wF = g.op('Slice', [wT, g.const([-1, -1]), g.const([-4, -4]), g.const([2, 3]), g.const([-1, -1])]);
  const dx = g.op('Conv', [dy, wF], { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]) }, `${hint}_dx`);
  return { dx, dw, db };
}

// ---- ReLU ----

export function reluForward(g: Graph, x: string, hint = 'relu'): string {
  return g.op('Relu', [x], {}, hint);
}

/**
 * Gradient through ReLU, from its output y (y > 0 where the input was > 0): dY · float(y > 0). The
 * same values as Where(y > 0, dY, 0) (a masked entry is −0 where dY < 0, which adds as 0), and faster
 * in ONNX Runtime, whose Where is a generic broadcasting loop (docs/ARCHITECTURE.md, "Layer rules").
 */
export function reluBackward(g: Graph, y: string, dy: string): string {
  const mask = g.op('Cast', [g.op('Greater', [y, g.const(0, 'float32')])], { to: A.i(1) });
  return g.op('Mul', [dy, mask]);
}

// ---- max-pool 2×2, stride 2 ----

/** (N, C, H, W) → (N, C, H/2, W/2), the fast MaxPool kernel (no Indices output). */
export function maxpoolForward(g: Graph, x: string, hint = 'pool'): string {
  return g.op('MaxPool', [x], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }, hint);
}

/**
 * The forward of a max-pool whose backward is taken by maxpoolUnpoolBackward: MaxPool with its Indices
 * output (the flat position of each window's first maximum, as ONNX Runtime's CPU kernel scans it).
 */
export function maxpoolForwardWithIndices(g: Graph, x: string, hint = 'pool'): { y: string; indices: string } {
  const [y, indices] = g.node('MaxPool', [x], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }, [
    hint,
    `${hint}_indices`,
  ]);
  return { y: y!, indices: indices! };
}

/**
 * dY (N, C, H/2, W/2) → dX (N, C, H, W) by MaxUnpool: each gradient is written at its window's
 * first maximum, zeros elsewhere. The same result as maxpoolBackward, ties included, in two ops
 * instead of seven (faster with the forward: docs/ARCHITECTURE.md, "Layer rules"); CPU only (no CUDA
 * kernel).
 */
export function maxpoolUnpoolBackward(g: Graph, x: string, dy: string, indices: string): string {
  return g.op(
    'MaxUnpool',
    [dy, indices, g.op('Shape', [x])],
    { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) },
    'pool_dx',
  );
}

/**
 * dY (N, C, H/2, W/2) → dX (N, C, H, W): SpaceToDepth lays each 2×2 window along a new axis, ArgMax
 * picks the first maximum (as MaxPool's Indices would, so ties get the gradient once), and
 * DepthToSpace puts the routed gradient back. Faster than MaxPool-with-Indices + ScatterElements.
 */
export function maxpoolBackward(g: Graph, x: string, dy: string, c: number): string {
  const s2d = g.op('SpaceToDepth', [x], { blocksize: A.i(2) }); // (N, 4·C, H/2, W/2), block-major
  const shape5 = g.op(
    'Concat',
    [g.op('Shape', [s2d], { end: A.i(1) }), g.const([4, c]), g.op('Shape', [s2d], { start: A.i(2) })],
    { axis: A.i(0) },
  );
  const win = g.op('Reshape', [s2d, shape5]); // (N, 4, C, H/2, W/2)
  const arg = g.op('ArgMax', [win], { axis: A.i(1), keepdims: A.i(1), select_last_index: A.i(0) }); // (N, 1, C, h, w)
  const hit = g.op('Equal', [arg, g.const([0, 1, 2, 3], 'int64', [1, 4, 1, 1, 1])]); // (N, 4, C, h, w)
  const dy5 = g.op('Unsqueeze', [dy, g.const([1])]);
  const routed = g.op('Where', [hit, dy5, g.const(0, 'float32')]);
  const flat = g.op('Reshape', [routed, g.op('Shape', [s2d])]);
  return g.op('DepthToSpace', [flat], { blocksize: A.i(2), mode: A.s('DCR') }, 'pool_dx');
}

// ---- batch normalization over features (N, F), Keras semantics ----

export interface BatchNormSaved {
  y: string;
  xhat: string;
  inv: string;
  mean: string;
  var: string;
}

/** Training mode: batch mean and biased variance; y = γ·x̂ + β. */
export function batchnormForward(g: Graph, x: string, gamma: string, beta: string, eps: number): BatchNormSaved {
  const mean = g.op('ReduceMean', [x], { axes: A.ints([0]), keepdims: A.i(1) }, 'bn_mean'); // (1, F)
  const xc = g.op('Sub', [x, mean]);
  const v = g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: A.ints([0]), keepdims: A.i(1) }, 'bn_var');
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [v, g.const(eps, 'float32')])])], {}, 'bn_inv');
  const xhat = g.op('Mul', [xc, inv], {}, 'bn_xhat');
  const y = g.op('Add', [g.op('Mul', [xhat, gamma]), beta], {}, 'bn_y');
  return { y, xhat, inv, mean, var: v };
}

/** Inference mode: running statistics. */
export function batchnormInference(
  g: Graph,
  x: string,
  gamma: string,
  beta: string,
  runMean: string,
  runVar: string,
  eps: number,
): string {
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [runVar, g.const(eps, 'float32')])])]);
  return g.op('Add', [g.op('Mul', [g.op('Mul', [g.op('Sub', [x, runMean]), inv]), gamma]), beta], {}, 'bn_y');
}

/** New running stats: r·momentum + batch·(1 − momentum), as (F). */
export function batchnormRunningUpdate(
  g: Graph,
  s: BatchNormSaved,
  runMean: string,
  runVar: string,
  momentum: number,
): { mean: string; var: string } {
  const m = g.const(momentum, 'float32');
  const k = g.const(1 - momentum, 'float32');
  const upd = (run: string, batch: string): string =>
    g.op('Add', [g.op('Mul', [run, m]), g.op('Mul', [g.op('Squeeze', [batch, g.const([0])]), k])]);
  return { mean: upd(runMean, s.mean), var: upd(runVar, s.var) };
}

/** dY (N, F) → dX = inv·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dY·γ; dγ, dβ (F). */
export function batchnormBackward(
  g: Graph,
  s: BatchNormSaved,
  gamma: string,
  dy: string,
  needDx: boolean,
): { dx?: string; dgamma: string; dbeta: string } {
  const axes0 = g.const([0]);
  const dgamma = g.op('ReduceSum', [g.op('Mul', [dy, s.xhat]), axes0], { keepdims: A.i(0) }, 'bn_dgamma');
  const dbeta = g.op('ReduceSum', [dy, axes0], { keepdims: A.i(0) }, 'bn_dbeta');
  if (!needDx) return { dgamma, dbeta };
  const dxh = g.op('Mul', [dy, gamma]);
  const m1 = g.op('ReduceMean', [dxh], { axes: A.ints([0]), keepdims: A.i(1) });
  const m2 = g.op('ReduceMean', [g.op('Mul', [dxh, s.xhat])], { axes: A.ints([0]), keepdims: A.i(1) });
  const dx = g.op('Mul', [g.op('Sub', [g.op('Sub', [dxh, m1]), g.op('Mul', [s.xhat, m2])]), s.inv], {}, 'bn_dx');
  return { dx, dgamma, dbeta };
}

// ---- dense: (N, I) · W (I, O) + b (O) → (N, O), Keras kernel layout ----

export function denseForward(g: Graph, x: string, w: string, b: string, hint = 'dense'): string {
  return g.op('Gemm', [x, w, b], {}, hint);
}

export function denseBackward(
  g: Graph,
  x: string,
  w: string,
  dy: string,
  needDx: boolean,
  hint = 'dense',
): { dx?: string; dw: string; db: string } {
  const dw = g.op('Gemm', [x, dy], { transA: A.i(1) }, `${hint}_dw`);
  const db = g.op('ReduceSum', [dy, g.const([0])], { keepdims: A.i(0) }, `${hint}_db`);
  if (!needDx) return { dw, db };
  return { dx: g.op('Gemm', [dy, w], { transB: A.i(1) }, `${hint}_dx`), dw, db };
}

// ---- dropout with a host-made keep mask (N, D) bool: exact replay on resume and across devices ----

export function dropoutForward(g: Graph, x: string, keep: string, rate: number): string {
  return g.op(
    'Where',
    [keep, g.op('Mul', [x, g.const(1 / (1 - rate), 'float32')]), g.const(0, 'float32')],
    {},
    'dropout',
  );
}

export function dropoutBackward(g: Graph, keep: string, dy: string, rate: number): string {
  return dropoutForward(g, dy, keep, rate);
}

// ---- binary cross-entropy on logits z (N, K) against labels y (N, K) in {0, 1}: mean over N·K ----

/** mean(Relu(z) − z·y + Softplus(−|z|)): stable for any |z|. */
export function bceForward(g: Graph, z: string, y: string): string {
  const terms = g.op('Add', [
    g.op('Sub', [g.op('Relu', [z]), g.op('Mul', [z, y])]),
    g.op('Softplus', [g.op('Neg', [g.op('Abs', [z])])]),
  ]);
  return g.op('ReduceMean', [terms], { keepdims: A.i(0) }, 'loss');
}

/**
 * Binary cross-entropy with a weight w (K) on each tag's positive term, mean over N·K:
 * (1 − y)·softplus(z) + w·y·softplus(−z), in the stable form softplus(±z) = relu(±z) + softplus(−|z|).
 * At w = 1 it is bceForward. Returns the loss and dz = (σ(z)·(1 + (w − 1)·y) − w·y)/(N·K).
 */
export function weightedBce(g: Graph, z: string, y: string, w: string): { loss: string; dz: string } {
  const tail = g.op('Softplus', [g.op('Neg', [g.op('Abs', [z])])]);
  const spPos = g.op('Add', [g.op('Relu', [z]), tail]);
  const spNeg = g.op('Add', [g.op('Sub', [g.op('Relu', [z]), z]), tail]);
  const wy = g.op('Mul', [y, w], {}, 'pos_weight_y');
  const terms = g.op('Add', [g.op('Sub', [spPos, g.op('Mul', [y, spPos])]), g.op('Mul', [wy, spNeg])]);
  const loss = g.op('ReduceMean', [terms], { keepdims: A.i(0) }, 'loss');
  const one = g.const(1, 'float32');
  const coef = g.op('Add', [one, g.op('Mul', [y, g.op('Sub', [w, one])])]);
  const count = g.op('Cast', [g.op('Size', [z])], { to: A.i(1) });
  const dz = g.op('Div', [g.op('Sub', [g.op('Mul', [g.op('Sigmoid', [z]), coef]), wy]), count], {}, 'dlogits');
  return { loss, dz };
}

/** dz = (σ(z) − y)/(N·K) */
export function bceBackward(g: Graph, z: string, y: string): string {
  const count = g.op('Cast', [g.op('Size', [z])], { to: A.i(1) });
  return g.op('Div', [g.op('Sub', [g.op('Sigmoid', [z]), y]), count], {}, 'dlogits');
}
