// Mixed precision (training/precision.ts) and loss scaling (buildTrainGraph lossScale). ONNX Runtime's
// CPU EP runs float16 graphs by casting to float32 around nodes it has no float16 kernel for, so the
// half-precision graphs run here: their loss against a float64 reference, their gradients against the
// float32 graph's, the loss scale's overflow flag and the skipped step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { buildEvalGraph, buildTrainGraph } from '../../training/graphs.js';
import { encodeModel, type ModelJson } from '../../src/onnx/proto.js';
import { dropoutKeepMask, initParams, io, paramSpecs, type ModelConfig } from '../../training/params.js';
import { mixedPrecision, OP_PRECISION } from '../../training/precision.js';
import { referenceForward } from '../../training/reference.js';
import { Rng } from '../../training/rng.js';
import { modelConfigFor } from '../../src/train/run-config.js';

const count = (m: ModelJson, op: string): number => m.graph.node.filter((n) => n.op_type === op).length;

test('every op of every train and eval graph has a precision rule; every Conv and Gemm runs in float16', () => {
  for (const [backbone, size] of [
    ['vgg16-tiny', 32],
    ['vgg16', 224],
  ] as const) {
    const c = modelConfigFor(backbone, 20, size, 32, undefined);
    for (const device of ['cpu', 'cuda'] as const)
      for (const fuseOptimizer of [false, true])
        for (const lossScale of [false, true]) {
          const j = buildTrainGraph(c, { device, fuseOptimizer, lossScale }).toJson();
          const { model, report } = mixedPrecision(j);
          const what = `${backbone} ${device} fused ${fuseOptimizer} scaled ${lossScale}`;
          assert.equal(report.half.Conv, count(j, 'Conv'), what);
          assert.equal(report.half.Gemm, count(j, 'Gemm'), what);
          assert.ok((report.half.Relu ?? 0) >= 13 - c.freeze, `${what}: ReLUs between convs in float16`);
          assert.deepEqual(model.graph.input, j.graph.input, what);
          assert.deepEqual(model.graph.output, j.graph.output, what);
        }
    assert.ok(mixedPrecision(buildEvalGraph(c).toJson()).report.half.Conv! > 0);
  }
  const j = buildEvalGraph(modelConfigFor('vgg16-tiny', 4, 32, 8, 0)).toJson();
  j.graph.node[3] = { ...j.graph.node[3]!, op_type: 'LpNormalization' };
  assert.throws(() => mixedPrecision(j), /no rule for op type LpNormalization .*OP_PRECISION/);
  // What stays float32, by the rules: batch norm, reductions, the loss, Adam's arithmetic.
  for (const op of ['BatchNormalization', 'ReduceMean', 'ReduceSum', 'Softplus', 'Sigmoid', 'Sqrt', 'Div'])
    assert.equal(OP_PRECISION[op], 'float', op);
});

interface Case {
  c: ModelConfig;
  params: Map<string, Float32Array>;
  images: Uint8Array;
  labels: Uint8Array;
  keep: Uint8Array;
  n: number;
}

function makeCase(): Case {
  const c = modelConfigFor('vgg16-tiny', 30, 32, 64, 0);
  const params = initParams(c, 5);
  const rng = new Rng(3);
  const n = 8;
  return {
    c,
    params,
    n,
    images: Uint8Array.from({ length: n * 32 * 32 * 3 }, () => rng.uint32() & 255),
    labels: Uint8Array.from({ length: n * 30 }, () => (rng.next() < 0.2 ? 1 : 0)),
    keep: dropoutKeepMask(rng, n, 64, c.dropout),
  };
}

async function run(
  model: ModelJson,
  k: Case,
  params: Map<string, Float32Array>,
  extra: Record<string, ort.Tensor> = {},
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const s = await ort.InferenceSession.create(encodeModel(model));
  try {
    const feeds: Record<string, ort.Tensor> = {
      [io.image]: new ort.Tensor('uint8', k.images, [k.n, 32, 32, 3]),
      [io.labels]: new ort.Tensor('uint8', k.labels, [k.n, k.c.tags]),
      [io.keep]: new ort.Tensor('bool', k.keep, [k.n, k.c.hidden]),
      ...extra,
    };
    for (const p of paramSpecs(k.c)) feeds[io.param(p.name)] = new ort.Tensor('float32', params.get(p.name)!, p.shape);
    return await s.run(Object.fromEntries(s.inputNames.map((name) => [name, feeds[name]!])));
  } finally {
    await s.release();
  }
}

/** Relative L2 distance ‖a − b‖ / ‖b‖. */
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let nn = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    nn += b[i]! ** 2;
  }
  return Math.sqrt(d / nn);
}

/** x rounded to the nearest float16 value (11 significant bits; normal range). */
const toHalf = (x: number): number => {
  if (x === 0 || !Number.isFinite(x)) return x;
  const q = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
  return Math.round(x / q) * q;
};

test('float16 train graph: loss within 2e-3 of float64, gradients within the float32 graph’s own float16 sensitivity', async () => {
  const k = makeCase();
  const fp32 = buildTrainGraph(k.c, { device: 'cuda' }).toJson();
  const { model: fp16 } = mixedPrecision(fp32);
  const a = await run(fp32, k, k.params);
  const b = await run(fp16, k, k.params);
  // The float32 graph with only its parameters rounded to float16: how much the gradient itself moves
  // at this precision (ReLU and max-pool decisions flip); the float16 graph must move it no more.
  const rounded = new Map([...k.params].map(([name, v]) => [name, Float32Array.from(v, toHalf)]));
  const r = await run(fp32, k, rounded);
  const ref = referenceForward(k.c, k.params, k, 'train').loss;
  const [l32, l16] = [a[io.loss]!.data[0] as number, b[io.loss]!.data[0] as number];
  assert.ok(Math.abs(l32 - ref) / ref < 1e-5, `float32 loss ${l32} vs float64 ${ref}`);
  assert.ok(Math.abs(l16 - ref) / ref < 2e-3, `float16 loss ${l16} vs float64 ${ref}`);
  assert.notEqual(l16, l32, 'the float16 graph computes in float16');
  const lines: string[] = [];
  for (const s of paramSpecs(k.c).filter((x) => x.role === 'trainable')) {
    const want = a[io.grad(s.name)]!.data as Float32Array;
    const err = rel(b[io.grad(s.name)]!.data as Float32Array, want);
    const sensitivity = rel(r[io.grad(s.name)]!.data as Float32Array, want);
    lines.push(`${s.name} ${err.toExponential(1)} (sensitivity ${sensitivity.toExponential(1)})`);
    const head = /^(fc|bn)/.test(s.name);
    assert.ok(head ? err < 5e-3 : err <= Math.max(1e-2, sensitivity), `${s.name}: ${err} (sensitivity ${sensitivity})`);
  }
  console.log(`# float16 vs float32 gradients, relative L2: ${lines.join('; ')}`);
});

test('loss scaling: unscaled gradients equal unscaled ones, overflow flags the step and the fused step keeps every value', async () => {
  const k = makeCase();
  const scale = (v: number): Record<string, ort.Tensor> => ({
    [io.lossScale]: new ort.Tensor('float32', Float32Array.of(v), []),
  });
  const plain = await run(buildTrainGraph(k.c, { device: 'cuda' }).toJson(), k, k.params);
  const scaled32 = buildTrainGraph(k.c, { device: 'cuda', lossScale: true }).toJson();
  const s = await run(scaled32, k, k.params, scale(1024));
  assert.equal(Boolean(s[io.gradsFinite]!.data[0]), true);
  for (const p of paramSpecs(k.c).filter((x) => x.role === 'trainable'))
    assert.ok(
      rel(s[io.grad(p.name)]!.data as Float32Array, plain[io.grad(p.name)]!.data as Float32Array) < 1e-6,
      p.name,
    );
  const fp16 = mixedPrecision(scaled32).model;
  assert.equal(Boolean((await run(fp16, k, k.params, scale(1024)))[io.gradsFinite]!.data[0]), true);
  assert.equal(
    Boolean((await run(fp16, k, k.params, scale(1e9)))[io.gradsFinite]!.data[0]),
    false,
    'float16 overflows',
  );
  assert.equal(
    Boolean((await run(scaled32, k, k.params, scale(1e9)))[io.gradsFinite]!.data[0]),
    true,
    'float32 does not',
  );

  const step = mixedPrecision(buildTrainGraph(k.c, { device: 'cuda', lossScale: true, fuseOptimizer: true }).toJson());
  const trainable = paramSpecs(k.c).filter((x) => x.role === 'trainable');
  const adam: Record<string, ort.Tensor> = {
    [io.lr]: new ort.Tensor('float32', Float32Array.of(0.01), []),
    [io.eps]: new ort.Tensor('float32', Float32Array.of(1e-7), []),
  };
  for (const p of trainable) {
    adam[io.m(p.name)] = new ort.Tensor('float32', new Float32Array(k.params.get(p.name)!.length).fill(0.5), p.shape);
    adam[io.v(p.name)] = new ort.Tensor('float32', new Float32Array(k.params.get(p.name)!.length).fill(0.25), p.shape);
  }
  for (const [v, skipped] of [
    [1e9, true],
    [1024, false],
  ] as const) {
    const out = await run(step.model, k, k.params, { ...adam, ...scale(v) });
    for (const p of trainable) {
      const same = (a: Float32Array, b: Float32Array): boolean =>
        Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
      assert.equal(same(out[io.newParam(p.name)]!.data as Float32Array, k.params.get(p.name)!), skipped, p.name);
      assert.equal(same(out[io.newM(p.name)]!.data as Float32Array, adam[io.m(p.name)]!.data as Float32Array), skipped);
      assert.equal(same(out[io.newV(p.name)]!.data as Float32Array, adam[io.v(p.name)]!.data as Float32Array), skipped);
    }
  }
});
