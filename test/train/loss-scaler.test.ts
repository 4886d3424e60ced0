// Dynamic loss scaling's state machine (PyTorch GradScaler's rules) and its checkpoint round trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { LossScaler } from '../../src/train/loss-scaler.js';
import { modelConfigFor } from '../../src/train/run-config.js';
import { initParams, paramSpecs } from '../../training/params.js';
import { readSafetensors, writeSafetensors } from '../../src/data/safetensors.js';
import { cli, tempDir } from '../helpers.js';

test('an overflow skips the step and halves the scale; N clean steps in a row double it', () => {
  const s = new LossScaler(undefined, 3);
  assert.equal(s.scale, 65536);
  assert.equal(s.update(true), true);
  assert.equal(s.update(true), true);
  assert.equal(s.update(false), false, 'a non-finite gradient skips the step');
  assert.deepEqual(s.state(), { scale: 32768, goodSteps: 0, skipped: 1 });
  s.update(true);
  s.update(true);
  assert.equal(s.scale, 32768, 'two clean steps after the overflow: not yet');
  s.update(true);
  assert.deepEqual(s.state(), { scale: 65536, goodSteps: 0, skipped: 1 });
  for (let i = 0; i < 100; i++) s.update(false);
  assert.equal(s.scale, 2 ** -24, 'never below 2^-24');
  const big = new LossScaler({ scale: 2 ** 24, goodSteps: 2, skipped: 0 }, 3);
  big.update(true);
  assert.equal(big.scale, 2 ** 24, 'never above 2^24');
  // A scaler restored from its state continues exactly as the original.
  const a = new LossScaler(undefined, 4);
  const flips = [true, false, true, true, true, true, false, true];
  flips.slice(0, 3).forEach((f) => a.update(f));
  const b = new LossScaler(LossScaler.parse(a.toJson(), 'x'), 4);
  for (const f of flips.slice(3)) assert.equal(a.update(f), b.update(f));
  assert.deepEqual(a.state(), b.state());
});

test('the loss scale state goes into the checkpoint and back; a damaged one is one line naming the file', async () => {
  const dir = await tempDir();
  const config = modelConfigFor('vgg16-tiny', 4, 32, 8, undefined);
  const params = initParams(config, 1);
  const zeros = new Map(
    paramSpecs(config)
      .filter((s) => s.role === 'trainable')
      .map((s) => [s.name, new Float32Array(params.get(s.name)!.length)]),
  );
  const state = { params, m: zeros, v: zeros, step: 7, rng: [1, 2, 3, 4] };
  const lossScale = { scale: 1024, goodSteps: 17, skipped: 3 };
  const info = await writeCheckpoint(dir, config, state, { round: 1, position: -1, tagsSha256: 'x', lossScale });
  assert.deepEqual((await readCheckpoint(info.file, config)).info.lossScale, lossScale);
  const plain = await writeCheckpoint(dir, config, state, { round: 2, position: -1, tagsSha256: 'x' });
  assert.equal((await readCheckpoint(plain.file, config)).info.lossScale, undefined);
  for (const bad of ['{"scale":1000,"goodSteps":0,"skipped":0}', '{"scale":1024,"goodSteps":-1,"skipped":0}', 'nope']) {
    const { header, data } = await readSafetensors(info.file);
    const tensors = Object.fromEntries(
      [...header.tensors].map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, chunks: [data.get(name)!] }]),
    );
    await writeSafetensors(info.file, tensors, { ...header.metadata, loss_scale: bad });
    await assert.rejects(readCheckpoint(info.file, config), (err: Error) => {
      assert.match(
        err.message,
        /^Expected a loss scale state .* as metadata loss_scale of ".*round-000001\.safetensors" but it is /,
      );
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  }
});

test('train --precision: bf16 is refused saying why, tf32 only on CUDA, in one line before anything is read; fp16 is accepted', async () => {
  const cases: [string[], RegExp][] = [
    [['--precision', 'fp16'], /^alt-i2v-ort: Expected a shards folder with index\.json for SHARDS/],
    [['--precision', 'bf16', '--device', 'cuda'], /bf16 is not offered, .*no bfloat16 kernel .*issue 19502/],
    [['--precision', 'tf32'], /Expected --device cuda for --precision tf32/],
  ];
  for (const [args, want] of cases) {
    const r = await cli('train', '/nonexistent-shards', '--out', '/nonexistent-run', ...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.err.length, 1, r.err.join('\n'));
    assert.match(r.err[0]!, want);
  }
});
