// Which tags to report for one image, as sd-scripts' WD tagger decides them: a threshold per category
// (general, character, any other by id) or per tag, MCut per category (character floored at 0.15),
// ratings apart (the most probable one, all, or none), excluded tags removed, then at most the top K.
import { CATEGORY } from '../data/tags.js';
import type { RATING_MODES } from './pred-spec.js';

/** The one form tags are matched in: underscores for spaces, as in tags.csv. */
export const tagKey = (tag: string): string => tag.trim().replace(/ +/g, '_');

export interface TagScore {
  tag: string;
  prob: number;
  category: number;
}

export type RatingMode = (typeof RATING_MODES)[number];

/** MCut's floor for character tags (the WD taggers' web UI). */
export const CHARACTER_MCUT_FLOOR = 0.15;

export interface SelectOptions {
  /** At most this many tags (ratings included); undefined: no cap. */
  top?: number;
  /** The threshold of every category without its own; undefined: none. */
  threshold?: number;
  /** Thresholds by category id. */
  categoryThresholds?: ReadonlyMap<number, number>;
  /** Thresholds by tag name (e.g. `eval --per-tag`'s P = R column), before any category's. */
  tagThresholds?: ReadonlyMap<string, number>;
  /** MCut over all non-rating tags together ('all') or within each listed category. */
  mcut?: 'all' | ReadonlySet<number>;
  /** Rating tags (category 9): only the most probable one (default), all that pass, or none. */
  rating?: RatingMode;
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

const byProb = (a: TagScore, b: TagScore): number => b.prob - a.prob || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);

/** The k-th largest of `values` (k ≥ 1), by a typed-array sort: cheap even for 10,000 tags. */
function kthLargest(values: Float64Array, k: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.max(0, sorted.length - k)]!;
}

/** MCut per category (or over all non-rating tags), from each category's probabilities. */
function mcutThresholds(
  probs: ArrayLike<number>,
  categories: readonly number[],
  keep: (j: number) => boolean,
  mcut: SelectOptions['mcut'],
): Map<number | 'all', number> {
  const out = new Map<number | 'all', number>();
  if (!mcut) return out;
  const sortedOf = (want: (cat: number) => boolean): number[] => {
    const xs: number[] = [];
    for (let j = 0; j < probs.length; j++) if (keep(j) && want(categories[j] ?? 0)) xs.push(probs[j]!);
    return Array.from(Float64Array.from(xs).sort().reverse());
  };
  if (mcut === 'all') out.set('all', mcutThreshold(sortedOf((c) => c !== CATEGORY.rating)));
  else {
    for (const cat of mcut) {
      const t = mcutThreshold(sortedOf((c) => c === cat));
      out.set(cat, cat === CATEGORY.character ? Math.max(CHARACTER_MCUT_FLOOR, t) : t);
    }
  }
  return out;
}

export function selectTags(
  probs: ArrayLike<number>,
  tags: readonly string[],
  categories: readonly number[],
  opts: SelectOptions,
): TagScore[] {
  const keep = (j: number): boolean => !opts.exclude?.has(tags[j]!);
  const cuts = mcutThresholds(probs, categories, keep, opts.mcut);
  const thresholdOf = (tag: string, category: number): number | undefined =>
    opts.tagThresholds?.get(tag) ??
    cuts.get(category) ??
    (category === CATEGORY.rating ? undefined : cuts.get('all')) ??
    opts.categoryThresholds?.get(category) ??
    opts.threshold;
  const mode = opts.rating ?? 'top';
  // Without any threshold, only the top K can be reported: skip everything below the K-th probability.
  let floor = -Infinity;
  if (
    opts.top !== undefined &&
    opts.threshold === undefined &&
    !opts.categoryThresholds?.size &&
    !opts.tagThresholds?.size &&
    !opts.mcut
  ) {
    const xs: number[] = [];
    for (let j = 0; j < probs.length; j++) if (keep(j) && categories[j] !== CATEGORY.rating) xs.push(probs[j]!);
    if (xs.length > opts.top) floor = kthLargest(Float64Array.from(xs), opts.top);
  }
  const ratings: TagScore[] = [];
  const chosen: TagScore[] = [];
  for (let j = 0; j < tags.length; j++) {
    if (!keep(j)) continue;
    const tag = tags[j]!;
    const category = categories[j] ?? 0;
    const prob = probs[j]!;
    if (category === CATEGORY.rating) {
      if (mode === 'none') continue;
      const t = mode === 'top' ? undefined : thresholdOf(tag, category);
      if (t === undefined || prob >= t) ratings.push({ tag, prob, category });
      continue;
    }
    if (prob < floor) continue;
    const t = thresholdOf(tag, category);
    if (t === undefined || prob >= t) chosen.push({ tag, prob, category });
  }
  ratings.sort(byProb);
  chosen.sort(byProb);
  const chosenRatings = mode === 'top' ? ratings.slice(0, 1) : ratings;
  const others = opts.top !== undefined ? chosen.slice(0, Math.max(0, opts.top - chosenRatings.length)) : chosen;
  const out = [...chosenRatings, ...others].sort(byProb);
  return opts.top !== undefined ? out.slice(0, opts.top) : out;
}
