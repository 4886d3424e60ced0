// What a new user reads: readable curves (round ticks, zero-based axes, the checkpoint export picks, the
// frequency-only line, the holdout size), next-command hints, warnings about a small holdout and training
// from scratch, a run folder given as --model, progress that reaches 100%.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bestRound, curvesSvg, type CurvePoint } from '../../src/train/curves.js';
import { cli, cliSteps, tempDir } from '../helpers.js';

const root = await tempDir();
const data = path.join(root, 'data');
await cliSteps(['synth', '--out', data, '--count', '130', '--seed', '3']);

test('curves.svg: round ticks with images seen, axes from zero, the best round marked, the frequency-only line, the holdout size', () => {
  const points: CurvePoint[] = [1, 2, 3, 4].map((r) => ({
    round: r,
    images: r * 100,
    trainLoss: 0.5 / r,
    holdoutLoss: 0.6 / r,
    map: [0.3, 0.5, 0.5, 0.4][r - 1]!,
  }));
  const svg = curvesSvg(points, { holdout: 37, baseMap: 0.21 });
  assert.equal(bestRound(points)!.round, 3, 'ties: the later round, as export picks');
  assert.match(svg, /holdout mAP \(37 images\)/);
  assert.match(svg, /export picks round 3 \(0\.500\)/);
  assert.match(svg, /stroke-dasharray="5,4"\/><text[^>]*>frequency-only tagger 0\.210</);
  for (const r of [1, 2, 3, 4])
    assert.match(svg, new RegExp(`text-anchor="middle" font-family="sans-serif">${r}</text>`));
  assert.match(svg, />400<\/text>/, 'images seen under the last tick');
  assert.equal(
    (svg.match(/text-anchor="end" font-family="sans-serif">0<\/text>/g) ?? []).length,
    2,
    'both y-axes start at 0',
  );
});

test('tags, pairs, train and export print the next command; small holdouts and training from scratch are explained', async () => {
  const tags = await cli('tags', data, '--out', path.join(root, 'tags.csv'));
  assert.match(tags.out[0]!, /distinct tags \(\d+ on fewer than 2 images dropped\); wrote \d+ to/);
  assert.equal(tags.out.at(-1), `next: alt-i2v-ort pairs ${data} --tags ${path.join(root, 'tags.csv')} --out shards`);
  const shards = path.join(root, 'shards');
  const pairs = await cli(
    'pairs',
    data,
    '--tags',
    path.join(root, 'tags.csv'),
    '--out',
    shards,
    '--size',
    '32',
    '--shard-size',
    '50',
    '--holdout',
    '0.2',
  );
  assert.match(
    pairs.err.join('\n'),
    /warning: the holdout has \d+ images: its mAP will be noisy; hold out more with --holdout/,
  );
  assert.equal(pairs.out.at(-1), `next: alt-i2v-ort train ${shards} --out run`);
  const run = path.join(root, 'run');
  const train = await cli(
    'train',
    shards,
    '--out',
    run,
    '--backbone',
    'vgg16',
    '--hidden',
    '8',
    '--batch',
    '8',
    '--rounds',
    '2',
    '--freeze',
    '0',
  );
  assert.equal(train.code, 0, train.err.join('\n'));
  assert.match(
    train.err.join('\n'),
    /--backbone vgg16 starts from random weights \(training from scratch\); to start from ImageNet weights .*notop\.h5/,
  );
  for (const r of [1, 2])
    assert.match(
      train.err.join('\n'),
      new RegExp(`round ${r}/2: (\\d+)/\\1 \\(100\\.0%\\)`),
      `round ${r} progress reaches 100%`,
    );
  assert.equal(train.out.at(-1), `next: alt-i2v-ort export ${run} --out model.onnx`);
  const svg = await readFile(path.join(run, 'curves.svg'), 'utf8');
  assert.match(svg, /holdout mAP \(\d+ images\)/);
  assert.match(svg, /frequency-only tagger 0\.\d{3}/);
  const model = path.join(root, 'model.onnx');
  const ex = await cli('export', run, '--out', model);
  assert.equal(ex.out.at(-1), `next: alt-i2v-ort pred IMAGES_OR_FOLDER --model ${model}`);
  for (const command of ['pred', 'vec', 'eval']) {
    const r = await cli(command, command === 'eval' ? shards : data, '--model', run);
    assert.equal(r.code, 2);
    assert.match(
      r.err.at(-1)!,
      new RegExp(
        `is a training run folder; export its best checkpoint first: alt-i2v-ort export ${run.replace(/[/.]/g, '\\$&')} --out model\\.onnx`,
      ),
    );
  }
});
