// Layer norms rewritten as instance norms (src/quantize/norms.ts), against a float64 computation of
// ONNX's LayerNormalization written here: γ and β folded into a MatMul + Add, a MatMul with no bias
// (β W added after it), a Gemm with transB and C; kept as × γ + β where a reader is no dense layer;
// a norm over two axes; one reading a Transpose; and left alone where its axis or scale do not spell out the normalized axes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { fastNorms } from '../../src/quantize/norms.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';

const rng = new Rng(53);
const randn = (n: number, s: number, m = 0): Float64Array =>
  Float64Array.from({ length: n }, () => Math.fround(m + (rng.next() - 0.5) * 2 * s)); // float32 values

/** ONNX LayerNormalization in float64: each row of `k` values, population variance, then × γ + β. */
function layerNorm(x: Float64Array, k: number, eps: number, g: Float64Array, b?: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / k; r++) {
    const row = x.subarray(r * k, (r + 1) * k);
    const mean = row.reduce((a, v) => a + v, 0) / k;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / k;
    for (let i = 0; i < k; i++) y[r * k + i] = ((row[i]! - mean) / Math.sqrt(variance + eps)) * g[i]! + (b?.[i] ?? 0);
  }
  return y;
}
/** x [rows, k] · W, with W [k, n] (or [n, k] when `transB`), plus `bias`. */
function dense(
  x: Float64Array,
  k: number,
  w: Float64Array,
  n: number,
  transB: boolean,
  bias?: Float64Array,
): Float64Array {
  const y = new Float64Array((x.length / k) * n);
  for (let r = 0; r < x.length / k; r++)
    for (let j = 0; j < n; j++) {
      let s = bias?.[j] ?? 0;
      for (let i = 0; i < k; i++) s += x[r * k + i]! * w[transB ? j * k + i : i * n + j]!;
      y[r * n + j] = s;
    }
  return y;
}

const [T, K, N] = [5, 24, 20];
const x = randn(2 * T * K, 3, 1.5); // rows far from zero mean, as activations are
const g1 = randn(K, 0.8, 1);
const b1 = randn(K, 0.5);
const w1 = randn(K * N, 0.4);
const c1 = randn(N, 0.3);
const w2 = randn(N * K, 0.4);
const c2 = randn(N, 0.3);
const w3 = randn(K * N, 0.4);
const g4 = randn(T * K, 0.5, 1);
const b4 = randn(T * K, 0.5);

function model(): Uint8Array {
  const g = new Graph('norms');
  const f = (name: string, dims: number[], v: Float64Array): string =>
    g.initializer(name, 'float32', dims, Float32Array.from(v));
  const input = g.input('x', 'float32', [2, T, K]);
  const ln = (name: string, gamma: string, beta?: string, axis = -1, eps = 1e-3): string =>
    g.op('LayerNormalization', beta ? [input, gamma, beta] : [input, gamma], { axis: A.i(axis), epsilon: A.f(eps) });
  const gamma = f('g1', [K], g1);
  const beta = f('b1', [K], b1);
  // 1: MatMul + Add reads it alone → folded.
  g.output(
    g.op('Add', [g.op('MatMul', [ln('a', gamma, beta), f('w1', [K, N], w1)]), f('c1', [N], c1)]),
    'y1',
    'float32',
    [2, T, N],
  );
  // 2: a Gemm (transB, C) and a MatMul without bias read it → folded into both, β W added after the MatMul.
  const n2 = g.op('Reshape', [ln('b', gamma, beta), g.const([2 * T, K])]);
  const flat = g.op('LayerNormalization', [n2, gamma, beta], { axis: A.i(-1), epsilon: A.f(1e-3) });
  g.output(g.op('Gemm', [flat, f('w2', [N, K], w2), f('c2', [N], c2)], { transB: A.i(1) }), 'y2', 'float32', [
    2 * T,
    N,
  ]);
  g.output(g.op('MatMul', [flat, f('w3', [K, N], w3)]), 'y3', 'float32', [2 * T, N]);
  // 3: read by a Relu too → × γ + β kept.
  g.output(g.op('Relu', [ln('c', gamma, beta)]), 'y4', 'float32', [2, T, K]);
  // 4: over the last two axes, γ and β [T, K].
  g.output(ln('d', f('g4', [T, K], g4), f('b4', [T, K], b4), -2, 1e-5), 'y5', 'float32', [2, T, K]);
  // 5: a positive axis (its rank unknown here) and a γ with an axis of 1 more than it normalizes: left as they are.
  g.output(ln('e', gamma, beta, 2), 'y6', 'float32', [2, T, K]);
  g.output(ln('f', f('g6', [1, K], new Float64Array(K).fill(1.5))), 'y7', 'float32', [2, T, K]);
  // 6: reading a Transpose (ConvNeXt's NCHW → NHWC): its shape is read through a Reshape, not from the Transpose.
  const xt = g.op('Transpose', [input], { perm: A.ints([1, 0, 2]) });
  g.output(g.op('LayerNormalization', [xt, gamma], { axis: A.i(-1), epsilon: A.f(1e-3) }), 'y8', 'float32', [T, 2, K]);
  return g.encode();
}

/** x [2, T, K] as [T, 2, K]. */
const swapped = (v: Float64Array): Float64Array =>
  Float64Array.from(v, (_, i) => {
    const [t, b, k] = [Math.floor(i / (2 * K)), Math.floor(i / K) % 2, i % K];
    return v[(b * T + t) * K + k]!;
  });

test('layer norms as instance norms equal a float64 LayerNormalization, γ and β folded where only dense layers read them', async () => {
  const before = model();
  const r = fastNorms(before);
  assert.deepEqual([r.count, r.folded], [6, 2]);
  const { node: nodes, initializer } = decodeModel(r.bytes).graph;
  const ops = nodes.map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'LayerNormalization').length, 2, 'the positive-axis and broadcast-γ norms stay');
  assert.equal(ops.filter((o) => o === 'InstanceNormalization').length, 6);
  // ONNX Runtime moves a Shape above the Transpose it reads, where a convolution's blocked output would
  // then be converted back to NCHW just for it: no Shape reads a Transpose.
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n.op_type] as const)));
  for (const n of nodes.filter((m) => m.op_type === 'Shape'))
    assert.notEqual(producer.get(n.input[0]!), 'Transpose', `Shape ${n.name} reads a Transpose`);
  const inits = initializer.map((t) => t.name);
  for (const gone of ['w1', 'c1', 'w2', 'c2', 'w3']) assert.ok(!inits.includes(gone), `${gone} was replaced, not kept`);
  assert.ok(inits.includes('g1') && inits.includes('b1'), 'γ and β still read by the unfolded norms');

  const session = await ort.InferenceSession.create(r.bytes);
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, T, K]) });
  await session.release();
  const n1 = layerNorm(x, K, 1e-3, g1, b1);
  // The second norm runs twice over the same rows (inside a Reshape): normalizing again is not identity.
  const nn = layerNorm(n1, K, 1e-3, g1, b1);
  const want: Record<string, Float64Array> = {
    y1: dense(n1, K, w1, N, false, c1),
    y2: dense(nn, K, w2, N, true, c2),
    y3: dense(nn, K, w3, N, false),
    y4: n1.map((v) => Math.max(0, v)),
    y5: layerNorm(x, T * K, 1e-5, g4, b4),
    y6: layerNorm(x, K, 1e-3, g1, b1),
    y7: layerNorm(x, K, 1e-3, new Float64Array(K).fill(1.5)),
    y8: layerNorm(swapped(x), K, 1e-3, g1),
  };
  for (const [name, w] of Object.entries(want)) {
    const got = out[name]!.data as Float32Array;
    assert.equal(got.length, w.length, name);
    const err = Math.max(...Array.from(w, (v, i) => Math.abs(v - got[i]!) / (Math.abs(v) + 1)));
    assert.ok(err < 2e-5, `${name}: error ${err} against float64`);
  }
});

test('a model without layer norms comes back byte for byte', () => {
  const g = new Graph('plain');
  const input = g.input('x', 'float32', [2, K]);
  g.output(g.op('Relu', [input]), 'y', 'float32', [2, K]);
  const bytes = g.encode();
  const r = fastNorms(bytes);
  assert.equal(r.count, 0);
  assert.deepEqual(Buffer.from(r.bytes), Buffer.from(bytes));
});
