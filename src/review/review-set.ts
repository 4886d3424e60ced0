// `serve --dataset DIR`: a dataset under review (issue 42). Its images (the pred listing rules: recursive,
// the scanner's extensions), each one's caption file (NAME.EXT beside it, read and written in the caption
// format of caption-format.ts) and which images were reviewed, kept in one small state file in DIR. Edits are captions on disk, written
// atomically and never over a caption that changed since the page read it (its SHA-256, the etag, must
// match); nothing is written through a symlink or outside DIR, and images are only ever read.
import { createHash } from 'node:crypto';
import { lstat, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { decodeText, encodeText, walkDataset } from '../data/scan.js';
import { checkTagNames } from '../data/tags.js';
import { captionTargets } from '../captions/caption-file.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { parseJson } from '../util/json.js';
import { tagKey } from '../select/select.js';
import type { CaptionFormat } from './caption-format.js';

export const REVIEW_STATE = '.alt-i2v-review.json';
const STATE_FORMAT = 'alt-i2v-ort/review';

export interface ReviewImage {
  /** Path relative to DIR, '/'-separated: the image's stable name. */
  name: string;
  file: string;
  caption: string;
}

export interface Caption {
  tags: string[];
  /** SHA-256 of the caption file's bytes, or "none" when there is none: what a write must match. */
  etag: string;
}

/** A write refused because the caption changed on disk since `etag` was read; `current` is what is there. */
export class CaptionConflict extends Error {
  constructor(readonly current: Caption) {
    super('the caption changed on disk since it was read');
  }
}

const etagOf = (bytes: Buffer | null): string => (bytes ? createHash('sha256').update(bytes).digest('hex') : 'none');

export class ReviewSet {
  private constructor(
    readonly dir: string,
    readonly images: ReviewImage[],
    private readonly reviewed: Set<string>,
    readonly format: CaptionFormat,
  ) {}

  static async open(dir: string, format: CaptionFormat): Promise<ReviewSet> {
    const root = await realpath(dir).catch(() => {
      throw new UsageError(`Expected an existing folder for --dataset but ${JSON.stringify(dir)} cannot be read`);
    });
    const found: { name: string; file: string }[] = [];
    for await (const e of walkDataset(root)) if (e.kind === 'image') found.push({ name: e.name, file: e.file });
    // As pred names captions: NAME.txt, or NAME.EXT.txt where two images would share one.
    const targets = captionTargets(
      found.map((f) => f.file),
      format.ext,
      () => undefined,
    );
    const images = found.map((f) => ({ ...f, caption: targets.get(f.file)! }));
    const reviewed = await readState(root, new Set(images.map((i) => i.name)));
    return new ReviewSet(root, images, reviewed, format);
  }

  /** The caption tags of the image at `file` (a path as the listing has it); null without a caption or not listed. */
  async tagsOfFile(file: string): Promise<string[] | null> {
    const img = (this.byFile ??= new Map(this.images.map((i) => [i.file, i]))).get(file);
    if (!img || !(await lstat(img.caption).catch(() => null))) return null;
    return (await this.caption(img)).tags;
  }

  private byFile?: Map<string, ReviewImage>;

  isReviewed(name: string): boolean {
    return this.reviewed.has(name);
  }

  get reviewedCount(): number {
    return this.reviewed.size;
  }

  /** The image at `i`, its file checked to be inside DIR (a symlink out of it is refused). */
  async image(i: number): Promise<ReviewImage> {
    const img = this.images[i];
    if (!img) throw new RangeError(`no image ${i}`);
    const real = await realpath(img.file);
    if (real !== this.dir && !real.startsWith(this.dir + path.sep))
      throw new RangeError(`image ${i} leads outside the dataset`);
    return img;
  }

  async caption(img: ReviewImage): Promise<Caption> {
    const info = await lstat(img.caption).catch(() => null);
    if (!info) return { tags: [], etag: 'none' };
    if (!info.isFile()) throw new RangeError(`${img.caption} is not a regular file`);
    const bytes = await readFile(img.caption);
    return { tags: this.itemsOf(bytes).map((it) => it.key), etag: etagOf(bytes) };
  }

  private itemsOf(bytes: Buffer | null): { key: string; text: string }[] {
    return bytes ? this.format.items(decodeText(bytes).text) : [];
  }

  /**
   * Write `tags` (keys) as the caption of `img` in the caption format (a tag the caption holds keeps its
   * text), if its caption is still the one with `etag`; mark the image reviewed. Resolves to the new etag.
   */
  async write(img: ReviewImage, given: string[], etag: string): Promise<string> {
    checkTagNames(given, `the tags for ${img.name}`);
    const tags = [...new Set(given.map(tagKey))];
    // Each tag must read back as itself: a separator or line break inside one would split it.
    for (const tag of tags) {
      if (this.format.keyOf(this.format.textOf(tag)) !== tag)
        throw new RangeError(`the tag ${JSON.stringify(tag)} would not read back as one tag of this caption format`);
    }
    const info = await lstat(img.caption).catch(() => null);
    if (info && !info.isFile()) throw new RangeError(`${img.caption} is not a regular file; not written through`);
    const before = info ? await readFile(img.caption) : null;
    const had = this.itemsOf(before);
    if (etagOf(before) !== etag) throw new CaptionConflict({ tags: had.map((it) => it.key), etag: etagOf(before) });
    const textOf = new Map(had.map((it) => [it.key, it.text]));
    const texts = tags.map((t) => textOf.get(t) ?? this.format.textOf(t));
    // A lone tag written with a space would read back as two (no separator: whitespace splits): its key.
    if (texts.length === 1 && this.format.items(this.format.fileText(texts)).length !== 1) texts[0] = tags[0]!;
    const encoding = before ? decodeText(before).encoding : 'utf-8';
    const bytes = encodeText(this.format.fileText(texts), encoding);
    await writeFileAtomic(img.caption, bytes, info ? info.mode & 0o7777 : undefined);
    this.recount(
      had.map((it) => it.key),
      tags,
    );
    await this.mark(img.name, true);
    return etagOf(bytes);
  }

  async mark(name: string, reviewed: boolean): Promise<void> {
    if (reviewed) this.reviewed.add(name);
    else this.reviewed.delete(name);
    const state = { format: STATE_FORMAT, version: 1, reviewed: [...this.reviewed].sort() };
    await writeFileAtomic(path.join(this.dir, REVIEW_STATE), `${JSON.stringify(state)}\n`);
  }

  /**
   * Every tag of the dataset's captions with its count, for completion: read once, then kept up to date
   * by this server's own writes (a completion list, not a record: edits made elsewhere show on restart).
   */
  async datasetTags(): Promise<Map<string, number>> {
    if (this.tagCounts) return this.tagCounts;
    const counts = new Map<string, number>();
    for (const img of this.images)
      for (const t of (await this.caption(img).catch(() => ({ tags: [] as string[] }))).tags)
        counts.set(t, (counts.get(t) ?? 0) + 1);
    return (this.tagCounts = counts);
  }

  private tagCounts?: Map<string, number>;

  private recount(before: readonly string[], after: readonly string[]): void {
    const c = this.tagCounts;
    if (!c) return;
    for (const t of before) c.set(t, (c.get(t) ?? 1) - 1);
    for (const t of after) c.set(t, (c.get(t) ?? 0) + 1);
    for (const [t, n] of c) if (n <= 0) c.delete(t);
  }
}

/** The reviewed images of the state file, checked; names no longer in the dataset are dropped. */
async function readState(dir: string, names: Set<string>): Promise<Set<string>> {
  const file = path.join(dir, REVIEW_STATE);
  const info = await lstat(file).catch(() => null);
  if (!info) return new Set();
  if (!info.isFile())
    throw new UsageError(
      `Expected the review state in ${JSON.stringify(file)} to be a regular file but it is not (a folder or a symbolic link); remove it to start the review again`,
    );
  const text = await readFile(file, 'utf8');
  let j: { format?: unknown; version?: unknown; reviewed?: unknown };
  try {
    j = parseJson(text) as typeof j;
  } catch {
    throw new UsageError(
      `Expected the review state (JSON) in ${JSON.stringify(file)} but it does not parse; remove it to start the review again`,
    );
  }
  if (
    j?.format !== STATE_FORMAT ||
    j.version !== 1 ||
    !Array.isArray(j.reviewed) ||
    !j.reviewed.every((n) => typeof n === 'string')
  )
    throw new UsageError(
      `Expected ${STATE_FORMAT} version 1 with a list of reviewed images in ${JSON.stringify(file)} but it is not; remove it to start the review again`,
    );
  return new Set((j.reviewed as string[]).filter((n) => names.has(n)));
}
