// kill -9 at seeded random moments of `pairs` and `train`: re-running (`pairs`) or resuming (`train`,
// or starting again when the kill came before the run existed) ends byte-identical to an uninterrupted
// run, with no step logged twice.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Rng } from '../../training/rng.js';
import { assertSameFiles, data, fault, killAfter, root, run, shards, snapshot, tagsCsv, trainArgs } from './harness.js';

const PAIRS = (out: string): string[] => [
  'pairs',
  data,
  '--tags',
  tagsCsv,
  '--out',
  out,
  '--size',
  '32',
  '--shard-size',
  '40',
  '--holdout',
  '0.15',
];

/** Seeded kill moments spread over a run's duration (5%–95%). */
function moments(seed: number, n: number, durationMs: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => Math.round(durationMs * (0.05 + (0.9 * (i + rng.next())) / n)));
}

export async function registerKills(count: { pairs: number; train: number }): Promise<void> {
  // Reference runs, timed, so the kills land inside the work.
  let t = performance.now();
  const refPairs = path.join(root, 'ref-pairs');
  assert.equal(run(PAIRS(refPairs)).code, 0);
  const pairsMs = performance.now() - t;
  const reference = await snapshot(refPairs);
  assertSameFiles(await snapshot(shards), reference, 'a child-process pairs equals the in-process one');
  t = performance.now();
  const refRun = path.join(root, 'ref-run');
  const r = run(trainArgs(refRun, 3));
  assert.equal(r.code, 0, r.err);
  const trainMs = performance.now() - t;
  const finalName = path.join('checkpoints', 'round-000003.safetensors');
  const finalRef = await readFile(path.join(refRun, finalName));

  for (const [i, ms] of moments(71, count.pairs, pairsMs).entries()) {
    fault(`kill -9 in pairs at ${ms} ms (case ${i + 1}): re-running ends byte-identical`, async () => {
      const out = path.join(root, `kill-pairs-${i}`);
      await killAfter(PAIRS(out), ms);
      const again = run(PAIRS(out));
      assert.equal(again.code, 0, again.err);
      assertSameFiles(await snapshot(out), reference, `pairs killed at ${ms} ms`);
    });
  }
  for (const [i, ms] of moments(72, count.train, trainMs).entries()) {
    fault(
      `kill -9 in train at ${ms} ms (case ${i + 1}): resuming ends byte-identical, no step logged twice`,
      async () => {
        const out = path.join(root, `kill-train-${i}`);
        await killAfter(trainArgs(out, 3), ms);
        const exists = existsSync(path.join(out, 'config.json'));
        const again = run(trainArgs(out, 3, exists ? ['--resume'] : []));
        assert.equal(again.code, 0, again.err);
        assert.ok(
          (await readFile(path.join(out, finalName))).equals(finalRef),
          `final checkpoint after a kill at ${ms} ms`,
        );
        const steps = (await readFile(path.join(out, 'log.jsonl'), 'utf8'))
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
          .filter((e) => e.type === 'step')
          .map((e) => e.step as number);
        assert.deepEqual(
          steps,
          [...new Set(steps)].sort((a, b) => a - b),
          'each step logged once, in order',
        );
      },
    );
  }
}
