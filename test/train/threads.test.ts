// Thread counts: one per physical core where the user names none. ONNX Runtime's own default (0)
// gave a single thread on this project's 2-core VM, so sessions that left it to ONNX Runtime ran on
// one core; these tests count the threads a session really starts.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { TaggerModel } from '../../src/model/tagger.js';
import { TrainSession } from '../../src/train/train-session.js';
import { gradcheckConfig, randomParams } from '../../training/gradcheck.js';
import { coreCount, readCpuFacts, sessionThreads } from '../../src/runtime/threads.js';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';

test('coreCount: affinity scaled by cores per logical CPU, capped by a cgroup quota, at least 1', () => {
  assert.equal(coreCount({ usable: 2, logical: 2, physical: 2 }), 2);
  assert.equal(coreCount({ usable: 16, logical: 16, physical: 8 }), 8, '2-way SMT: one thread per core');
  assert.equal(coreCount({ usable: 4, logical: 16, physical: 8 }), 2, 'affinity to 4 of 16 logical CPUs');
  assert.equal(coreCount({ usable: 64, logical: 64, physical: 64, quota: 2.5 }), 3, 'cpu.max allows 2.5 CPUs');
  assert.equal(coreCount({ usable: 1, logical: 2, physical: 1 }), 1);
  assert.equal(coreCount({ usable: 3 }), 3, 'no topology: affinity alone');
  assert.equal(sessionThreads(5), 5);
  assert.equal(sessionThreads(0), coreCount());
  assert.equal(sessionThreads(undefined), coreCount());
});

test('readCpuFacts reads this machine: physical cores ≤ logical CPUs, and the count matches them', () => {
  const f = readCpuFacts();
  assert.ok(f.usable >= 1);
  if (process.platform === 'linux') {
    assert.ok(f.logical !== undefined && f.physical !== undefined, 'Linux exposes the CPU topology in /sys');
    assert.ok(f.physical! >= 1 && f.physical! <= f.logical!);
  }
  assert.ok(coreCount(f) >= 1 && coreCount(f) <= f.usable);
});

const threadsNow = (): number => readdirSync('/proc/self/task').length;

/** Threads started by `open` (ONNX Runtime's intra-op workers among them), with what it opened still open. */
async function threadsStarted(open: () => Promise<() => Promise<void> | void>): Promise<number> {
  const before = threadsNow();
  const close = await open();
  const started = threadsNow() - before;
  await close();
  return started;
}

const several = coreCount() > 1 && process.platform === 'linux';

test(
  'a TrainSession with no thread count starts one intra-op worker per extra core',
  { skip: !several && 'one core, or no /proc' },
  async () => {
    const c = gradcheckConfig();
    const open = (intraOpThreads?: number) => async () => {
      const s = await TrainSession.create(c, { params: randomParams(c, 1) }, { intraOpThreads });
      return () => s.dispose();
    };
    await threadsStarted(open(1)); // the first opening also starts libuv's pool
    const one = await threadsStarted(open(1));
    const auto = await threadsStarted(open());
    // The native engine opens 3 sessions (train, eval, copy); the ort engine 2 (train, eval).
    assert.ok(
      auto - one >= 2 * (coreCount() - 1),
      `default threads started ${auto} threads, 1 thread ${one}: the default ran on one core`,
    );
  },
);

test(
  'a tagger model loaded with no thread count runs on every core',
  { skip: !several && 'one core, or no /proc' },
  async () => {
    const dir = await tempDir();
    const file = await tinyModel(path.join(dir, 'm.onnx'), ['a', 'b'], [0, 0]);
    const open = (threads?: number) => async () => {
      const m = await TaggerModel.load(file, { threads });
      return () => m.release();
    };
    await threadsStarted(open(1));
    const one = await threadsStarted(open(1));
    const auto = await threadsStarted(open());
    assert.equal(auto - one, coreCount() - 1, `default threads started ${auto} threads, 1 thread ${one}`);
  },
);

test('--threads of the model commands: a bad count is one line naming it; --threads 1 tags as the default does', async () => {
  const dir = await tempDir();
  const file = await tinyModel(path.join(dir, 'm.onnx'), ['a', 'b'], [0, 0]);
  const image = path.join(dir, 'x.png');
  await solid(40, 30, [200, 40, 40]).png().toFile(image);
  const bad = await cli('pred', image, '--model', file, '--threads', '-1');
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.err, ['alt-i2v-ort: Expected integer between 0 and 1024 for --threads but received -1']);
  const one = await cli('pred', image, '--model', file, '--format', 'json', '--threads', '1');
  const auto = await cli('pred', image, '--model', file, '--format', 'json');
  assert.equal(one.code, 0, one.err.join('\n'));
  assert.deepEqual(one.out, auto.out);
});
