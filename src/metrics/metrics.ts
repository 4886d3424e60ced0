// Tagging metrics over (N, K) probabilities and {0,1} labels, shared by `train`'s holdout pass and
// `eval`: mAP (macro over tags with positives, the WD taggers' way), MSE (the seed's), micro/macro F1 at
// a threshold and at the threshold where precision = recall, and per-tag AP/F1.

/** Average precision of one tag: mean of precision at each positive, ranking by score (ties: pessimistic). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort(
    (a, b) => scores[b]! - scores[a]! || labels[a]! - labels[b]!,
  );
  let positives = 0;
  let sum = 0;
  order.forEach((i, rank) => {
    if (labels[i]) {
      positives++;
      sum += positives / (rank + 1);
    }
  });
  return positives === 0 ? null : sum / positives;
}

function column(data: ArrayLike<number>, n: number, k: number, j: number): number[] {
  return Array.from({ length: n }, (_, i) => data[i * k + j]!);
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** The mAP a scorer without information gets: each tag's positive rate, averaged like mAP. */
export function baseRateMap(labels: ArrayLike<number>, n: number, k: number): number {
  const rates: number[] = [];
  for (let j = 0; j < k; j++) {
    const pos = column(labels, n, k, j).reduce((a, b) => a + b, 0);
    if (pos > 0) rates.push(pos / n);
  }
  return mean(rates);
}

export function meanSquaredError(probs: ArrayLike<number>, labels: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < probs.length; i++) s += (probs[i]! - labels[i]!) ** 2;
  return s / probs.length;
}

/** True positives, false positives, false negatives. */
export type Counts = [tp: number, fp: number, fn: number];

/** F1 from counts; 0 when there is no true positive. */
export function f1Score([tp, fp, fn]: Counts): number {
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Counts of tag j (over n rows of k columns) at a threshold (prediction = prob ≥ threshold). */
function tagCounts(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
  k: number,
  j: number,
  threshold: number,
): Counts {
  const c: Counts = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const pred = probs[i * k + j]! >= threshold;
    const pos = labels[i * k + j]! === 1;
    if (pred && pos) c[0]++;
    else if (pred) c[1]++;
    else if (pos) c[2]++;
  }
  return c;
}

export function f1AtThreshold(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
  k: number,
  threshold: number,
): { micro: number; macro: number } {
  const total: Counts = [0, 0, 0];
  const perTag: number[] = [];
  for (let j = 0; j < k; j++) {
    const c = tagCounts(probs, labels, n, k, j, threshold);
    c.forEach((v, i) => (total[i]! += v));
    if (c[0] + c[2] > 0) perTag.push(f1Score(c));
  }
  return { micro: f1Score(total), macro: mean(perTag) };
}

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

/** The P = R threshold of scores against labels: the score ranked at the number of positives. */
function prThreshold(scores: ArrayLike<number>, positives: number): number {
  const sorted = Array.from(scores).sort((a, b) => b - a);
  return sorted[Math.max(0, positives - 1)]!;
}

export function evaluatePredictions(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  n: number,
  names: readonly string[],
  threshold: number,
): EvalReport {
  const k = names.length;
  const perTag: TagReport[] = [];
  let totalPositives = 0;
  for (let j = 0; j < k; j++) {
    const scores = column(probs, n, k, j);
    const lab = column(labels, n, k, j);
    const positives = lab.reduce((a, b) => a + b, 0);
    totalPositives += positives;
    const thresholdPR = positives > 0 ? prThreshold(scores, positives) : null;
    perTag.push({
      tag: names[j]!,
      positives,
      ap: averagePrecision(scores, lab),
      f1: f1Score(tagCounts(probs, labels, n, k, j, threshold)),
      thresholdPR,
      f1PR: thresholdPR === null ? null : f1Score(tagCounts(probs, labels, n, k, j, thresholdPR)),
    });
  }
  const withPos = perTag.filter((t) => t.positives > 0);
  const at = f1AtThreshold(probs, labels, n, k, threshold);
  const microThresholdPR = totalPositives > 0 ? prThreshold(probs, totalPositives) : 1;
  const microPR = f1AtThreshold(probs, labels, n, k, microThresholdPR);
  return {
    images: n,
    tags: k,
    threshold,
    mse: meanSquaredError(probs, labels),
    map: mean(withPos.map((t) => t.ap!)),
    microF1: at.micro,
    macroF1: at.macro,
    microThresholdPR,
    microF1PR: microPR.micro,
    macroF1PR: mean(withPos.map((t) => t.f1PR!)),
    perTag,
  };
}

/** Area under the ROC curve of scores against 0/1 labels (Mann–Whitney, ties counted half); 0.5 when one class is absent. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPos = 0;
  let pos = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const rank = (i + j) / 2 + 1; // average rank of the tie group
    for (let k = i; k <= j; k++)
      if (labels[order[k]!]) {
        rankSumPos += rank;
        pos++;
      }
    i = j + 1;
  }
  const neg = scores.length - pos;
  return pos === 0 || neg === 0 ? 0.5 : (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * The threshold where one tag's F1 is highest (prediction = score ≥ threshold): halfway between the
 * lowest score kept and the next lower one, so the same scores give the same F1 again. Null without
 * positives.
 */
export function bestF1Threshold(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { threshold: number; f1: number } | null {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const positives = order.reduce((s, i) => s + (labels[i] ? 1 : 0), 0);
  if (positives === 0) return null;
  let tp = 0;
  let best = { f1: -1, at: 0 };
  for (let r = 0; r < order.length; r++) {
    if (labels[order[r]!]) tp++;
    const last = r + 1 === order.length || scores[order[r + 1]!]! < scores[order[r]!]!;
    if (!last) continue; // ties are kept or dropped together
    const f1 = (2 * tp) / (r + 1 + positives);
    if (f1 > best.f1) best = { f1, at: r };
  }
  const kept = scores[order[best.at]!]!;
  const next = best.at + 1 < order.length ? scores[order[best.at + 1]!]! : kept;
  return { threshold: next < kept ? (kept + next) / 2 : kept, f1: best.f1 };
}
