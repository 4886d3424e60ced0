// A run's precision is part of its configuration (issue: trust, round four, 8): --resume keeps it, a
// different --precision is refused, and an fp16 checkpoint without its loss-scaler state is passed over
// like any damaged checkpoint.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/data/safetensors.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { readRunConfig } from '../../src/train/run-config.js';
import { assertOneLine, fault, root, run, trainArgs } from './harness.js';

/** The round lines of a run's log.jsonl. */
async function rounds(out: string): Promise<{ round: number; lossScale?: number }[]> {
  return (await readFile(path.join(out, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; round: number; lossScale?: number })
    .filter((e) => e.type === 'round');
}

export function registerPrecision(): void {
  fault(
    "--resume keeps the run's precision: an fp16 run continues in fp16; another --precision is refused naming both",
    async () => {
      const out = path.join(root, 'prec-fp16');
      assert.equal(run(trainArgs(out, 1, ['--precision', 'fp16'])).code, 0);
      assert.equal((await readRunConfig(out)).precision, 'fp16');
      const other = run([...trainArgs(out, 2), '--resume', '--precision', 'fp32']);
      assert.equal(other.code, 2, other.err);
      assertOneLine(
        other.err,
        /Expected --precision fp16 \(the run's own\) or none with --resume but received --precision fp32/,
      );
      const r = run([...trainArgs(out, 2), '--resume']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /precision \(fp16\) from config\.json/);
      const log = await rounds(out);
      assert.deepEqual(
        log.map((e) => e.round),
        [1, 2],
      );
      assert.ok(
        log.every((e) => typeof e.lossScale === 'number'),
        'round 2 trained in fp16 too',
      );
      const fp32 = path.join(root, 'prec-fp32');
      assert.equal(run(trainArgs(fp32, 1)).code, 0);
      const up = run([...trainArgs(fp32, 2), '--resume', '--precision', 'fp16']);
      assert.equal(up.code, 2, up.err);
      assertOneLine(
        up.err,
        /Expected --precision fp32 \(the run's own\) or none with --resume but received --precision fp16/,
      );
    },
  );

  fault('an fp16 checkpoint without its loss-scaler state is passed over on resume, like a damaged one', async () => {
    const out = path.join(root, 'prec-noscale');
    assert.equal(run(trainArgs(out, 1, ['--precision', 'fp16'])).code, 0);
    const last = (await listCheckpoints(path.join(out, 'checkpoints'))).at(-1)!;
    const { header, data } = await readSafetensors(last.file);
    assert.ok(header.metadata.loss_scale, 'an fp16 checkpoint keeps the scaler');
    const { loss_scale: _, ...metadata } = header.metadata;
    const specs = Object.fromEntries(
      [...header.tensors].map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, chunks: [data.get(name)!] }]),
    );
    await writeSafetensors(last.file, specs, metadata);
    const r = run([...trainArgs(out, 2), '--resume']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /round-000001\.safetensors: passed over, it holds no loss-scaler state/);
    assert.match(r.err, /from round-000000\.safetensors/);
  });
}
