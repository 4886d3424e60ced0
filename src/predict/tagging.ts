// `pred`'s work: images decoded ahead of the model, tags selected per image, an optional stable part
// of the input list (for N machines or a job array), captions saved next to the images without ever
// writing through a symlink, and the tag frequencies of the run.
import { createHash } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../util/fsx.js';
import { decodeBatches, listImages } from './inputs.js';
import type { TaggerModel } from './model.js';
import { selectTags, type SelectOptions, type TagScore } from './select.js';

export interface Part {
  /** 1-based. */
  index: number;
  count: number;
}

/** Whether a path belongs to part I of N: a hash of the path as listed, so every machine agrees. */
export function inPart(file: string, part: Part): boolean {
  return createHash('sha1').update(file).digest().readUInt32BE(0) % part.count === part.index - 1;
}

async function* onlyPart(files: AsyncIterable<string>, part?: Part): AsyncGenerator<string> {
  for await (const f of files) if (!part || inPart(f, part)) yield f;
}

export type Tagged =
  { file: string; tags: TagScore[]; failure?: undefined } | { file: string; failure: string; tags?: undefined };

/** Tags for every image named by `args` (files, folders, `-`), in input order; unreadable images as failures. */
export async function* tagImages(
  model: TaggerModel,
  args: readonly string[],
  opts: { batch: number; select: SelectOptions; part?: Part },
): AsyncGenerator<Tagged> {
  const { tags, categories } = model.meta;
  const k = tags.length;
  for await (const b of decodeBatches(onlyPart(listImages(args), opts.part), {
    ...model.preprocess,
    batch: opts.batch,
  })) {
    for (const f of b.failures) yield { file: f.file, failure: f.reason };
    if (b.files.length === 0) continue;
    const { probs } = await model.run(b.images, b.files.length);
    for (let i = 0; i < b.files.length; i++)
      yield { file: b.files[i]!, tags: selectTags(probs.subarray(i * k, (i + 1) * k), tags, categories, opts.select) };
  }
}

export type CaptionOutcome = 'written' | 'kept' | 'empty' | 'failed';

/**
 * Write a caption file: never through a symlink (refused), an existing caption kept unless
 * `overwrite` (or merged, when `merge` builds the new text from the old), an empty caption never
 * replacing one unless `allowEmpty`.
 */
export async function saveCaption(
  target: string,
  text: (existing?: string) => string,
  o: { overwrite: boolean; merge: boolean; allowEmpty: boolean },
): Promise<{ outcome: CaptionOutcome; note?: string }> {
  const info = await lstat(target).catch(() => null);
  if (info?.isSymbolicLink()) return { outcome: 'failed', note: `${target} is a symbolic link; not written through` };
  if (info && !info.isFile()) return { outcome: 'failed', note: `${target} is not a regular file; not written` };
  if (info && !o.overwrite && !o.merge)
    return {
      outcome: 'kept',
      note: `${target} exists, not overwritten (use --overwrite), or merge with --append or --prepend`,
    };
  const existing = info && o.merge ? await readFile(target, 'utf8') : undefined;
  const body = text(existing);
  if (body.trim() === '' && info && !o.allowEmpty)
    return {
      outcome: 'kept',
      note: `${target}: no tags for it, the existing caption was kept (use --allow-empty to empty it)`,
    };
  await writeFileAtomic(target, `${body}\n`);
  return { outcome: body.trim() === '' ? 'empty' : 'written' };
}

/** Counts of each written tag over the run (sd-scripts' --frequency_tags), most frequent first. */
export class TagFrequency {
  private readonly counts = new Map<string, number>();

  add(tags: readonly string[]): void {
    for (const t of tags) this.counts.set(t, (this.counts.get(t) ?? 0) + 1);
  }

  rows(): [string, number][] {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}
