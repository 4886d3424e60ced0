// `pred`'s work: images decoded ahead of the model, tags selected per image, which images belong to a
// stable part of the input list (for N machines or a job array), and the tag frequencies of the run. Caption files
// are src/captions/caption-file.ts.
import { createHash } from 'node:crypto';
import type { Specs } from '../util/option-spec.js';
import { decodeBatches } from './inputs.js';
import type { TaggerModel } from '../model/tagger.js';
import { selectTags, type SelectOptions, type TagScore } from '../select/select.js';

export interface Part {
  /** 1-based. */
  index: number;
  count: number;
}

/**
 * Whether an image belongs to part I of N: a hash of its key (its path relative to the folder argument
 * it was found under), so machines that mount one share at different places agree.
 */
export function inPart(key: string, part: Part): boolean {
  return createHash('sha1').update(key).digest().readUInt32BE(0) % part.count === part.index - 1;
}

/** An image to tag: its file, its stable key, and the folder argument it was found under (if one). */
export type ImageEntry = { file: string; key: string; root?: string };

async function* filesOf(entries: AsyncIterable<ImageEntry> | Iterable<ImageEntry>): AsyncGenerator<string> {
  for await (const e of entries) yield e.file;
}

/** Why an image whose scores hold a NaN or an infinity gets no tags. */
export const NON_FINITE = 'the model gave it non-finite scores (NaN or infinity): no tags from them';

/** A run over shards (eval, a gallery of shards) cannot skip images: a NaN or an infinity stops it. */
export function nonFiniteError(model: TaggerModel, count: number, of: number): Error {
  return new Error(
    `${model.meta.source || 'the model'} gave non-finite scores (NaN or infinity) for ${count} of ${of} images: it is broken, no metrics from it`,
  );
}

export type Tagged =
  | { file: string; tags: TagScore[]; probs: Float32Array; failure?: undefined }
  | { file: string; failure: string; tags?: undefined; probs?: undefined };

/**
 * Tags (by `select`; none without it) and scores for every image of `entries` (listImageEntries), in
 * order; unreadable images as failures.
 */
export async function* tagImages(
  model: TaggerModel,
  entries: AsyncIterable<ImageEntry> | Iterable<ImageEntry>,
  opts: { batch: number; select?: SelectOptions; frames?: number; merge?: FrameMerge },
): AsyncGenerator<Tagged> {
  const { tags, categories } = model.meta;
  const k = tags.length;
  for await (const b of decodeBatches(filesOf(entries), {
    ...model.preprocess,
    batch: opts.batch,
    frames: opts.frames,
  })) {
    for (const f of b.failures) yield { file: f.file, failure: f.reason };
    if (b.files.length === 0) continue;
    const rows = b.frames.reduce((a, c) => a + c, 0);
    const { probs, nonFinite } = await model.run(b.images, rows);
    let row = 0;
    for (let i = 0; i < b.files.length; i++) {
      const n = b.frames[i]!;
      const first = row;
      row += n;
      if (nonFinite.some((r) => r >= first && r < first + n)) {
        yield { file: b.files[i]!, failure: NON_FINITE };
        continue;
      }
      const p =
        n === 1 ? probs.subarray(first * k, (first + 1) * k) : mergeFrames(probs, first, n, k, opts.merge ?? 'max');
      yield { file: b.files[i]!, tags: opts.select ? selectTags(p, tags, categories, opts.select) : [], probs: p };
    }
  }
}

export const FRAME_MERGES = ['max', 'mean'] as const;
export type FrameMerge = (typeof FRAME_MERGES)[number];

/** --frames and --frames-merge, declared once for `pred` and `serve` (src/util/option-spec.ts). */
export const FRAME_OPTIONS = {
  frames: {
    type: 'number',
    default: 1,
    range: [1, 1000],
    integer: true,
    describe: 'Tag N evenly spaced frames of each animated GIF, WebP, APNG or video and merge their scores',
  },
  'frames-merge': { type: 'string', choices: FRAME_MERGES, default: 'max', describe: 'How frames merge: max or mean' },
} as const satisfies Specs;

/** One score per tag from an image's `n` frame rows starting at `first`: the largest, or the mean. */
export function mergeFrames(probs: Float32Array, first: number, n: number, k: number, merge: FrameMerge): Float32Array {
  const out = new Float32Array(k);
  for (let j = 0; j < k; j++) {
    let acc = merge === 'max' ? -Infinity : 0;
    for (let f = first; f < first + n; f++) {
      const v = probs[f * k + j]!;
      acc = merge === 'max' ? Math.max(acc, v) : acc + v;
    }
    out[j] = merge === 'max' ? acc : acc / n;
  }
  return out;
}

/** Counts of each written tag over the run (sd-scripts' --frequency_tags), most frequent first. */
export class TagFrequency {
  private readonly counts = new Map<string, number>();

  add(tags: readonly string[]): void {
    for (const t of tags) this.counts.set(t, (this.counts.get(t) ?? 0) + 1);
  }

  /** The counts in the order tags were first counted. */
  entries(): ReadonlyMap<string, number> {
    return this.counts;
  }

  rows(): [string, number][] {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}
