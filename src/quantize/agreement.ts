// How far an int8 model strays from its float original on the user's own images, at the thresholds
// `pred` would use: the tags each gives (micro F1 of int8 tags against float tags, tags added and
// dropped per image) and the scores (largest and mean |Δp|); the images that agree least are named.
import type { TaggerModel } from '../model/tagger.js';
import type { SelectOptions } from '../select/select.js';
import { selectOptionsFrom } from '../select/options.js';
import { predDefaults } from '../select/pred-spec.js';
import { tagImages, type ImageEntry } from '../predict/tagging.js';

export interface Agreement {
  images: number;
  /** Micro F1 of the int8 model's tags against the float model's (1 where both give none). */
  f1: number;
  /** Tags given in all, by the float model and by the int8 model (both 0: F1 measures nothing). */
  given: { float: number; int8: number };
  addedPerImage: number;
  droppedPerImage: number;
  maxDelta: number;
  meanDelta: number;
  /** The images that agree least (per-image F1), worst first, at most 3. */
  worst: { file: string; f1: number }[];
  /** Images neither model could read. */
  unreadable: string[];
}

/** `N image(s)`. */
export const imagesText = (n: number): string => `${n} image${n === 1 ? '' : 's'}`;

/**
 * The tags the check compares: `pred`'s selection at `threshold` (else the model's own defaults); our own
 * models, which report a top 30 when nothing else decides, are compared at 0.5 instead.
 */
export async function checkSelection(
  model: TaggerModel,
  threshold: number | undefined,
  warn: (l: string) => void,
): Promise<SelectOptions> {
  const s = await selectOptionsFrom({ ...predDefaults(), threshold }, model.tagInfo, warn);
  return s.threshold === undefined && !s.categoryThresholds?.size && !s.mcut
    ? { ...s, threshold: 0.5, top: undefined }
    : s;
}

/** A model's tags and probabilities on each image it could read. */
export type Scores = Map<string, { tags: Set<string>; probs: Float32Array }>;

export async function scores(
  model: TaggerModel,
  entries: ImageEntry[],
  select: SelectOptions,
  batch: number,
): Promise<Scores> {
  const out: Scores = new Map();
  for await (const t of tagImages(model, entries, { batch, select }))
    if (t.failure === undefined)
      out.set(t.file, { tags: new Set(t.tags.map((s) => s.tag)), probs: Float32Array.from(t.probs) });
  return out;
}

/** The int8 model's `b` against the float model's `a` (each run alone, at its own full speed) over `entries`. */
export function agreement(a: Scores, b: Scores, entries: ImageEntry[]): Agreement {
  let [tp, na, nb, added, dropped, maxDelta, sumDelta, count] = [0, 0, 0, 0, 0, 0, 0, 0];
  const per: { file: string; f1: number }[] = [];
  const unreadable: string[] = [];
  for (const { file } of entries) {
    const x = a.get(file);
    const y = b.get(file);
    if (!x || !y) {
      unreadable.push(file);
      continue;
    }
    const both = [...x.tags].filter((t) => y.tags.has(t)).length;
    tp += both;
    na += x.tags.size;
    nb += y.tags.size;
    added += y.tags.size - both;
    dropped += x.tags.size - both;
    per.push({ file, f1: x.tags.size + y.tags.size === 0 ? 1 : (2 * both) / (x.tags.size + y.tags.size) });
    for (let j = 0; j < x.probs.length; j++) {
      const d = Math.abs(x.probs[j]! - y.probs[j]!);
      maxDelta = Math.max(maxDelta, d);
      sumDelta += d;
      count++;
    }
  }
  const images = per.length;
  return {
    images,
    f1: na + nb === 0 ? 1 : (2 * tp) / (na + nb),
    given: { float: na, int8: nb },
    addedPerImage: images ? added / images : 0,
    droppedPerImage: images ? dropped / images : 0,
    maxDelta,
    meanDelta: count ? sumDelta / count : 0,
    worst: per.sort((p, q) => p.f1 - q.f1).slice(0, 3),
    unreadable,
  };
}
