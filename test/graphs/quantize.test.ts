// The int8 export's numerics: per-channel weight quantization checked element by element, and the
// whole int8 graph (as ONNX Runtime runs it, on integer kernels) against a float64 forward that rounds
// weights and activations at the same points; ONNX Runtime must actually fuse it to QLinearConv.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { buildCalibrationGraph, buildInferenceGraph, RANGE } from '../../training/graphs.js';
import { featureCount, POOL_AFTER, type ModelConfig } from '../../training/params.js';
import { decodeModel } from '../../src/onnx/proto.js';
import {
  activationQuant,
  buildInt8InferenceGraph,
  quantizeWeights,
  WEIGHT_QMAX,
  type ActivationRanges,
} from '../../training/int8.js';
import { conv3x3, dense, maxpool2, relu } from '../../training/reference.js';
import { Rng } from '../../training/rng.js';
import { tempDir } from '../helpers.js';

test('weights on 7 bits: two uint8 × int8 products fit int16, as the non-VNNI kernels add them (ORT reduce_range)', () => {
  // x86 without VNNI: vpmaddubsw sums two uint8 × int8 products into a saturating int16.
  const pairMax = (q: number): number => 2 * 255 * q;
  assert.ok(pairMax(WEIGHT_QMAX) <= 32767, `2·255·${WEIGHT_QMAX} fits int16`);
  assert.ok(pairMax(2 ** 7 - 1) > 32767, 'full 8-bit weights overflow');
  assert.equal(WEIGHT_QMAX, 2 ** 6 - 1, "7-bit signed weights, as onnxruntime.quantization's reduce_range");
});

test("weights: int8 per output channel, each channel's largest |w| at ±63, every value within half a step", () => {
  const rng = new Rng(5);
  const rows = 7;
  const cols = 13;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => (rng.next() * 2 - 1) * (1 + (i % rows)) * 0.01);
  for (const axis of [0, 1] as const) {
    const { q, scale } = quantizeWeights(w, rows, cols, axis);
    assert.equal(scale.length, axis === 0 ? rows : cols);
    for (let ch = 0; ch < scale.length; ch++) {
      const idx = Array.from({ length: axis === 0 ? cols : rows }, (_, k) =>
        axis === 0 ? ch * cols + k : k * cols + ch,
      );
      const amax = Math.max(...idx.map((i) => Math.abs(w[i]!)));
      assert.ok(Math.abs(scale[ch]! - amax / 63) <= 1e-6 * amax);
      assert.equal(Math.max(...idx.map((i) => Math.abs(q[i]!))), 63);
      for (const i of idx)
        assert.ok(Math.abs(q[i]! * scale[ch]! - w[i]!) <= scale[ch]! / 2 + 1e-9, `axis ${axis} [${i}]`);
    }
  }
  const a = activationQuant(-1.5, 3);
  assert.equal(a.zero, Math.round(1.5 / a.scale));
  assert.ok(Math.abs(a.scale - 4.5 / 255) < 1e-12);
  assert.deepEqual(activationQuant(0, 2), { scale: 2 / 255, zero: 0 });
});

/** x rounded to the uint8 grid (scale, zero), half to even as QuantizeLinear, and back. */
function fakeQuant(x: Float64Array, q: { scale: number; zero: number }): Float64Array {
  const even = (v: number): number => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
  return x.map((v) => (Math.max(0, Math.min(255, even(v / q.scale) + q.zero)) - q.zero) * q.scale);
}

/** The int8 model's computation in float64: the same rounding points, exact arithmetic between them. */
function referenceInt8(
  c: ModelConfig,
  p: Map<string, Float32Array>,
  r: ActivationRanges,
  images: Uint8Array,
  n: number,
): { probs: Float64Array; features: Float64Array } {
  const s = c.imageSize;
  let x: Float64Array = new Float64Array(n * 3 * s * s);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < 3; k++)
      for (let i = 0; i < s * s; i++)
        x[(b * 3 + k) * s * s + i] = (images[(b * s * s + i) * 3 + k]! / 255 - c.mean[k]!) / c.std[k]!;
  let inQ = activationQuant(
    Math.min(...c.mean.map((m, k) => -m / c.std[k]!)),
    Math.max(...c.mean.map((m, k) => (1 - m) / c.std[k]!)),
  );
  x = fakeQuant(x, inQ);
  let h = s;
  let ch = 3;
  for (let i = 0; i < 13; i++) {
    const co = c.widths[i]!;
    const wq = quantizeWeights(p.get(`conv${i + 1}.weight`)!, co, ch * 9, 0);
    const w = Float64Array.from(wq.q, (v, j) => v * wq.scale[Math.floor(j / (ch * 9))]!);
    const b = Float64Array.from(
      p.get(`conv${i + 1}.bias`)!,
      (v, o) => Math.round(v / (inQ.scale * wq.scale[o]!)) * inQ.scale * wq.scale[o]!,
    );
    inQ = activationQuant(0, r.relu[i]!);
    x = fakeQuant(relu(conv3x3(x, n, ch, h, h, w, b, co)), inQ);
    ch = co;
    if (POOL_AFTER.has(i)) [x, h] = [maxpool2(x, n, ch, h, h), h >> 1];
  }
  const f = featureCount(c);
  const g = (k: string): Float32Array => p.get(k)!;
  const mul = Float64Array.from(g('bn.gamma'), (gm, j) => gm / Math.sqrt(g('bn.running_var')[j]! + c.bnEpsilon));
  const bn = fakeQuant(
    x.map((v, i) => (v - g('bn.running_mean')[i % f]!) * mul[i % f]! + g('bn.beta')[i % f]!),
    activationQuant(r.bn[0], r.bn[1]),
  );
  const dq = (name: string, rows: number, cols: number): Float64Array => {
    const wq = quantizeWeights(g(name), rows, cols, 1);
    return Float64Array.from(wq.q, (v, j) => v * wq.scale[j % cols]!);
  };
  const features = relu(dense(bn, n, f, dq('fc1.weight', f, c.hidden), g('fc1.bias'), c.hidden));
  const logits = dense(
    fakeQuant(features, activationQuant(0, r.hidden)),
    n,
    c.hidden,
    dq('fc2.weight', c.hidden, c.tags),
    g('fc2.bias'),
    c.tags,
  );
  return { probs: logits.map((z) => 1 / (1 + Math.exp(-z))), features };
}

test('the int8 graph, run by ONNX Runtime on QLinearConv, equals a float64 forward with the same rounding; fp32 stays close', async (t) => {
  const c = gradcheckConfig({ tags: 6, hidden: 16 });
  const params = randomParams(c, 11);
  const n = 4;
  const batch = randomBatch(c, n, 2);
  const image = new ort.Tensor('uint8', batch.images, [n, c.imageSize, c.imageSize, 3]);
  const cal = await ort.InferenceSession.create(buildCalibrationGraph(c, params).encode());
  const out = await cal.run({ image });
  const v = (k: string): number => Number(out[k]!.data[0]);
  const ranges: ActivationRanges = {
    relu: Array.from({ length: 13 }, (_, i) => v(RANGE.relu(i))),
    bn: [v(RANGE.bnMin), v(RANGE.bnMax)],
    hidden: v(RANGE.hidden),
  };
  const dir = await tempDir();
  const optimized = path.join(dir, 'int8.opt.onnx');
  const s8 = await ort.InferenceSession.create(buildInt8InferenceGraph(c, params, ranges).encode(), {
    graphOptimizationLevel: 'extended',
    optimizedModelFilePath: optimized,
  });
  const ops = decodeModel(await readFile(optimized)).graph!.node!.map((nd) => nd.op_type);
  assert.equal(
    ops.filter((o) => o === 'QLinearConv').length,
    13,
    `ORT runs every conv on integers: ${[...new Set(ops)]}`,
  );
  assert.equal(ops.filter((o) => o === 'MatMulInteger').length, 2);
  const got = await s8.run({ image });
  const ref = referenceInt8(c, params, ranges, batch.images, n);
  const worst = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
    Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
  const hiddenStep = ranges.hidden / 255;
  // Between rounding points ORT accumulates in int32 and float32: a value on a rounding boundary may
  // land one step over, so the bound is one hidden step (features) and its effect on the probabilities.
  const dFeat = worst(got.features!.data as Float32Array, ref.features);
  const dProb = worst(got.probs!.data as Float32Array, ref.probs);
  t.diagnostic(
    `int8 graph vs float64: features |Δ| ${dFeat.toExponential(2)} (one step ${hiddenStep.toExponential(2)}), probs |Δ| ${dProb.toExponential(2)}`,
  );
  assert.ok(dFeat <= hiddenStep, `features |Δ| ${dFeat} vs one step ${hiddenStep}`);
  assert.ok(dProb <= 1e-3, `probs |Δ| ${dProb}`);
  const s32 = await ort.InferenceSession.create(buildInferenceGraph(c, params).encode());
  const fp = await s32.run({ image });
  const dFp = worst(got.probs!.data as Float32Array, fp.probs!.data as Float32Array);
  assert.ok(dFp > 0 && dFp < 0.05, `int8 vs fp32 probs |Δ| ${dFp}`);
  await Promise.all([cal.release(), s8.release(), s32.release()]);
});
