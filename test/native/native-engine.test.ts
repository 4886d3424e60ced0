// NativeEngine (under TrainSession) against OrtEngine's run of the same graphs, and its behaviour at the
// edges: concurrency, disposal, bad batches, bad load options, foreign checkpoints, leaks.
// ALT_I2V_TEST_DEVICE=cuda runs the equality checks on the CUDA EP (bench/gpu.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ENGINE_IO, type TrainEngine } from '../../src/train/engine.js';
import { loadAddon } from '../../src/train/native-binding.js';
import { TrainSession } from '../../src/train/train-session.js';
import { gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { referenceConvFeatures } from '../../training/reference.js';
import { adamConstants, buildCopyGraph, buildEvalGraph, buildTrainGraph } from '../../training/graphs.js';
import { defaultConfig, initParams, paramSpecs, VGG16_TINY_WIDTHS } from '../../training/params.js';

const device = process.env.ALT_I2V_TEST_DEVICE === 'cuda' ? 'cuda' : 'cpu';
// On CPU the addon and the reference run the same graphs on the same runtime: bit-identical, so the
// comparison is exact. CUDA kernels sum in other orders: losses agree to float32 noise, and a
// parameter whose gradient is at noise level may take Adam's ±lr step the other way (at most
// 2·lr per step apart), so there this check is loose (bench/gpu.sh runs it).
const LR = 0.001;
const STEPS = 20;
const LOSS_TOL = device === 'cuda' ? 1e-4 : 0;
const PARAM_TOL = device === 'cuda' ? 2 * LR * STEPS : 0;

// Every Adam placement the device has (in place: CPU only) against OrtEngine on the CPU (Adam fused).
for (const adam of device === 'cuda' ? (['fused'] as const) : (['in-place', 'fused'] as const)) {
  test(`20 ${device} steps equal the onnxruntime-node engine's run (${adam} Adam)`, async (t) => {
    const c = gradcheckConfig();
    const params = randomParams(c, 1);
    const native = await TrainSession.create(c, { params }, { seed: 5, adam, device, engine: 'native' });
    const ort = await TrainSession.create(c, { params }, { seed: 5, engine: 'ort' });
    let lossDiff = 0;
    for (let s = 0; s < STEPS; s++) {
      const b = randomBatch(c, 4, 100 + s);
      const got = await native.step(b.images, b.labels, 4, LR);
      const want = await ort.step(b.images, b.labels, 4, LR);
      lossDiff = Math.max(lossDiff, Math.abs(got - want) / Math.max(1, Math.abs(want)));
    }
    const [state, ref] = [await native.getState(), await ort.getState()];
    let paramDiff = 0;
    for (const [name, v] of state.params) {
      const w = ref.params.get(name)!;
      for (let i = 0; i < v.length; i++) paramDiff = Math.max(paramDiff, Math.abs(v[i]! - w[i]!));
    }
    t.diagnostic(
      `max relative loss difference ${lossDiff.toExponential(2)} (tolerance ${LOSS_TOL}), max parameter difference ${paramDiff.toExponential(2)} (tolerance ${PARAM_TOL})`,
    );
    assert.ok(lossDiff <= LOSS_TOL && paramDiff <= PARAM_TOL, `loss ${lossDiff} params ${paramDiff}`);
    assert.equal(native.steps, 20);
    native.dispose();
    ort.dispose();
  });
}

test('dropout masks replay from the seed; another seed gives another run', async () => {
  const c = gradcheckConfig();
  const params = randomParams(c, 2);
  const losses = async (seed: number): Promise<number[]> => {
    const s = await TrainSession.create(c, { params }, { seed, device });
    const out: number[] = [];
    for (let i = 0; i < 3; i++) {
      const b = randomBatch(c, 4, 7 + i);
      out.push(await s.step(b.images, b.labels, 4, 0.001));
    }
    s.dispose();
    return out;
  };
  const [a, b, other] = [await losses(1), await losses(1), await losses(2)];
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.slice(1), other.slice(1));
});

test('getState then setState on a fresh session continues the run exactly (params, Adam, step, RNG)', async () => {
  const c = gradcheckConfig();
  const params = randomParams(c, 3);
  const batches = Array.from({ length: 6 }, (_, i) => randomBatch(c, 4, 50 + i));
  const a = await TrainSession.create(c, { params }, { seed: 9, device });
  const whole: number[] = [];
  for (const b of batches) whole.push(await a.step(b.images, b.labels, 4, 0.001));
  const b1 = await TrainSession.create(c, { params }, { seed: 9, device });
  for (const b of batches.slice(0, 3)) await b1.step(b.images, b.labels, 4, 0.001);
  const saved = await b1.getState();
  b1.dispose();
  const b2 = await TrainSession.create(c, { params: randomParams(c, 99) }, { seed: 1, device });
  await b2.setState(saved);
  assert.equal(b2.steps, 3);
  const rest: number[] = [];
  for (const b of batches.slice(3)) rest.push(await b2.step(b.images, b.labels, 4, 0.001));
  assert.deepEqual(rest, whole.slice(3));
  a.dispose();
  b2.dispose();
});

test('the event loop keeps running during a step', async (t) => {
  const c = defaultConfig({ tags: 20, widths: [...VGG16_TINY_WIDTHS], imageSize: 96, hidden: 64, freeze: 0 });
  const s = await TrainSession.create(c, { params: initParams(c, 1) }, { device });
  const b = randomBatch(c, 32, 1);
  await s.step(b.images, b.labels, 32, 0.001); // warm-up
  let ticks = 0;
  const timer = setInterval(() => ticks++, 2);
  const t0 = performance.now();
  await s.step(b.images, b.labels, 32, 0.001);
  const ms = performance.now() - t0;
  clearInterval(timer);
  t.diagnostic(`step took ${ms.toFixed(0)} ms; the 2 ms timer fired ${ticks} times meanwhile`);
  assert.ok(ticks >= Math.min(3, Math.floor(ms / 10)), `${ticks} ticks in ${ms} ms`);
  s.dispose();
});

test('a second call while a step runs is rejected; dispose twice is harmless; use after dispose throws', async () => {
  const c = gradcheckConfig();
  const s = await TrainSession.create(c, { params: randomParams(c, 4) }, { device });
  const b = randomBatch(c, 4, 1);
  const first = s.step(b.images, b.labels, 4, 0.001);
  await assert.rejects(
    s.step(b.images, b.labels, 4, 0.001),
    /NativeEngine\.step: another call on this engine is still running; await it first/,
  );
  await assert.rejects(s.getState(), /another call on this engine is still running/);
  assert.ok(Number.isFinite(await first));
  s.dispose();
  s.dispose();
  await assert.rejects(s.step(b.images, b.labels, 4, 0.001), /NativeEngine\.step: the engine is disposed/);
});

test('rejects a wrong-sized batch and a checkpoint of another model with clear errors', async () => {
  const c = gradcheckConfig();
  const s = await TrainSession.create(c, { params: randomParams(c, 5) }, { device });
  const b = randomBatch(c, 4, 1);
  await assert.rejects(
    s.step(b.images.subarray(1), b.labels, 4, 0.001),
    (e: unknown) =>
      e instanceof RangeError && /Expected 12288 bytes for images \(n=4 × 32×32×3\) but received 12287/.test(e.message),
  );
  await assert.rejects(s.step(b.images, b.labels, 3, 0.001), /Expected 9216 bytes for images \(n=3/);
  await assert.rejects(
    s.evaluate(b.images, b.labels.subarray(2), 4),
    /Expected 20 bytes for labels \(n=4 × 5 tags\) but received 18/,
  );
  const other = gradcheckConfig({ hidden: 16 });
  await assert.rejects(
    s.setState({ params: randomParams(other, 1) }),
    (e: unknown) =>
      e instanceof RangeError &&
      /Expected 64 values for fc1\.weight \[8,8\] .* is it a checkpoint of another model\?/.test(e.message),
  );
  const fewer = new Map(randomParams(c, 1));
  fewer.delete('conv3.bias');
  await assert.rejects(
    s.setState({ params: fewer }),
    /Expected tensor conv3\.bias in the state \(params\) but it is missing/,
  );
  assert.ok(Number.isFinite(await s.step(b.images, b.labels, 4, 0.001)), 'still usable after rejected calls');
  s.dispose();
});

test('an ONNX Runtime failure becomes a JS error with the ORT code and the caller in its stack', async () => {
  const addon = loadAddon();
  const native = new addon.NativeEngine();
  const junk = new Uint8Array([1, 2, 3, 4]);
  const err = await native
    .load(
      {
        trainModel: junk,
        evalModel: junk,
        copyModel: junk,
        adam: 'fused',
        adamConstants: adamConstants(),
        device: 'cpu',
        deviceId: 0,
        tf32: false,
        intraOpThreads: 1,
        interOpThreads: 1,
        inputDims: [32, 32, 3],
        inputType: 'uint8',
        tags: 1,
        hidden: 1,
        hasKeep: false,
        lossScale: false,
        bakedFrozen: false,
        io: ENGINE_IO,
        specs: [],
      },
      [],
    )
    .then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
  assert.ok(err, 'load of a junk model must fail');
  assert.equal(err.code, 'ORT_INVALID_PROTOBUF');
  assert.match(err.message, /^NativeEngine\.load: /);
  assert.match(err.stack ?? '', /native-engine\.test\.js/);
  native.dispose();
});

test('graph names are one contract: a name the graphs lack fails at load, naming graph and name', async () => {
  const c = gradcheckConfig();
  const options = {
    trainModel: buildTrainGraph(c, { fuseOptimizer: true }).encode(),
    evalModel: buildEvalGraph(c).encode(),
    copyModel: buildCopyGraph().encode(),
    adam: 'fused',
    adamConstants: adamConstants(),
    device,
    deviceId: 0,
    tf32: false,
    intraOpThreads: 1,
    interOpThreads: 1,
    inputDims: [c.imageSize, c.imageSize, 3],
    inputType: 'uint8',
    tags: c.tags,
    hidden: c.hidden,
    hasKeep: c.dropout > 0,
    lossScale: false,
    bakedFrozen: false,
    specs: paramSpecs(c).map((s) => ({ name: s.name, role: s.role, shape: s.shape })),
  } as const;
  const params = paramSpecs(c).map((s) => randomParams(c, 1).get(s.name)!);
  for (const [key, value, graph, kind] of [
    ['input', 'pixels', 'train', 'input'],
    ['newPrefix', 'next:', 'train', 'output'],
    ['copyOut', 'z', 'copy', 'output'],
  ] as const) {
    const native = new (loadAddon().NativeEngine)();
    await assert.rejects(
      native.load({ ...options, io: { ...ENGINE_IO, [key]: value } }, params),
      new RegExp(`NativeEngine\\.load: ${graph} graph: expected an ${kind} named "${value.replace('.', '\\.')}`),
    );
    assert.equal(native.loaded, false);
    native.dispose();
  }
  const bad = new (loadAddon().NativeEngine)();
  assert.throws(
    () => bad.load({ ...options, io: ENGINE_IO, adam: 'sideways' as 'fused' }, params),
    /^TypeError: Expected "fused" or "in-place" for options\.adam but received "sideways"$/,
  );
  // The addon checks every field it reads (load_options.cc): no options object makes it guess or read
  // out of bounds.
  const specs = options.specs.map((sp) => ({ ...sp, shape: [...sp.shape] }));
  const broken: [Record<string, unknown>, RegExp][] = [
    [{ adamConstants: [0.9] }, /^TypeError: Expected 4 numbers for options\.adamConstants$/],
    [{ adamConstants: [0.9, 0.1, '0.999', 0.001] }, /^TypeError: Expected 4 numbers for options\.adamConstants$/],
    [{ device: 'gpu' }, /^TypeError: Expected "cpu" or "cuda" for options\.device but received "gpu"$/],
    [{ inputDims: [0] }, /^TypeError: Expected an integer ≥ 1 for options\.inputDims\[0\]$/],
    [
      { inputType: 'float64' },
      /^TypeError: Expected "uint8" or "float16" for options\.inputType but received "float64"$/,
    ],
    [{ tags: 2.5 }, /^TypeError: Expected an integer ≥ 1 for options\.tags$/],
    [{ intraOpThreads: -1 }, /^TypeError: Expected an integer ≥ 0 for options\.intraOpThreads$/],
    [{ hasKeep: 'yes' }, /^TypeError: Expected a boolean for options\.hasKeep$/],
    [
      { specs: specs.map((sp, i) => (i === 0 ? { ...sp, role: 'buffer' } : sp)) },
      /^TypeError: Expected "trainable", "frozen" or "state" for options\.specs\[0\]\.role$/,
    ],
    [
      { specs: specs.map((sp, i) => (i === 1 ? { ...sp, shape: [0] } : sp)) },
      /^TypeError: Expected an integer ≥ 1 for options\.specs\[1\]\.shape\[0\]$/,
    ],
    [{ specs: [null] }, /^TypeError: Expected an object for options\.specs\[0\]$/],
    [{ cudaOptions: 'nhwc' }, /^TypeError: Expected an object of strings for options\.cudaOptions$/],
    [{ cudaOptions: { prefer_nhwc: 1 } }, /^TypeError: Expected a string for options\.cudaOptions\.prefer_nhwc$/],
  ];
  for (const [change, message] of broken)
    assert.throws(
      () => bad.load({ ...options, io: ENGINE_IO, ...change } as typeof options & { io: typeof ENGINE_IO }, params),
      message,
    );
  assert.equal(bad.loaded, false);
  bad.dispose();
  const ok = new (loadAddon().NativeEngine)();
  await ok.load({ ...options, io: ENGINE_IO }, params);
  assert.equal(ok.loaded, true);
  ok.dispose();
});

test('dispose during an in-flight setState frees the state: the finished worker does not re-attach it', async () => {
  const c = gradcheckConfig();
  const s = await TrainSession.create(c, { params: randomParams(c, 8) }, { device });
  const native = (s as unknown as { impl: TrainEngine }).impl;
  assert.equal(native.loaded, true);
  const pending = s.setState({ params: randomParams(c, 9) });
  s.dispose();
  assert.equal(native.loaded, false);
  await pending;
  assert.equal(native.loaded, false, 'setState finishing after dispose re-attached the engine');
  const b = randomBatch(c, 4, 1);
  await assert.rejects(s.step(b.images, b.labels, 4, 0.001), /NativeEngine\.step: the engine is disposed/);
});

// bench/gpu.sh skips it (ALT_I2V_SKIP_LEAK_TEST=1): on the device the equality tests are what its minutes are for.
test(
  'no leak: the RSS floor does not grow by 1 KB per step in both of two windows of 1,000 steps (with evaluate, getState and setState), with a 200 KB batch',
  { skip: process.env.ALT_I2V_SKIP_LEAK_TEST === '1' },
  async (t) => {
    // 50,000 tags make each batch's labels 200 KB while the model stays cheap: a batch kept alive per
    // step (or a parameter copy) would add ≥ 200 KB a step, far over the bound.
    const c = gradcheckConfig({ tags: 50_000 });
    const s = await TrainSession.create(c, { params: randomParams(c, 6) }, { device });
    const b = randomBatch(c, 4, 1);
    assert.ok(b.images.length + b.labels.length >= 200_000);
    const loop = async (steps: number): Promise<void> => {
      for (let i = 0; i < steps; i++) {
        await s.step(b.images, b.labels, 4, 0.001);
        if (i % 10 === 0) await s.evaluate(b.images, b.labels, 4);
        if (i % 100 === 99) await s.setState(await s.getState());
      }
    };
    // A full garbage collection before each reading, so JS heap swings do not hide or fake growth.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const measure = (): number => (gc(), process.memoryUsage().rss);
    await loop(300); // warm-up: arenas and caches reach their size
    // RSS swings by a freed-or-not state buffer (±12 MiB, seen locally and on CI) whatever a leak does,
    // so each window of 1,000 steps is read every 100 steps and judged by its floor (its lowest
    // reading). A leak raises the floor in every window; the allocator may add a chunk once (+5 MiB
    // seen in one window, then flat), so the smaller of the two rises is what must stay under 1 KB a step.
    // Seen failing with a leak of 30 KB a step; one of 12 KB hid in the swing's slack for a window, but
    // a leaked batch (200 KB) or parameter copy is far above either.
    const floors: number[] = [];
    for (let w = 0; w < 3; w++) {
      const readings: number[] = [];
      for (let k = 0; k < 10; k++) {
        await loop(100);
        readings.push(measure());
      }
      floors.push(Math.min(...readings));
    }
    const perStep = Math.min(floors[1]! - floors[0]!, floors[2]! - floors[1]!) / 1000;
    t.diagnostic(
      `RSS floor by window ${floors.map((r) => (r / 2 ** 20).toFixed(1)).join(' → ')} MiB; the smaller rise ${(perStep / 1024).toFixed(2)} KiB a step`,
    );
    assert.ok(
      perStep <= 1024,
      `the RSS floor grew ≥ ${perStep.toFixed(0)} bytes a step in both windows (floors ${floors})`,
    );
    s.dispose();
  },
);

test('frozen convs stay bit-identical through steps; BN running statistics follow the float64 momentum update of the batch statistics', async () => {
  const c = gradcheckConfig({ freeze: 2, dropout: 0 });
  const params = randomParams(c, 11);
  const s = await TrainSession.create(c, { params }, { seed: 2, device });
  const b = randomBatch(c, 6, 21);
  await s.step(b.images, b.labels, 6, 0.01);
  const one = await s.getState();
  // After one step from `params`: running = m·running + (1 − m)·batch statistic (biased variance), of
  // the conv-stack output computed in float64 from the parameters the step started from.
  const x = referenceConvFeatures(c, params, b);
  const f = x.length / 6;
  let worst = 0;
  for (let j = 0; j < f; j++) {
    let mean = 0;
    for (let i = 0; i < 6; i++) mean += x[i * f + j]!;
    mean /= 6;
    let v = 0;
    for (let i = 0; i < 6; i++) v += (x[i * f + j]! - mean) ** 2;
    v /= 6;
    const m = c.bnMomentum;
    const wantMean = m * params.get('bn.running_mean')![j]! + (1 - m) * mean;
    const wantVar = m * params.get('bn.running_var')![j]! + (1 - m) * v;
    worst = Math.max(
      worst,
      Math.abs(one.params.get('bn.running_mean')![j]! - wantMean),
      Math.abs(one.params.get('bn.running_var')![j]! - wantVar) / Math.max(1, wantVar),
    );
  }
  assert.ok(worst < 1e-5, `running statistics off by ${worst}`);
  for (let k = 0; k < 4; k++) await s.step(b.images, b.labels, 6, 0.01);
  const after = await s.getState();
  for (const name of ['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias'])
    assert.deepEqual(after.params.get(name), params.get(name), `${name} frozen`);
  assert.notDeepEqual(after.params.get('conv3.weight'), params.get('conv3.weight'), 'conv3 trains');
  s.dispose();
});
