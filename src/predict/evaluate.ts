// `eval` metrics over shards: the seed's MSE, mAP (macro over tags with positives), micro/macro F1 at a
// threshold and at the threshold where precision = recall (how the WD taggers report), per-tag AP/F1.
import { readShard, readShardIndex, ShardSlot, type ShardEntry, type ShardIndexJson } from '../data/shards.js';
import { UsageError } from '../util/errors.js';
import { averagePrecision, f1AtThreshold, meanSquaredError } from '../train/metrics.js';
import type { TaggerModel } from './model.js';

export interface TagReport {
  tag: string;
  positives: number;
  ap: number | null;
  f1: number;
  /** The tag's own threshold where its precision equals its recall, and F1 there. */
  thresholdPR: number | null;
  f1PR: number | null;
}

export interface EvalReport {
  images: number;
  tags: number;
  threshold: number;
  mse: number;
  map: number;
  microF1: number;
  macroF1: number;
  /** Micro: one threshold for all tags where predicted positives = actual positives (P = R). */
  microThresholdPR: number;
  microF1PR: number;
  macroF1PR: number;
  perTag: TagReport[];
}

function f1(tp: number, fp: number, fn: number): number {
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** The P = R threshold of scores against labels: the score ranked at the number of positives. */
function prThreshold(scores: number[], positives: number): number {
  const sorted = [...scores].sort((a, b) => b - a);
  return sorted[Math.max(0, positives - 1)]!;
}

export function evaluatePredictions(probs: ArrayLike<number>, labels: ArrayLike<number>, n: number, names: readonly string[], threshold: number): EvalReport {
  const k = names.length;
  const perTag: TagReport[] = [];
  let totalPositives = 0;
  for (let j = 0; j < k; j++) {
    const scores: number[] = [];
    const lab: number[] = [];
    for (let i = 0; i < n; i++) {
      scores.push(probs[i * k + j]!);
      lab.push(labels[i * k + j]!);
    }
    const positives = lab.reduce((a, b) => a + b, 0);
    totalPositives += positives;
    const count = (t: number): [number, number, number] => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (let i = 0; i < n; i++) {
        const p = scores[i]! >= t;
        if (p && lab[i]) tp++;
        else if (p) fp++;
        else if (lab[i]) fn++;
      }
      return [tp, fp, fn];
    };
    const thresholdPR = positives > 0 ? prThreshold(scores, positives) : null;
    perTag.push({ tag: names[j]!, positives, ap: averagePrecision(scores, lab), f1: f1(...count(threshold)), thresholdPR, f1PR: thresholdPR === null ? null : f1(...count(thresholdPR)) });
  }
  const withPos = perTag.filter((t) => t.positives > 0);
  const at = f1AtThreshold(probs, labels, n, k, threshold);
  const microThresholdPR = totalPositives > 0 ? prThreshold(Array.from(probs as ArrayLike<number>), totalPositives) : 1;
  const microPR = f1AtThreshold(probs, labels, n, k, microThresholdPR);
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    images: n, tags: k, threshold, mse: meanSquaredError(probs, labels),
    map: mean(withPos.map((t) => t.ap!)), microF1: at.micro, macroF1: at.macro,
    microThresholdPR, microF1PR: microPR.micro, macroF1PR: mean(withPos.map((t) => t.f1PR!)),
    perTag,
  };
}

/**
 * Probabilities from `run` over the given shards in batches, with their labels, one shard in memory at
 * a time (in `slot`). Shared by `eval` (the exported model) and `train`'s holdout pass (the session).
 */
export async function predictOverShards(
  dir: string,
  index: ShardIndexJson,
  entries: readonly ShardEntry[],
  batch: number,
  run: (images: Uint8Array, labels: Uint8Array, n: number) => Promise<Float32Array>,
  slot: ShardSlot = new ShardSlot(),
): Promise<{ probs: Float32Array; labels: Uint8Array; n: number }> {
  const n = entries.reduce((a, s) => a + s.count, 0);
  const k = index.tags.count;
  const px = index.imageSize ** 2 * 3;
  const probs = new Float32Array(n * k);
  const labels = new Uint8Array(n * k);
  let at = 0;
  for (const e of entries) {
    const shard = await readShard(dir, e, index, slot);
    for (let i = 0; i < shard.count; i += batch) {
      const m = Math.min(batch, shard.count - i);
      const lab = shard.labels.subarray(i * k, (i + m) * k);
      probs.set(await run(shard.images.subarray(i * px, (i + m) * px), lab, m), at * k);
      labels.set(lab, at * k);
      at += m;
    }
  }
  return { probs, labels, n };
}

/** Run the exported model over shards (holdout by default) and collect probabilities and labels. */
export async function predictShards(model: TaggerModel, dir: string, split: 'holdout' | 'train' | 'all', batch: number): Promise<{ probs: Float32Array; labels: Uint8Array; n: number; names: string[] }> {
  const index = await readShardIndex(dir);
  if (JSON.stringify(index.tags.names) !== JSON.stringify(model.meta.tags)) {
    throw new UsageError(`Expected shards made with the model's tags but ${JSON.stringify(dir)} has ${index.tags.count} tags that differ from the model's ${model.meta.tags.length}`);
  }
  if (index.imageSize !== model.meta.imageSize) throw new UsageError(`Expected ${model.meta.imageSize}px shards for this model but ${JSON.stringify(dir)} has ${index.imageSize}px`);
  const entries = index.shards.filter((s) => split === 'all' || s.split === split);
  if (entries.reduce((a, s) => a + s.count, 0) === 0) throw new UsageError(`Expected ${split} images in ${JSON.stringify(dir)} but it has none`);
  const r = await predictOverShards(dir, index, entries, batch, async (images, _labels, n) => (await model.run(images, n)).probs);
  return { ...r, names: index.tags.names };
}
