// The graphs of training/ (tests of the ground floor; test/train tests src/train): every gradient
// against finite differences, eval and inference against the float64 reference, the step graph's Adam
// against Keras' formula, the CUDA form against the CPU form, every artifact through onnx.checker.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { artifactFiles, encodeInferenceModel } from '../../training/artifacts.js';
import { batchFeeds, gradcheck, gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { Rng } from '../../training/rng.js';
import { ADAM, adamStepScalars, buildEvalGraph, buildTrainGraph } from '../../training/graphs.js';
import { checkConfig, defaultConfig, io, numel, paramSpecs } from '../../training/params.js';
import { referenceForward } from '../../training/reference.js';
import { tempDir } from '../helpers.js';

for (const over of [
  {},
  { freeze: 0, dropout: 0 },
  { freeze: 13 },
  { embedding: 12 },
  { embedding: 12, hidden: 0 },
  { embedding: 12, hidden: 0, posWeight: [4, 3, 7.5, 1, 20] },
  { posWeight: [2, 1, 4, 9, 1] },
]) {
  test(`whole tiny model: every gradient matches finite differences (${JSON.stringify(over)})`, async (t) => {
    const r = await gradcheck(gradcheckConfig(over));
    t.diagnostic(`loss: onnxruntime ${r.ortLoss} reference ${r.refLoss}`);
    for (const row of r.rows)
      t.diagnostic(
        `${row.name.padEnd(15)} ${String(row.checked).padStart(3)} checked, max abs ${row.maxAbsErr.toExponential(2)}, max rel ${row.maxRelErr.toExponential(2)}`,
      );
    const worst = Math.max(...r.rows.map((x) => x.maxRelErr));
    t.diagnostic(`worst relative error ${worst.toExponential(2)} (tolerance ${r.tolerance})`);
    assert.ok(r.ok, `worst ${worst}`);
    const trainable = paramSpecs(gradcheckConfig(over)).filter((s) => s.role === 'trainable').length;
    assert.equal(r.rows.length, trainable);
  });
}

test("the CUDA form of the train graph (ArgMax pools, Mul/Add input) gives the CPU form's loss and gradients, run on the CPU", async () => {
  // CI has no GPU: the graph CUDA runs is checked here against the CPU graph that the gradient checks cover.
  const c = gradcheckConfig({ freeze: 0, dropout: 0 });
  const feeds = batchFeeds(c, randomBatch(c, 3, 7), randomParams(c, 6), false);
  const outs: ort.InferenceSession.OnnxValueMapType[] = [];
  for (const device of ['cpu', 'cuda'] as const) {
    const graph = buildTrainGraph(c, { device });
    const ops = graph.toJson().graph.node.map((n) => n.op_type);
    assert.equal(ops.includes('MaxUnpool'), device === 'cpu', `${device}: MaxUnpool`);
    assert.equal(ops.includes('ArgMax'), device === 'cuda', `${device}: ArgMax`);
    const session = await ort.InferenceSession.create(graph.encode());
    outs.push(await session.run(feeds));
    await session.release();
  }
  const [cpu, cuda] = outs as [ort.InferenceSession.OnnxValueMapType, ort.InferenceSession.OnnxValueMapType];
  assert.deepEqual(Object.keys(cuda).sort(), Object.keys(cpu).sort());
  for (const name of Object.keys(cpu))
    assert.deepEqual([...(cuda[name]!.data as Float32Array)], [...(cpu[name]!.data as Float32Array)], name);
});

test('the eval graph and the inference model agree with the float64 reference', async () => {
  const c = gradcheckConfig();
  const params = randomParams(c, 4);
  const batch = randomBatch(c, 3, 5);
  const evalSession = await ort.InferenceSession.create(buildEvalGraph(c).encode());
  const out = await evalSession.run(batchFeeds(c, batch, params, false));
  const ref = referenceForward(c, params, batch, 'eval');
  const probs = out[io.probs]!.data as Float32Array;
  ref.logits.forEach((z, i) => assert.ok(Math.abs(1 / (1 + Math.exp(-z)) - probs[i]!) < 1e-5, `prob ${i}`));
  assert.ok(Math.abs((out[io.loss]!.data as Float32Array)[0]! - ref.loss) < 1e-5);
  const meta = { tags: ['a', 'b', 'c', 'd', 'e'], categories: [0, 0, 0, 0, 9], pad: 'center' as const, source: 'test' };
  const infer = await ort.InferenceSession.create(encodeInferenceModel(c, params, meta));
  const s = c.imageSize;
  const io2 = await infer.run({ image: new ort.Tensor('uint8', batch.images, [3, s, s, 3]) });
  assert.deepEqual(infer.outputNames, ['probs', 'features']);
  // Weights as initializers let ORT fold constants differently: equal to float32 rounding, not bit for bit.
  (io2.probs!.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - probs[i]!) < 1e-6, `probs ${i}`));
  const feats = io2.features!.data as Float32Array;
  ref.features.forEach((f, i) => assert.ok(Math.abs(f - feats[i]!) < 1e-4 * Math.max(1, Math.abs(f)), `feature ${i}`));
  await evalSession.release();
  await infer.release();
});

test("the step graph's Adam is Keras Adam (bias-corrected), against a float64 update of the train graph's gradient", async () => {
  const c = gradcheckConfig({ freeze: 13 });
  const params = randomParams(c, 6);
  const batch = randomBatch(c, 4, 11);
  const trainable = paramSpecs(c).filter((x) => x.role === 'trainable');
  const rng = new Rng(8);
  const moment = (scale: number, n: number): Float32Array => Float32Array.from({ length: n }, () => rng.next() * scale);
  const m0 = new Map(trainable.map((s) => [s.name, moment(0.02, numel(s.shape))]));
  const v0 = new Map(trainable.map((s) => [s.name, moment(0.001, numel(s.shape))]));
  const lr = 0.001;
  const t = 7;
  const { lrT, epsT } = adamStepScalars(lr, t);
  const train = await ort.InferenceSession.create(buildTrainGraph(c).encode());
  const step = await ort.InferenceSession.create(buildTrainGraph(c, { fuseOptimizer: true }).encode());
  const grads = await train.run(batchFeeds(c, batch, params, true));
  const feeds = batchFeeds(c, batch, params, true);
  for (const s of trainable) {
    feeds[io.m(s.name)] = new ort.Tensor('float32', m0.get(s.name)!, s.shape);
    feeds[io.v(s.name)] = new ort.Tensor('float32', v0.get(s.name)!, s.shape);
  }
  feeds[io.lr] = new ort.Tensor('float32', [lrT], []);
  feeds[io.eps] = new ort.Tensor('float32', [epsT], []);
  const out = await step.run(feeds);
  for (const s of trainable) {
    const p = params.get(s.name)!;
    const g = grads[io.grad(s.name)]!.data as Float32Array;
    const got = out[io.newParam(s.name)]!.data as Float32Array;
    for (let i = 0; i < p.length; i++) {
      const m = ADAM.beta1 * m0.get(s.name)![i]! + (1 - ADAM.beta1) * g[i]!;
      const v = ADAM.beta2 * v0.get(s.name)![i]! + (1 - ADAM.beta2) * g[i]! ** 2;
      const want = p[i]! - (lr * (m / (1 - ADAM.beta1 ** t))) / (Math.sqrt(v / (1 - ADAM.beta2 ** t)) + ADAM.epsilon);
      assert.ok(Math.abs(got[i]! - want) < 2e-7 * Math.max(1, Math.abs(want)), `${s.name}[${i}]: ${got[i]} vs ${want}`);
    }
  }
  await train.release();
  await step.release();
});

test('the full-size VGG16 model has 14,714,688 conv parameters and its graphs build', (t) => {
  const c = defaultConfig({ tags: 5000 });
  const specs = paramSpecs(c);
  const conv = specs.filter((s) => s.name.startsWith('conv')).reduce((a, s) => a + numel(s.shape), 0);
  const total = specs.filter((s) => s.role !== 'state').reduce((a, s) => a + numel(s.shape), 0);
  const trainable = specs.filter((s) => s.role === 'trainable').reduce((a, s) => a + numel(s.shape), 0);
  t.diagnostic(
    `conv parameters ${conv.toLocaleString('en')}, all parameters ${total.toLocaleString('en')}, trainable (freeze 8) ${trainable.toLocaleString('en')}`,
  );
  assert.equal(conv, 14_714_688);
  // head: BN 2·25088, fc1 25088·5000 + 5000, fc2 5000·5000 + 5000
  assert.equal(total - conv, 2 * 25088 + 25088 * 5000 + 5000 + 5000 * 5000 + 5000);
  const train = buildTrainGraph(c);
  t.diagnostic(`train graph: ${train.nodeCount} nodes`);
  assert.ok(train.encode().length < 1_000_000, 'weights are inputs, not inside the graph');
});

test('rejects a bad model config naming the field', () => {
  assert.throws(
    () => checkConfig(defaultConfig({ tags: 5, imageSize: 100 })),
    /expected imageSize a multiple of 32 \(≥ 32\) but received 100/,
  );
  assert.throws(
    () => checkConfig(defaultConfig({ tags: 5, freeze: 14 })),
    /expected freeze between 0 and 13 but received 14/,
  );
  assert.throws(() => checkConfig(defaultConfig({ tags: 0 })), /expected tags ≥ 1 but received 0/);
});

const hasOnnx = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;

test(
  'every artifact passes onnx.checker with full shape inference',
  { skip: hasOnnx ? false : 'python3-onnx not installed' },
  async (t) => {
    const dir = await tempDir();
    const tiny = gradcheckConfig();
    const { mkdir, writeFile } = await import('node:fs/promises');
    let written = 0;
    for (const [sub, config] of [
      ['tiny', tiny],
      ['vgg16', defaultConfig({ tags: 50, hidden: 64 })],
    ] as const) {
      await mkdir(path.join(dir, sub));
      for (const [name, bytes] of artifactFiles(config)) {
        await writeFile(path.join(dir, sub, name), bytes);
        if (name.endsWith('.onnx')) written++;
      }
    }
    const meta = {
      tags: ['a', 'b', 'c', 'd', 'e'],
      categories: [0, 0, 0, 0, 9],
      pad: 'center' as const,
      source: 'test',
    };
    await writeFile(path.join(dir, 'tiny', 'model.onnx'), encodeInferenceModel(tiny, randomParams(tiny, 1), meta));
    written++;
    const script = [
      'import glob, sys, onnx',
      'files = sorted(glob.glob(sys.argv[1] + "/*/*.onnx"))',
      'for f in files:',
      '    onnx.checker.check_model(onnx.load(f), full_check=True)',
      '    print("checked", f)',
    ].join('\n');
    const r = spawnSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
    t.diagnostic(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => path.basename(path.dirname(l)) + '/' + path.basename(l))
        .join(', '),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, written);
    assert.equal(written, 7, 'train, step and eval graphs of two configs, and one inference model');
  },
);
