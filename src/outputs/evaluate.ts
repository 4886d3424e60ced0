// `eval`: the exported model run over shards (holdout by default), with the labels to score it against
// (the metrics themselves live in src/metrics/), and the base rate a model is measured against.
import { predictOverShards, readShard, readShardIndex, type ShardIndexJson } from '../data/shards.js';
import { baseRateMap } from '../metrics/metrics.js';
import { UsageError } from '../util/errors.js';
import type { TaggerModel } from '../model/tagger.js';
import { nonFiniteError } from '../predict/tagging.js';

/** Run the exported model over shards (holdout by default) and collect probabilities and labels. */
export async function predictShards(
  model: TaggerModel,
  dir: string,
  split: 'holdout' | 'train' | 'all',
  batch: number,
): Promise<{ probs: Float32Array; labels: Uint8Array; n: number; names: string[] }> {
  const index = await readShardIndex(dir);
  if (JSON.stringify(index.tags.names) !== JSON.stringify(model.meta.tags)) {
    throw new UsageError(
      `Expected shards made with the model's tags but ${JSON.stringify(dir)} has ${index.tags.count} tags that differ from the model's ${model.meta.tags.length}`,
    );
  }
  if (index.imageSize !== model.meta.imageSize)
    throw new UsageError(
      `Expected ${model.meta.imageSize}px shards for this model but ${JSON.stringify(dir)} has ${index.imageSize}px`,
    );
  const entries = index.shards.filter((s) => split === 'all' || s.split === split);
  if (entries.reduce((a, s) => a + s.count, 0) === 0)
    throw new UsageError(`Expected ${split} images in ${JSON.stringify(dir)} but it has none`);
  const r = await predictOverShards(dir, index, entries, batch, async (images, _labels, n) => {
    const { probs, nonFinite } = await model.run(images, n);
    if (nonFinite.length > 0) throw nonFiniteError(model, nonFinite.length, n);
    return probs;
  });
  return { ...r, names: index.tags.names };
}

/** The mAP of a tagger that only knows each tag's frequency, on the holdout shards. */
export async function holdoutBaseRate(shards: string, index: ShardIndexJson): Promise<{ base: number; n: number }> {
  const labels: Uint8Array[] = [];
  let n = 0;
  for (const h of index.shards.filter((s) => s.split === 'holdout')) {
    const s = await readShard(shards, h, index);
    labels.push(s.labels);
    n += s.count;
  }
  const base = baseRateMap(Buffer.concat(labels), n, index.tags.count);
  return { base, n };
}
