// Checkpoints written on the writer thread while training goes on (CheckpointWriter), snapshots into
// reused buffers (getState(into) on both engines), and `train --checkpoint-every N`.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { checkpointPayload, listCheckpoints, readCheckpoint, type CheckpointInfo } from '../../src/train/checkpoint.js';
import { CheckpointWriter } from '../../src/train/checkpoint-writer.js';
import { addonStatus } from '../../src/train/native-binding.js';
import { modelConfigFor } from '../../src/train/run-config.js';
import { TrainSession, type TrainState } from '../../src/train/train-session.js';
import { initParams } from '../../training/params.js';
import { Rng } from '../../training/rng.js';
import { tempDir, tinyShards, tinyTrain } from '../helpers.js';

const config = modelConfigFor('vgg16-tiny', 10, 32, 16, undefined);
const rng = new Rng(9);
const images = Uint8Array.from({ length: 4 * 32 * 32 * 3 }, () => rng.uint32() & 255);
const labels = Uint8Array.from({ length: 4 * 10 }, () => (rng.next() < 0.3 ? 1 : 0));

/** A deep copy, to compare with after the arrays have moved to the writer thread. */
const copyOf = (s: Required<TrainState>): Required<TrainState> => ({
  ...s,
  params: new Map([...s.params].map(([k, v]) => [k, v.slice()])),
  m: new Map([...s.m].map(([k, v]) => [k, v.slice()])),
  v: new Map([...s.v].map(([k, v]) => [k, v.slice()])),
});

function assertSameState(got: Required<TrainState>, want: Required<TrainState>, what: string): void {
  for (const key of ['params', 'm', 'v'] as const) {
    assert.equal(got[key].size, want[key].size, `${what}: ${key}`);
    for (const [name, a] of want[key]) assert.deepEqual(got[key].get(name), a, `${what}: ${key} ${name}`);
  }
}

const engines = addonStatus().ok ? (['ort', 'native'] as const) : (['ort'] as const);
for (const engine of engines) {
  test(`${engine} engine: getState(into) fills the given buffers with the state getState() returns`, async () => {
    const s = await TrainSession.create(config, { params: initParams(config, 2) }, { engine });
    try {
      await s.step(images, labels, 4, 0.01);
      const fresh = await s.getState();
      const into = copyOf(fresh);
      for (const map of [into.params, into.m, into.v]) for (const a of map.values()) a.fill(NaN);
      const got = await s.getState(into);
      assert.equal(got.params.get('fc2.weight'), into.params.get('fc2.weight'), 'the same arrays come back');
      assertSameState(got, fresh, 'into');
      const wrong = copyOf(fresh);
      wrong.m.set('fc2.weight', new Float32Array(3));
      await assert.rejects(s.getState(wrong), /Expected \d+ values for fc2\.weight .* snapshot buffers \(Adam m\)/);
    } finally {
      s.dispose();
    }
  });
}

test('CheckpointWriter: files equal the state handed over, one write in flight, buffers handed back', async () => {
  const dir = await tempDir();
  const s = await TrainSession.create(config, { params: initParams(config, 3) }, { engine: 'ort' });
  const written: CheckpointInfo[] = [];
  const writer = new CheckpointWriter(async (info) => {
    written.push(info);
  });
  try {
    const states: Required<TrainState>[] = [];
    for (let round = 1; round <= 3; round++) {
      await s.step(images, labels, 4, 0.01);
      // As the loop does: the previous write first, then a snapshot into its buffers.
      await writer.flush();
      const spare = writer.takeSpare();
      assert.equal(spare === undefined, round === 1, `spare buffers at round ${round}`);
      const state = await s.getState(spare);
      states.push(copyOf(state));
      const at = { round, position: -1, tagsSha256: 'x' };
      await writer.start(checkpointPayload(dir, config, state, at));
      // start() waited for the write before: it is in place, and this one's arrays have moved away.
      assert.equal(written.length, round - 1, `written before round ${round}'s start returned`);
      assert.equal(state.params.get('fc2.weight')!.length, 0, 'the arrays moved to the writer thread');
    }
    // Two starts in a row: the second waits until the first file is in place.
    for (const round of [4, 5])
      await writer.start(checkpointPayload(dir, config, await s.getState(), { round, position: -1, tagsSha256: 'x' }));
    assert.deepEqual(
      written.map((w) => w.round),
      [1, 2, 3, 4],
    );
    await writer.flush();
    assert.equal(written.length, 5);
    for (const [i, info] of written.slice(0, 3).entries()) {
      const { state } = await readCheckpoint(info.file, config);
      assertSameState(state, states[i]!, path.basename(info.file));
    }
    assertSameState(writer.takeSpare()!, await s.getState(), 'buffers handed back');
  } finally {
    await writer.close();
    s.dispose();
  }
});

test('CheckpointWriter: a failed write is thrown once by flush, in one line naming the file, leaving no temp file', async () => {
  const dir = await tempDir();
  const s = await TrainSession.create(config, { params: initParams(config, 3) }, { engine: 'ort' });
  process.env.ALT_I2V_FAULT_ENOSPC = 'round-000007';
  const written: number[] = [];
  const writer = new CheckpointWriter(async (info) => {
    written.push(info.round);
  });
  try {
    const at = { round: 7, position: -1, tagsSha256: 'x' };
    await writer.start(checkpointPayload(dir, config, await s.getState(), at));
    await assert.rejects(writer.flush(), (err: Error) => {
      assert.match(err.message, /^cannot write ".*round-000007\.safetensors" \(no space left on the device\)$/);
      return true;
    });
    await writer.flush(); // thrown once
    assert.deepEqual(written, []);
    assert.deepEqual(await readdir(dir), []);
    assert.ok(writer.takeSpare(), 'the buffers come back after a failure too');
  } finally {
    delete process.env.ALT_I2V_FAULT_ENOSPC;
    await writer.close();
    s.dispose();
  }
});

test('train --checkpoint-every 2: rounds 2, 4 and the last are written, and training is unchanged by it', async () => {
  const root = await tempDir();
  const shards = await tinyShards(root, 120, 6);
  const train = (out: string, ...more: string[]): Promise<{ code: number; err: string[] }> =>
    tinyTrain(shards, out, '--keep', '9', ...more);
  const every = path.join(root, 'every2');
  const each = path.join(root, 'each');
  const r = await train(every, '--rounds', '5', '--checkpoint-every', '2');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal((await train(each, '--rounds', '5')).code, 0);
  const rounds = (await listCheckpoints(path.join(every, 'checkpoints'))).map((c) => c.round);
  assert.deepEqual(rounds, [0, 2, 4, 5]);
  const log = (await readFile(path.join(every, 'log.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; checkpointBlockedSeconds?: number });
  const blocked = log.filter((e) => e.type === 'round').map((e) => e.checkpointBlockedSeconds!);
  assert.deepEqual(
    blocked.map((b) => b > 0),
    [false, true, false, true, true],
  );
  const last = async (run: string): Promise<Required<TrainState>> => {
    const c = (await listCheckpoints(path.join(run, 'checkpoints'))).at(-1)!;
    const cfg = JSON.parse(await readFile(path.join(run, 'config.json'), 'utf8')) as { model: typeof config };
    return (await readCheckpoint(c.file, cfg.model)).state;
  };
  assertSameState(await last(every), await last(each), 'round 5');
  const bad = await train(path.join(root, 'bad'), '--rounds', '2', '--checkpoint-every', '0');
  assert.equal(bad.code, 2);
  assert.match(bad.err.join('\n'), /--checkpoint-every/);
});
