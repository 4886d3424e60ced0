// A taught head on the holdout shards, alone (onnxruntime on buildHeadGraph over the stored
// embeddings): per-tag AP, best F1 and its threshold, positives — what `teach` prints and the
// thresholds file beside a merged model holds (pred --thresholds reads its `threshold` column).
import ort from 'onnxruntime-node';
import { stringify } from 'csv-stringify/sync';
import { predictOverShards, readShardIndex, shardPositives } from '../data/shards.js';
import { averagePrecision, bestF1Threshold } from '../metrics/metrics.js';
import { buildHeadGraph, HEAD_SCORES } from '../../training/graphs.js';
import { io, type ModelConfig } from '../../training/params.js';

export interface TagHoldout {
  tag: string;
  /** Positives in the holdout and in the training shards. */
  positives: number;
  trainPositives: number;
  /** The base rate: positives / images of the holdout (the AP of a scorer without information). */
  baseRate: number;
  ap: number | null;
  f1: number | null;
  threshold: number | null;
}

/** Every tag's holdout report for `params` of the head `config` trained on the shards in `dir`. */
export async function headHoldout(
  config: ModelConfig,
  params: Map<string, Float32Array>,
  dir: string,
): Promise<{ images: number; tags: TagHoldout[] }> {
  const index = await readShardIndex(dir);
  const k = config.tags;
  const session = await ort.InferenceSession.create(buildHeadGraph(config, params, false).encode());
  let out: Awaited<ReturnType<typeof predictOverShards>>;
  try {
    out = await predictOverShards(
      dir,
      index,
      index.shards.filter((s) => s.split === 'holdout'),
      256,
      async (x, _l, m) => {
        const d = config.embedding!;
        const t = new ort.Tensor('float16', new Uint16Array(x.buffer, x.byteOffset, m * d), [m, d]);
        return (await session.run({ [io.embedding]: t }))[HEAD_SCORES]!.data as Float32Array;
      },
    );
  } finally {
    await session.release();
  }
  const train = await shardPositives(dir, index, 'train');
  const { probs, labels, n } = out;
  const tags = index.tags.names.map((tag, j) => {
    const s = Array.from({ length: n }, (_, i) => probs[i * k + j]!);
    const y = Array.from({ length: n }, (_, i) => labels[i * k + j]!);
    const pos = y.reduce((a, b) => a + b, 0);
    const best = bestF1Threshold(s, y);
    return {
      tag,
      positives: pos,
      trainPositives: train.counts[j]!,
      baseRate: n ? pos / n : 0,
      ap: averagePrecision(s, y),
      f1: best?.f1 ?? null,
      threshold: best?.threshold ?? null,
    };
  });
  return { images: n, tags };
}

/** The thresholds file beside a merged model: `OUT` without `.onnx`, plus `.thresholds.csv`. */
export const thresholdsFileFor = (out: string): string => out.replace(/\.onnx$/i, '') + '.thresholds.csv';

/** tag,threshold,f1,ap,positives,train_positives: pred --thresholds reads tag and threshold. */
export function thresholdsCsv(tags: readonly TagHoldout[]): string {
  const num = (v: number | null): string => (v === null ? '' : String(Math.round(v * 1e6) / 1e6));
  return stringify(
    tags.map((t) => [t.tag, num(t.threshold), num(t.f1), num(t.ap), t.positives, t.trainPositives]),
    { header: true, columns: ['tag', 'threshold', 'f1', 'ap', 'positives', 'train_positives'] },
  );
}
