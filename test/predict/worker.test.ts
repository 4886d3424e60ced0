// The model runs on a worker thread: the main thread's event loop (image decoding, HTTP) keeps going
// during inference; a model ONNX Runtime cannot load is one line; an unreleased model never keeps
// the process alive, and a pending run does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { TaggerModel } from '../../src/model/tagger.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { gradcheckConfig, randomParams } from '../../training/gradcheck.js';
import { decodeModel, encodeModel } from '../../src/onnx/proto.js';
import { cli, tempDir } from '../helpers.js';

const dir = await tempDir();
// Big enough that one batch takes a while on 2 cores: 128 px, 32–64 channels.
const config = gradcheckConfig({
  widths: [32, 32, 48, 48, 64, 64, 64, 64, 64, 64, 64, 64, 64],
  imageSize: 128,
  hidden: 32,
  tags: 5,
});
const modelFile = path.join(dir, 'm.onnx');
const tags = ['a', 'b', 'c', 'd', 'e'];
await writeFile(
  modelFile,
  encodeInferenceModel(config, randomParams(config, 1), {
    tags,
    categories: tags.map(() => 0),
    pad: 'center',
    source: 'test',
  }),
);

test('timers keep firing on the main thread while a batch runs', async (t) => {
  const model = await TaggerModel.load(modelFile);
  const n = 16;
  const images = new Uint8Array(n * 128 * 128 * 3).map((_, i) => (i * 7) % 256);
  await model.run(images, n);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 2);
  const t0 = performance.now();
  const { probs } = await model.run(images, n);
  const ms = performance.now() - t0;
  clearInterval(timer);
  await model.release();
  t.diagnostic(`one batch of ${n}: ${ms.toFixed(0)} ms, ${ticks} timer ticks meanwhile`);
  assert.equal(probs.length, n * 5);
  assert.ok(ms > 30, `the batch should take a measurable time (${ms} ms)`);
  assert.ok(ticks >= ms / 2 / 4, `${ticks} ticks in ${ms.toFixed(0)} ms: the event loop was blocked`);
});

test('a file ONNX Runtime cannot load is one line naming it', async () => {
  const bad = path.join(dir, 'bad.onnx');
  const model = decodeModel(
    encodeInferenceModel(config, randomParams(config, 1), {
      tags,
      categories: tags.map(() => 0),
      pad: 'center',
      source: 'test',
    }),
  );
  model.graph!.node![3]!.op_type = 'NoSuchOp'; // our metadata, a graph ONNX Runtime refuses
  await writeFile(bad, encodeModel(model));
  const r = await cli('pred', modelFile, '--model', bad);
  assert.equal(r.code, 2);
  assert.equal(r.err.length, 1, r.err.join('\n'));
  assert.match(r.err[0]!, /Expected an ONNX model that ONNX Runtime can load in ".*bad\.onnx" but it fails: /);
});

test('a process that never releases its model still exits; one awaiting a run waits for it; release during a warm-up is safe', () => {
  const modelJs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/model/tagger.js');
  const script = (release: boolean): string =>
    `const { TaggerModel } = await import(${JSON.stringify(modelJs)});
     const m = await TaggerModel.load(${JSON.stringify(modelFile)});
     const { probs } = await m.run(new Uint8Array(2 * 128 * 128 * 3), 2);
     console.log('probs', probs.length);
     ${release ? 'await m.release();' : ''}`;
  for (const release of [false, true]) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(release)], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'probs 10', `release ${release}: the run's answer arrived before exit`);
  }
  // pred releases the model on a bad option while the warm-up batch may still be queued: no crash.
  const early = `const { TaggerModel } = await import(${JSON.stringify(modelJs)});
    const m = await TaggerModel.load(${JSON.stringify(modelFile)});
    void m.warmUp(4);
    await m.release();
    console.log('released');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', early], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'released');
});
