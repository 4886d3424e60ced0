// The tiny model trained (TrainSession, on the native engine where it is built) on synth data the test generates: the loss falls
// and the holdout mAP ends far above the tags' base rates.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { makeShards } from '../../src/data/make-shards.js';
import { readShard } from '../../src/data/shards.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { TagIndex, countTags, formatTagsCsv, selectTags } from '../../src/data/tags.js';
import { baseRateMap, evaluatePredictions } from '../../src/metrics/metrics.js';
import { Rng } from '../../training/rng.js';
import { TrainSession } from '../../src/train/train-session.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS } from '../../training/params.js';
import { tempDir } from '../helpers.js';
import { writeFile } from 'node:fs/promises';

test('the tiny model learns synth tags: loss falls, holdout mAP far above base rate', async (t) => {
  const dir = await tempDir();
  await writeSynthDataset(path.join(dir, 'data'), 800, 11);
  const counted = await countTags(path.join(dir, 'data'));
  await writeFile(path.join(dir, 'tags.csv'), formatTagsCsv(selectTags(counted.counts, 5000, 5)));
  const tags = await TagIndex.load(path.join(dir, 'tags.csv'));
  const S = 32;
  const index = await makeShards({
    dataset: path.join(dir, 'data'),
    tags,
    out: path.join(dir, 'shards'),
    shardSize: 10_000,
    imageSize: S,
    holdout: 0.2,
    pad: 'center',
    maxPixels: 1e8,
  });
  const train = await readShard(
    path.join(dir, 'shards'),
    index.shards.find((s) => s.split === 'train')!,
    index,
  );
  const hold = await readShard(
    path.join(dir, 'shards'),
    index.shards.find((s) => s.split === 'holdout')!,
    index,
  );
  const k = tags.size;
  const c = defaultConfig({ tags: k, widths: [...VGG16_TINY_WIDTHS], imageSize: S, hidden: 64, freeze: 0 });
  const session = await TrainSession.create(c, { params: initParams(c, 1) }, { seed: 3 });
  const rng = new Rng(3);
  const batchSize = 16;
  const px = S * S * 3;
  const epochLoss: number[] = [];
  for (let epoch = 0; epoch < 30; epoch++) {
    const order = rng.shuffle([...Array(train.count).keys()]);
    let sum = 0;
    let steps = 0;
    for (let b = 0; b + batchSize <= order.length; b += batchSize) {
      const images = new Uint8Array(batchSize * px);
      const labels = new Uint8Array(batchSize * k);
      order.slice(b, b + batchSize).forEach((j, i) => {
        images.set(train.images.subarray(j * px, (j + 1) * px), i * px);
        labels.set(train.labels.subarray(j * k, (j + 1) * k), i * k);
      });
      sum += await session.step(images, labels, batchSize, 0.001);
      steps++;
    }
    epochLoss.push(sum / steps);
  }
  const r = await session.evaluate(hold.images, hold.labels, hold.count);
  const { map, perTag } = evaluatePredictions(r.probs, hold.labels, hold.count, tags.names, 0.5);
  const base = baseRateMap(hold.labels, hold.count, k);
  t.diagnostic(`training loss by epoch: ${epochLoss.map((l) => l.toFixed(4)).join(' ')}; ${session.steps} steps`);
  t.diagnostic(
    `holdout (${hold.count} images, ${k} tags): loss ${r.loss.toFixed(4)}, mAP ${map.toFixed(3)} vs base rate ${base.toFixed(3)}`,
  );
  const ap = (tag: string): number => perTag[tags.indexOf(tag)!]!.ap!;
  t.diagnostic(
    `AP black_background ${ap('black_background').toFixed(2)}, white_background ${ap('white_background').toFixed(2)}, single_shape ${ap('single_shape').toFixed(2)}`,
  );
  assert.ok(epochLoss.at(-1)! < 0.5 * epochLoss[0]!, `loss ${epochLoss}`);
  assert.ok(map > 2.2 * base, `mAP ${map} vs base ${base}`);
  assert.ok(ap('black_background') > 0.95 && ap('single_shape') > 0.6, 'tags visible in the pixels are learned');
  session.dispose();
});
