// `export --int8`: calibrated on the run's training shards, marked int8 in its metadata, loaded by
// pred/eval/vec like any model, holdout mAP within 0.01 of the fp32 export; bad flags get one line.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { readShard, readShardIndex } from '../../src/data/shards.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { readMetadataProps } from '../../src/onnx/proto.js';
import { calibrationPlan } from '../../src/train/export-ranges.js';
import { cli, cliSteps, tempDir, tinyDataset } from '../helpers.js';

const root = await tempDir();
const data = path.join(root, 'data');
const shards = path.join(root, 'shards');
const run = path.join(root, 'run');
await tinyDataset(root, { count: 500, seed: 8, shardSize: 120 });
await cliSteps([
  'train',
  shards,
  '--out',
  run,
  '--backbone',
  'vgg16-tiny',
  '--hidden',
  '64',
  '--batch',
  '16',
  '--rounds',
  '50',
]);

test('calibration reads images spread over the training shards, never more than a shard holds', () => {
  const plan = calibrationPlan([120, 120, 120, 120, 50], 256);
  assert.equal(
    plan.reduce((a, p) => a + p.take, 0),
    256,
  );
  assert.ok(plan.every((p) => p.take <= [120, 120, 120, 120, 50][p.shard]!));
  assert.ok(plan.length >= 3, 'more than the first shards');
  assert.equal(
    calibrationPlan([10, 5], 256).reduce((a, p) => a + p.take, 0),
    15,
    'all there is when asked for more',
  );
  const spread = calibrationPlan(
    Array.from({ length: 100 }, () => 1000),
    64,
  );
  assert.ok(spread.at(-1)!.shard >= 80, `last shard read ${spread.at(-1)!.shard} of 100`);
});

test('export --int8: int8 metadata, smaller file, holdout mAP within 0.01 of fp32, probabilities close; vec works', async (t) => {
  const fp = path.join(root, 'fp32.onnx');
  const q8 = path.join(root, 'int8.onnx');
  assert.equal((await cli('export', run, '--out', fp)).code, 0);
  const ex = await cli('export', run, '--out', q8, '--int8', '--calibrate', '100');
  assert.equal(ex.code, 0, ex.err.join('\n'));
  assert.match(ex.out[0]!, /int8 model calibrated on 100 training images/);
  const props = readMetadataProps(await readFile(q8));
  assert.equal(props.get('precision'), 'int8');
  const calib = JSON.parse(props.get('calibration')!);
  assert.equal(calib.images, 100);
  assert.equal(calib.from, shards);
  assert.ok(calib.ranges.relu.every((r: number) => r > 0));
  assert.equal(readMetadataProps(await readFile(fp)).get('precision'), 'fp32');
  const [a, b] = [(await stat(fp)).size, (await stat(q8)).size];
  t.diagnostic(`fp32 ${a} bytes, int8 ${b} bytes (${(a / b).toFixed(2)}× smaller)`);
  assert.ok(a / b > 2.5);

  const mapOf = async (model: string): Promise<number> => {
    const r = await cli('eval', shards, '--model', model);
    assert.equal(r.code, 0, r.err.join('\n'));
    return Number(/mAP (\d\.\d+)/.exec(r.out.join('\n'))![1]);
  };
  const [mFp, mQ8] = [await mapOf(fp), await mapOf(q8)];
  t.diagnostic(`holdout mAP fp32 ${mFp}, int8 ${mQ8}`);
  assert.ok(Math.abs(mFp - mQ8) <= 0.01, `${mFp} vs ${mQ8}`);

  const index = await readShardIndex(shards);
  const hold = await readShard(
    shards,
    index.shards.find((s) => s.split === 'holdout')!,
    index,
  );
  const [m1, m2] = [await TaggerModel.load(fp), await TaggerModel.load(q8)];
  assert.equal(m2.meta.precision, 'int8');
  const [p1, p2] = [(await m1.run(hold.images, hold.count)).probs, (await m2.run(hold.images, hold.count)).probs];
  let sum = 0;
  p1.forEach((p, i) => (sum += Math.abs(p - p2[i]!)));
  t.diagnostic(`mean |Δprob| int8 vs fp32 ${(sum / p1.length).toExponential(2)}`);
  assert.ok(sum / p1.length < 0.02 && sum > 0);
  await Promise.all([m1.release(), m2.release()]);

  const vec = await cli('vec', path.join(data, '000'), '--model', q8, '--out', path.join(root, 'v.npy'));
  assert.equal(vec.code, 0, vec.err.join('\n'));
  assert.ok(existsSync(path.join(root, 'v.npy')));
});

test('export --int8 flags: --calibrate needs --int8 and a count ≥ 1; a missing shards folder is named', async () => {
  const out = path.join(root, 'bad.onnx');
  const noInt8 = await cli('export', run, '--out', out, '--calibrate', '10');
  assert.equal(noInt8.code, 2);
  assert.match(noInt8.err.join('\n'), /Expected --int8 with --calibrate or --shards/);
  const zero = await cli('export', run, '--out', out, '--int8', '--calibrate', '0');
  assert.equal(zero.code, 2);
  assert.match(zero.err.at(-1)!, /Expected integer between 1 and 1000000 for --calibrate but received 0/);
  const gone = path.join(root, 'moved');
  const missing = await cli('export', run, '--out', out, '--int8', '--shards', gone);
  assert.equal(missing.code, 2);
  assert.equal(missing.err.length, 1, missing.err.join('\n'));
  assert.ok(missing.err[0]!.includes(gone), missing.err[0]);
  assert.equal(existsSync(out), false);
});
