// Checkpoint retention and choice: --keep 2 over 4 rounds leaves the last 2 and the best; export takes
// the best holdout mAP that log.jsonl records; a run folder without checkpoints is refused; `eval` end
// to end equals the metrics of direct runtime outputs.
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { readShard, readShardIndex } from '../../src/data/shards.js';
import { evaluatePredictions } from '../../src/metrics/metrics.js';
import { cli, tempDir, tinyDataset, tinyTrain } from '../helpers.js';

const root = await tempDir();
const shards = path.join(root, 'shards');
const run = path.join(root, 'run');
await tinyDataset(root, { count: 240, seed: 12, minCount: 4, shardSize: 60 });
const trained = await tinyTrain(shards, run, '--rounds', '4', '--keep', '2');
assert.equal(trained.code, 0, trained.err.join('\n'));

test('--keep 2 over 4 rounds leaves the last 2 finished rounds and the best; export picks the best mAP in log.jsonl', async () => {
  const rounds = (await readFile(path.join(run, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'round');
  assert.equal(rounds.length, 4);
  let best = rounds[0];
  for (const r of rounds) if (r.map >= best.map) best = r; // ties: the later one
  const name = (r: number): string => `round-${String(r).padStart(6, '0')}.safetensors`;
  const want = new Set([name(3), name(4), name(best.round)]);
  assert.deepEqual((await readdir(path.join(run, 'checkpoints'))).sort(), [...want].sort());
  const ex = await cli('export', run, '--out', path.join(root, 'model.onnx'));
  assert.equal(ex.code, 0, ex.err.join('\n'));
  assert.match(
    ex.out[0]!,
    new RegExp(`from .*${name(best.round)} \\(round ${best.round}, holdout mAP ${best.map.toFixed(4)}\\)`),
  );
});

test('eval --split/--per-tag/--format json equals the metrics of direct onnxruntime-node outputs on the shards', async () => {
  const model = path.join(root, 'model.onnx');
  const perTag = path.join(root, 'per-tag.csv');
  const r = await cli(
    'eval',
    shards,
    '--model',
    model,
    '--split',
    'holdout',
    '--per-tag',
    perTag,
    '--format',
    'json',
    '--threshold',
    '0.4',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const report = JSON.parse(r.out.join('\n'));
  const index = await readShardIndex(shards);
  const session = await ort.InferenceSession.create(model);
  const probs: number[] = [];
  const labels: number[] = [];
  for (const e of index.shards.filter((s) => s.split === 'holdout')) {
    const shard = await readShard(shards, e, index);
    const out = await session.run({ image: new ort.Tensor('uint8', shard.images, [shard.count, 32, 32, 3]) });
    probs.push(...(out.probs!.data as Float32Array));
    labels.push(...shard.labels);
  }
  const n = labels.length / index.tags.count;
  const direct = evaluatePredictions(probs, labels, n, index.tags.names, 0.4);
  const { perTag: rows, ...summary } = direct;
  assert.deepEqual(report, JSON.parse(JSON.stringify(summary)));
  const csv = (await readFile(perTag, 'utf8')).trim().split('\n');
  assert.equal(csv[0], 'tag,positives,ap,f1_at_0.4,threshold_p_eq_r,f1_at_p_eq_r');
  assert.equal(csv.length - 1, rows.length);
  assert.equal(csv[1]!.split(',')[0], rows[0]!.tag);
  const all = await cli('eval', shards, '--model', model, '--split', 'all', '--format', 'json');
  assert.equal(
    JSON.parse(all.out.join('\n')).images,
    index.shards.reduce((a, s) => a + s.count, 0),
  );
  await session.release();
});

test('a run folder with config.json and no checkpoint is refused by export and by --resume, naming the folder', async () => {
  await rm(path.join(run, 'checkpoints'), { recursive: true });
  const ex = await cli('export', run, '--out', path.join(root, 'none.onnx'));
  assert.equal(ex.code, 2);
  assert.match(ex.err.at(-1)!, /Expected checkpoints in ".*checkpoints" but there are none: train first/);
  const resume = await cli(
    'train',
    shards,
    '--out',
    run,
    '--backbone',
    'vgg16-tiny',
    '--hidden',
    '16',
    '--rounds',
    '5',
    '--resume',
  );
  assert.equal(resume.code, 2);
  assert.match(resume.err.at(-1)!, /Expected a usable checkpoint to resume from in ".*checkpoints" but there is none/);
});
