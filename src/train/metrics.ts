// Tagging metrics over (N, K) probabilities and {0,1} labels: mAP (macro over tags with positives,
// the WD taggers' way), MSE (the seed's), micro/macro F1 at a threshold.

/** Average precision of one tag: mean of precision at each positive, ranking by score (ties: pessimistic). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || labels[a]! - labels[b]!);
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

/** Macro mAP over tags with at least one positive; also the list per tag (null: no positives). */
export function meanAveragePrecision(probs: ArrayLike<number>, labels: ArrayLike<number>, n: number, k: number): { map: number; perTag: (number | null)[] } {
  const perTag = Array.from({ length: k }, (_, j) => averagePrecision(column(probs, n, k, j), column(labels, n, k, j)));
  const valid = perTag.filter((v): v is number => v !== null);
  return { map: valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : 0, perTag };
}

/** The mAP a scorer without information gets: each tag's positive rate, averaged like mAP. */
export function baseRateMap(labels: ArrayLike<number>, n: number, k: number): number {
  const rates: number[] = [];
  for (let j = 0; j < k; j++) {
    const pos = column(labels, n, k, j).reduce((a, b) => a + b, 0);
    if (pos > 0) rates.push(pos / n);
  }
  return rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0;
}

export function meanSquaredError(probs: ArrayLike<number>, labels: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < probs.length; i++) s += (probs[i]! - labels[i]!) ** 2;
  return s / probs.length;
}

export function f1AtThreshold(probs: ArrayLike<number>, labels: ArrayLike<number>, n: number, k: number, threshold: number): { micro: number; macro: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const perTag: number[] = [];
  for (let j = 0; j < k; j++) {
    let t = 0;
    let f = 0;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const pred = probs[i * k + j]! >= threshold;
      const pos = labels[i * k + j]! === 1;
      if (pred && pos) t++;
      else if (pred) f++;
      else if (pos) m++;
    }
    tp += t;
    fp += f;
    fn += m;
    if (t + m > 0) perTag.push(t === 0 ? 0 : (2 * t) / (2 * t + f + m));
  }
  const micro = tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  const macro = perTag.length ? perTag.reduce((a, b) => a + b, 0) / perTag.length : 0;
  return { micro, macro };
}
