// Activation ranges for int8 export: the exported model's fp32 twin run over N images of the run's
// training shards (spread evenly over them), keeping the largest value each quantized tensor reached
// (min-max calibration). One shard is in memory at a time.
import ort from 'onnxruntime-node';
import { ShardSlot, readShard, readShardIndex } from '../data/shards.js';
import { UsageError } from '../util/errors.js';
import { buildCalibrationGraph, RANGE } from '../../training/graphs.js';
import { type ModelConfig } from '../../training/params.js';
import type { ActivationRanges } from '../../training/int8.js';
import { sessionThreads } from '../runtime/threads.js';

export const CALIBRATION_BATCH = 8;

/** Which training shards to read and how many images of each: spread over the whole list. */
export function calibrationPlan(counts: number[], images: number): { shard: number; take: number }[] {
  let left = Math.min(
    images,
    counts.reduce((a, b) => a + b, 0),
  );
  const per = Math.max(CALIBRATION_BATCH, Math.ceil(left / counts.length));
  const visits = Math.min(counts.length, Math.ceil(left / per));
  // Evenly spaced shards first, then the rest in order; more passes if shards run short.
  const order = [
    ...new Set([
      ...Array.from({ length: visits }, (_, i) => Math.floor((i * counts.length) / visits)),
      ...counts.keys(),
    ]),
  ];
  const take = counts.map(() => 0);
  while (left > 0) {
    for (const s of order) {
      const add = Math.min(counts[s]! - take[s]!, per, left);
      take[s]! += add;
      left -= add;
      if (left === 0) break;
    }
  }
  return take.flatMap((t, shard) => (t > 0 ? [{ shard, take: t }] : []));
}

/** A fresh range set (everything at 0), for widenRanges. */
export const emptyRanges = (): ActivationRanges => ({ relu: new Array<number>(13).fill(0), bn: [0, 0], hidden: 0 });

/** Widen `ranges` to cover one calibration-graph run's outputs. */
export function widenRanges(ranges: ActivationRanges, out: Record<string, { data: unknown }>): void {
  const v = (name: string): number => Number((out[name]!.data as Float32Array)[0]);
  ranges.relu = ranges.relu.map((r, j) => Math.max(r, v(RANGE.relu(j))));
  ranges.bn = [Math.min(ranges.bn[0], v(RANGE.bnMin)), Math.max(ranges.bn[1], v(RANGE.bnMax))];
  ranges.hidden = Math.max(ranges.hidden, v(RANGE.hidden));
}

export async function calibrate(
  config: ModelConfig,
  params: Map<string, Float32Array>,
  shardsDir: string,
  images: number,
  onProgress?: (done: number, total: number) => void,
): Promise<{ ranges: ActivationRanges; images: number }> {
  const index = await readShardIndex(shardsDir);
  if (index.imageSize !== config.imageSize || index.tags.count !== config.tags) {
    throw new UsageError(
      `Expected shards of ${config.imageSize} px images with ${config.tags} tags in ${JSON.stringify(shardsDir)} for calibration but they have ${index.imageSize} px and ${index.tags.count} tags`,
    );
  }
  const train = index.shards.filter((s) => s.split === 'train' && s.count > 0);
  if (train.length === 0)
    throw new UsageError(
      `Expected training shards in ${JSON.stringify(shardsDir)} to calibrate the int8 model on but it has none`,
    );
  const plan = calibrationPlan(
    train.map((s) => s.count),
    images,
  );
  const total = plan.reduce((a, p) => a + p.take, 0);
  const session = await ort.InferenceSession.create(buildCalibrationGraph(config, params).encode(), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: sessionThreads(),
  });
  const ranges = emptyRanges();
  const slot = new ShardSlot();
  const px = config.imageSize ** 2 * 3;
  let done = 0;
  try {
    for (const step of plan) {
      const shard = await readShard(shardsDir, train[step.shard]!, index, slot);
      for (let i = 0; i < step.take; i += CALIBRATION_BATCH) {
        const m = Math.min(CALIBRATION_BATCH, step.take - i);
        const image = new ort.Tensor('uint8', shard.images.subarray(i * px, (i + m) * px), [
          m,
          config.imageSize,
          config.imageSize,
          3,
        ]);
        widenRanges(ranges, await session.run({ image }));
        done += m;
        onProgress?.(done, total);
      }
    }
  } finally {
    await session.release();
  }
  const bad = [...ranges.relu, ...ranges.bn, ranges.hidden].find((x) => !Number.isFinite(x));
  if (bad !== undefined)
    throw new UsageError(
      `Expected finite activations while calibrating on ${JSON.stringify(shardsDir)} but one reached ${bad}: the checkpoint is not usable`,
    );
  return { ranges, images: done };
}
