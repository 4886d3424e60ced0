// Training with --precision fp16 on the CPU (ONNX Runtime runs the float16 graphs through float32
// kernels): overflowing steps are skipped and change nothing, the scale backs off and then trains,
// both engines agree, the scaler's state travels in checkpoints, and a resumed run equals an
// uninterrupted one bit for bit.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { listCheckpoints, readCheckpoint } from '../../src/train/checkpoint.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { addonStatus } from '../../src/train/native-binding.js';
import { modelConfigFor, readRunConfig } from '../../src/train/run-config.js';
import { TrainSession, type TrainState } from '../../src/train/train-session.js';
import { initParams } from '../../training/params.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir, tinyShards, tinyTrain } from '../helpers.js';

const config = modelConfigFor('vgg16-tiny', 10, 32, 16, undefined);
const rng = new Rng(11);
const images = Uint8Array.from({ length: 4 * 32 * 32 * 3 }, () => rng.uint32() & 255);
const labels = Uint8Array.from({ length: 4 * 10 }, () => (rng.next() < 0.3 ? 1 : 0));

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Parameters (all, or only the trainable ones: not BN's running statistics) and Adam moments equal bit for bit. */
function sameState(a: Required<TrainState>, b: Required<TrainState>, trainableOnly = false): boolean {
  return (['params', 'm', 'v'] as const).every((k) =>
    [...a[k]].every(([n, x]) => (trainableOnly && !a.m.has(n)) || bytes(x).equals(bytes(b[k].get(n)!))),
  );
}

async function run(engine: 'ort' | 'native'): Promise<{ losses: number[]; state: Required<TrainState> }> {
  // 2²⁴ overflows float16 at once: the scale must back off before a step is applied.
  const s = await TrainSession.create(
    config,
    { params: initParams(config, 4) },
    { engine, fp16: true, seed: 2, lossScale: { scale: 2 ** 24, goodSteps: 0, skipped: 0 } },
  );
  try {
    const before = await s.getState();
    const losses: number[] = [];
    await s.step(images, labels, 4, 0.003);
    assert.equal(s.lossScale!.skipped, 1, `${engine}: the first step overflowed`);
    assert.equal(s.lossScale!.scale, 2 ** 23);
    assert.equal(s.steps, 0, `${engine}: a skipped step does not count for Adam`);
    // BN's running statistics do move: the forward pass ran (as in PyTorch, whose GradScaler skips
    // only optimizer.step()).
    assert.ok(sameState(await s.getState(), before, true), `${engine}: a skipped step changes no weight or moment`);
    for (let i = 0; i < 40; i++) losses.push(await s.step(images, labels, 4, 0.003));
    const { skipped, scale } = s.lossScale!;
    assert.equal(s.steps + skipped, 41, `${engine}: each step applied or skipped`);
    assert.equal(scale, 2 ** (24 - skipped), `${engine}: halved once per skipped step (no growth within 2000)`);
    assert.ok(s.steps >= 15, `${engine}: ${s.steps} steps applied, ${skipped} skipped`);
    assert.ok(losses.at(-1)! < losses[0]! * 0.8, `${engine}: it learns (${losses[0]} → ${losses.at(-1)})`);
    return { losses, state: await s.getState() };
  } finally {
    s.dispose();
  }
}

test('fp16 TrainSession: an overflow skips the step and changes nothing, the scale backs off, then it learns', async () => {
  const ort = await run('ort');
  if (!addonStatus().ok) return;
  const native = await run('native');
  // The native engine's in-place Adam and the fused step graph agree on the float16 path too.
  assert.deepEqual(native.losses, ort.losses);
  assert.ok(sameState(native.state, ort.state), 'native and onnxruntime-node states equal bit for bit');
});

test('train --precision fp16: the scale goes into checkpoints and the log, and --resume equals one run bit for bit', async () => {
  const root = await tempDir();
  const shards = await tinyShards(root, 100, 8);
  const train = (out: string, rounds: number, ...more: string[]): Promise<{ code: number; err: string[] }> =>
    tinyTrain(shards, out, '--precision', 'fp16', '--rounds', String(rounds), ...more);
  const whole = path.join(root, 'whole');
  const part = path.join(root, 'part');
  const w = await train(whole, 3);
  assert.equal(w.code, 0, w.err.join('\n'));
  assert.match(w.err.join('\n'), /precision fp16 on the CPU: .*slower than fp32/);
  assert.equal((await train(part, 2)).code, 0);
  const r = await train(part, 3, '--resume');
  assert.equal(r.code, 0, r.err.join('\n'));
  const last = async (run: string): Promise<{ state: Required<TrainState>; scale: unknown }> => {
    const c = (await listCheckpoints(path.join(run, 'checkpoints'))).at(-1)!;
    const { state, info } = await readCheckpoint(c.file, (await readRunConfig(run)).model);
    return { state, scale: info.lossScale };
  };
  const [a, b] = [await last(whole), await last(part)];
  assert.ok(a.scale, 'the checkpoint holds the loss scale');
  assert.deepEqual(b.scale, a.scale);
  assert.ok(sameState(a.state, b.state), 'resumed = uninterrupted, bit for bit');
  // export --fp16 of that run: a model pred loads, saying fp16.
  const model = path.join(root, 'm16.onnx');
  const e = await cli('export', whole, '--out', model, '--fp16');
  assert.equal(e.code, 0, e.err.join('\n'));
  assert.match(e.out.join('\n'), /float16 model for GPUs/);
  const m = await TaggerModel.load(model);
  assert.equal(m.meta.precision, 'fp16');
  await m.release();
});
