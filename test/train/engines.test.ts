// The two training engines: the native addon and the onnxruntime-node fallback run the same graphs to
// the same parameters, a run resumes on the other engine, and the choice is explained to the user.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { listCheckpoints, readCheckpoint } from '../../src/train/checkpoint.js';
import { checkCudaOptions, engineOptions } from '../../src/train/engine.js';
import { OrtEngine } from '../../src/train/ort-engine.js';
import { readRunConfig } from '../../src/train/run-config.js';
import { TrainSession } from '../../src/train/train-session.js';
import { gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { cli, tempDir, tinyDataset } from '../helpers.js';

// A tiny dataset for the CLI runs, made before any test is defined (a temp dir's after() hook must not
// run while it is still being written).
const root = await tempDir();
const shards = path.join(root, 'shards');
await tinyDataset(root, { count: 240, seed: 6, shardSize: 100, holdout: 0.15 });

// The native engine's Adam in each placement against the ort engine's step-graph Adam: the in-place C++ pass
// (the native CPU default) must round exactly as the graph's float32 ops do.
for (const [native, ort, over] of [
  ['in-place', 'fused', {}],
  ['fused', 'fused', {}],
  ['in-place', 'fused', { embedding: 24, hidden: 16 }],
  ['fused', 'fused', { embedding: 24, hidden: 0 }],
] as const) {
  test(`native and ort engines: 12 steps from one seed give bit-identical losses, parameters and Adam state (native ${native} Adam, ort ${ort}${over.embedding ? `, a head over a float16 embedding, hidden ${over.hidden}` : ''})`, async () => {
    const c = gradcheckConfig(over);
    const params = randomParams(c, 3);
    const [a, b] = [
      await TrainSession.create(c, { params }, { seed: 9, adam: native, engine: 'native' }),
      await TrainSession.create(c, { params }, { seed: 9, adam: ort, engine: 'ort' }),
    ];
    assert.deepEqual([a.engine, b.engine], ['native', 'ort']);
    for (let s = 0; s < 12; s++) {
      const batch = randomBatch(c, 4, 50 + s);
      assert.equal(
        await a.step(batch.images, batch.labels, 4, 0.002),
        await b.step(batch.images, batch.labels, 4, 0.002),
        `loss at step ${s}`,
      );
    }
    const [sa, sb] = [await a.getState(), await b.getState()];
    for (const key of ['params', 'm', 'v'] as const)
      for (const [name, v] of sa[key]) assert.deepEqual(sb[key].get(name), v, `${key} ${name}`);
    assert.deepEqual(sa.rng, sb.rng);
    const batch = randomBatch(c, 3, 99);
    assert.deepEqual(await a.evaluate(batch.images, batch.labels, 3), await b.evaluate(batch.images, batch.labels, 3));
    a.dispose();
    b.dispose();
  });
}

test('the ort engine keeps the addon discipline: one call at a time, nothing after dispose, its own copy of the state', async () => {
  const c = gradcheckConfig();
  const params = randomParams(c, 4);
  const s = await TrainSession.create(c, { params }, { engine: 'ort' });
  const batch = randomBatch(c, 4, 1);
  const first = s.step(batch.images, batch.labels, 4, 0.001);
  await assert.rejects(
    s.step(batch.images, batch.labels, 4, 0.001),
    /OrtEngine\.step: another call on this engine is still running; await it first/,
  );
  await first;
  assert.deepEqual(
    params.get('fc2.weight'),
    randomParams(c, 4).get('fc2.weight'),
    "the caller's arrays are not trained in place",
  );
  s.dispose();
  s.dispose();
  await assert.rejects(s.step(batch.images, batch.labels, 4, 0.001), /OrtEngine\.step: the engine is disposed/);
  const raw = new OrtEngine();
  const options = engineOptions(c, { device: 'cuda', adam: 'fused' });
  await assert.rejects(
    raw.load(options, []),
    /OrtEngine\.load: the onnxruntime-node engine trains on the CPU only, not cuda/,
  );
  await assert.rejects(
    raw.load({ ...options, device: 'cpu', adam: 'in-place' }, []),
    /OrtEngine\.load: the onnxruntime-node engine runs Adam fused into the step graph, not in place/,
  );
  assert.equal(raw.loaded, false);
});

const trainArgs = (out: string, rounds: number, engine: string): string[] => [
  'train',
  shards,
  '--out',
  out,
  '--backbone',
  'vgg16-tiny',
  '--hidden',
  '32',
  '--batch',
  '16',
  '--rounds',
  String(rounds),
  '--engine',
  engine,
];

async function lastState(run: string): Promise<Awaited<ReturnType<typeof readCheckpoint>>['state']> {
  const config = await readRunConfig(run);
  return (await readCheckpoint((await listCheckpoints(path.join(run, 'checkpoints'))).at(-1)!.file, config.model))
    .state;
}

test('a run started on the native engine resumes on the ort engine (and back) to the same checkpoint as a native run', async () => {
  const straight = path.join(root, 'straight');
  const mixed = path.join(root, 'mixed');
  assert.equal((await cli(...trainArgs(straight, 3, 'native'))).code, 0);
  assert.equal((await cli(...trainArgs(mixed, 1, 'native'))).code, 0);
  const onOrt = await cli(...trainArgs(mixed, 2, 'ort'), '--resume');
  assert.equal(onOrt.code, 0, onOrt.err.join('\n'));
  assert.match(onOrt.err.join('\n'), /engine: onnxruntime-node \(state copied each step\), as asked by --engine ort/);
  const back = await cli(...trainArgs(mixed, 3, 'native'), '--resume');
  assert.equal(back.code, 0, back.err.join('\n'));
  assert.match(back.err.join('\n'), /engine: native addon/);
  const [a, b] = [await lastState(straight), await lastState(mixed)];
  for (const key of ['params', 'm', 'v'] as const)
    for (const [name, v] of a[key]) assert.deepEqual(b[key].get(name), v, `${key} ${name}`);
  assert.equal(a.step, b.step);
});

const spawnCli = (args: string[], env: Record<string, string>): { code: number | null; stderr: string } => {
  const r = spawnSync(process.execPath, ['dist/src/cli/main.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status, stderr: r.stderr };
};

test('without the addon: auto trains on ort and says how to get the native engine; native and cuda are usage errors naming the fix', async () => {
  const off = { ALT_I2V_NATIVE: 'off' };
  const auto = spawnCli(trainArgs(path.join(root, 'auto'), 1, 'auto'), off);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(
    auto.stderr,
    /engine: onnxruntime-node, since the native addon is not built \(turned off by ALT_I2V_NATIVE=off\); .* run `npm run build:native`/,
  );
  const native = spawnCli(trainArgs(path.join(root, 'native'), 1, 'native'), off);
  assert.equal(native.code, 2);
  assert.match(
    native.stderr,
    /^alt-i2v-ort: Expected the native trainer addon for --engine native but it is not built \(turned off by ALT_I2V_NATIVE=off\); install cmake and a C\+\+ compiler .*`npm run build:native`\n$/,
  );
  const doctor = spawnSync(process.execPath, ['dist/src/cli/main.js', 'doctor'], {
    encoding: 'utf8',
    env: { ...process.env, ...off },
  });
  assert.equal(doctor.status, 0, doctor.stderr);
  assert.match(
    doctor.stdout,
    /training engines: ort only \(onnxruntime-node, CPU; state copied each step\); for the native engine/,
  );
  const ortCuda = await cli(...trainArgs(path.join(root, 'ort-cuda'), 1, 'ort'), '--device', 'cuda');
  assert.equal(ortCuda.code, 2);
  assert.match(
    ortCuda.err.at(-1)!,
    /Expected --engine native \(or auto\) for --device cuda: the onnxruntime-node engine trains on the CPU only/,
  );
  assert.equal(existsSync(path.join(root, 'ort-cuda')), false, 'a run that could not start leaves no folder behind');
});

test('CUDA provider options: only the levers the benches try, with the values ONNX Runtime takes', () => {
  assert.deepEqual(checkCudaOptions({ prefer_nhwc: '1', cudnn_conv_algo_search: 'HEURISTIC' }), {
    prefer_nhwc: '1',
    cudnn_conv_algo_search: 'HEURISTIC',
  });
  assert.throws(
    () => checkCudaOptions({ enable_cuda_graph: '1' }),
    /Expected a CUDA option among cudnn_conv_algo_search, .* but received "enable_cuda_graph"/,
  );
  assert.throws(
    () => checkCudaOptions({ prefer_nhwc: 'yes' }),
    /Expected 0 or 1 for CUDA option prefer_nhwc but received "yes"/,
  );
});
