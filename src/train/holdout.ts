// The holdout pass of a round: the session's eval graph over every holdout shard, one shard in memory
// at a time, and the metrics it gives (loss, mAP, F1, MSE) beside the base rate's mAP; and --patience's
// early stop read from those metrics.
import { predictOverShards, type ShardIndexJson, type ShardSlot } from '../data/shards.js';
import { baseRateMap, evaluatePredictions } from '../metrics/metrics.js';
import { atLeastAsGood, type BestBy, type RoundMetrics } from './checkpoint.js';
import type { CurvePoint } from './curves.js';
import type { TrainSession } from './train-session.js';

/** Evaluate on every holdout shard, one shard in memory at a time (in `slot` when given). */
export async function evaluateHoldout(
  session: TrainSession,
  dir: string,
  index: ShardIndexJson,
  slot?: ShardSlot,
  evalBatch = 64,
): Promise<{ metrics: RoundMetrics; images: number; baseMap: number } | undefined> {
  const holdouts = index.shards.filter((s) => s.split === 'holdout');
  let lossSum = 0;
  const { probs, labels, n } = await predictOverShards(
    dir,
    index,
    holdouts,
    evalBatch,
    async (images, lab, m) => {
      const r = await session.evaluate(images, lab, m);
      lossSum += r.loss * m;
      return r.probs;
    },
    slot,
  );
  if (n === 0) return undefined;
  const r = evaluatePredictions(probs, labels, n, index.tags.names, 0.5);
  const metrics = { holdoutLoss: lossSum / n, map: r.map, microF1: r.microF1, macroF1: r.macroF1, mse: r.mse };
  return { metrics, images: n, baseMap: baseRateMap(labels, n, index.tags.count) };
}

/**
 * --patience: the line that stops a run when the best round by `by` is `patience` or more rounds
 * before `round`; undefined while it is not (or patience is 0).
 */
export function earlyStop(
  curves: readonly CurvePoint[],
  round: number,
  patience: number,
  by: BestBy,
): string | undefined {
  const scored = curves.filter((c) => Number.isFinite(c.map) && Number.isFinite(c.holdoutLoss));
  if (patience === 0 || scored.length === 0) return undefined;
  const best = scored.reduce((a, c) => (atLeastAsGood(c, a, by) ? c : a));
  if (round - best.round < patience) return undefined;
  const what = by === 'loss' ? 'holdout loss has not fallen' : 'holdout mAP has not improved';
  const value = by === 'loss' ? best.holdoutLoss : best.map;
  return `train: stopping early after round ${round}: the ${what} for ${round - best.round} rounds (best ${value.toFixed(4)} at round ${best.round}, --patience ${patience})`;
}
