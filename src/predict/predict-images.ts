// The tagging workflow every caller shares (`pred`; `gallery` and `quantize`'s agreement run use its
// core, tagImages): images listed from files, folders or stdin, the model warmed up on a dummy batch
// while the first images decode, tags selected and captioned by one Captioner, tag frequencies counted,
// each result handed to a sink (src/outputs/pred-output.ts writes pred's formats and caption files).
// Unreadable images are reported through `warn` and counted; the caller decides what that means.
import type { CaptionItem, Captioner } from '../captions/style.js';
import type { TaggerModel } from '../model/tagger.js';
import type { SelectOptions, TagScore } from '../select/select.js';
import { listImageEntries } from './inputs.js';
import { inPart, TagFrequency, tagImages, type FrameMerge, type ImageEntry, type Part } from './tagging.js';

export interface PredictOptions {
  /** Files, folders (walked in sorted order) and `-` (paths on stdin). */
  images: readonly string[];
  /** Walk subfolders too. */
  recursive: boolean;
  batch: number;
  part?: Part;
  frames?: number;
  merge?: FrameMerge;
  /** Our selection rules; the sd-scripts and webui captioners select from the scores themselves. */
  select?: SelectOptions;
  captioner: Captioner;
  /**
   * List every image before the first is tagged and hand the list to the sink's `begin` (caption files:
   * two images must not share one); otherwise images stream from the listing into the model.
   */
  listFirst?: boolean;
  /** Images already done (--skip-done), asked after the sink's `begin`: left out, and counted. */
  skip?: (file: string) => boolean;
}

export interface Prediction {
  file: string;
  /** The tags reported, by the captioner's rules. */
  tags: TagScore[];
  /** The caption's items in order. */
  items: CaptionItem[];
  probs: Float32Array;
}

export interface PredictSink {
  /** Called once before the first result, with every image when `listFirst`. */
  begin?(entries: readonly ImageEntry[] | undefined): void | Promise<void>;
  add(p: Prediction): Promise<void>;
}

export interface PredictStats {
  done: number;
  /** Images left out as already done. */
  skipped: number;
  failed: number;
  frequency: TagFrequency;
  /** When the warm-up ended (performance.now()), and how long it took. */
  warmedAt: number;
  warmSeconds: number;
}

/** Tag every image of `o.images` with `model` into `sink`; unreadable images go to `warn`. */
export async function predictImages(
  model: TaggerModel,
  o: PredictOptions,
  sink: PredictSink,
  warn: (line: string) => void,
): Promise<PredictStats> {
  let warmedAt = performance.now();
  let warmSeconds = 0;
  const warm = model.warmUp(o.batch).then(
    (s) => ((warmedAt = performance.now()), (warmSeconds = s)),
    () => undefined,
  );
  const stats = { done: 0, skipped: 0, failed: 0, frequency: new TagFrequency() };
  const entries = o.listFirst
    ? await allEntries(o.images, o.recursive)
    : listImageEntries(o.images, undefined, o.recursive);
  await sink.begin?.(Array.isArray(entries) ? entries : undefined);
  const { batch, select, part, frames, merge, skip } = o;
  const todo = part || skip ? selected(entries, part, skip, () => stats.skipped++) : entries;
  for await (const t of tagImages(model, todo, { batch, select, frames, merge })) {
    if (t.failure !== undefined) {
      stats.failed++;
      warn(`warning: ${t.file}: skipped, ${t.failure}`);
      continue;
    }
    stats.done++;
    const c = o.captioner.caption(t.tags, t.probs);
    stats.frequency.add(c.counted);
    await sink.add({ file: t.file, tags: c.tags, items: c.items, probs: t.probs });
  }
  await warm;
  return { ...stats, warmedAt, warmSeconds };
}

async function allEntries(args: readonly string[], recursive: boolean): Promise<ImageEntry[]> {
  const out: ImageEntry[] = [];
  for await (const e of listImageEntries(args, undefined, recursive)) out.push(e);
  return out;
}

/** `entries` of `part` without those `skip` says are done (each counted by `skipped`), listed or streamed alike. */
async function* selected(
  entries: AsyncIterable<ImageEntry> | Iterable<ImageEntry>,
  part: Part | undefined,
  skip: ((file: string) => boolean) | undefined,
  skipped: () => void,
): AsyncGenerator<ImageEntry> {
  for await (const e of entries) {
    if (part && !inPart(e.key, part)) continue; // another part's: neither done nor skipped here
    if (skip?.(e.file)) skipped();
    else yield e;
  }
}
