// Which tags to report for one image: sorted by probability, minus excluded tags, cut by a threshold,
// by MCut (the largest gap between consecutive sorted probabilities) or not at all, then the top K.

export interface TagScore {
  tag: string;
  prob: number;
  category: number;
}

export interface SelectOptions {
  top: number;
  threshold?: number;
  mcut?: boolean;
  exclude?: ReadonlySet<string>;
}

/** MCut threshold: the midpoint of the largest gap between consecutive probabilities sorted descending. */
export function mcutThreshold(sorted: readonly number[]): number {
  if (sorted.length < 2) return 0;
  let best = 0;
  let at = 0;
  for (let i = 0; i + 1 < sorted.length; i++) {
    const gap = sorted[i]! - sorted[i + 1]!;
    if (gap > best) {
      best = gap;
      at = i;
    }
  }
  return (sorted[at]! + sorted[at + 1]!) / 2;
}

export function selectTags(probs: ArrayLike<number>, tags: readonly string[], categories: readonly number[], opts: SelectOptions): TagScore[] {
  let list: TagScore[] = [];
  for (let j = 0; j < tags.length; j++) if (!opts.exclude?.has(tags[j]!)) list.push({ tag: tags[j]!, prob: probs[j]!, category: categories[j] ?? 0 });
  list.sort((a, b) => b.prob - a.prob || (a.tag < b.tag ? -1 : 1));
  if (opts.mcut) {
    const t = mcutThreshold(list.map((s) => s.prob));
    list = list.filter((s) => s.prob >= t);
  }
  if (opts.threshold !== undefined) list = list.filter((s) => s.prob >= opts.threshold!);
  return list.slice(0, opts.top);
}
