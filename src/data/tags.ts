// The tag index, tags.csv in the WD taggers' `selected_tags.csv` layout: tag_id,name,category,count.
// Row order is the model's output index. Counting streams over the dataset; memory follows distinct tags.
import { createHash } from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';
import { MAX_TAG_LENGTH, readTagFile, TagFileError, walkDataset } from './scan.js';

/**
 * Tag categories: Danbooru's ids as WD's selected_tags.csv uses them (general 0, artist 1, copyright 3,
 * character 4, meta 5; rating 9), and ids of our own for the categories other taggers add (Camie's year,
 * cl_tagger's quality and model, e621's species, lore and invalid).
 */
export const CATEGORY = {
  general: 0,
  artist: 1,
  copyright: 3,
  character: 4,
  meta: 5,
  rating: 9,
  year: 10,
  quality: 11,
  model: 12,
  species: 13,
  lore: 14,
  invalid: 15,
} as const;

export function categoryOf(tag: string): number {
  return tag.startsWith('rating:') ? CATEGORY.rating : CATEGORY.general;
}

// eslint-disable-next-line no-control-regex -- control characters are what this looks for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Refuse tag names a terminal or a caption must not receive: empty, or holding control characters. */
export function checkTagNames(tags: readonly string[], where: string): void {
  tags.forEach((t, i) => {
    if (typeof t !== 'string' || t.trim() === '')
      throw new UsageError(`Expected a tag name at row ${i + 1} of ${where} but it is empty`);
    const c = CONTROL.exec(t);
    if (c)
      throw new UsageError(
        `Expected tag names without control characters in ${where} but row ${i + 1} holds U+${c[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`,
      );
  });
}

/**
 * What the option parsers read of a model (src/select/options.ts, src/captions/style.ts): its tags and
 * their categories in output order, where they come from (for messages), and its family's published
 * default thresholds, if any.
 */
export interface TagInfo {
  tags: readonly string[];
  categories: readonly number[];
  source: string;
  thresholds: { default: number; character?: number } | null;
}

export interface TagRow {
  name: string;
  category: number;
  count: number;
}

export interface TagCounts {
  counts: Map<string, number>;
  images: number;
  imagesWithoutTagFile: number;
  tagFilesWithoutImage: number;
  /** Tag files left out: unreadable, not UTF-8/UTF-16, or holding control characters. */
  skippedTagFiles: number;
}

/** Count tags over every image's tag file under `root`. */
export async function countTags(
  root: string,
  onImage?: (done: number) => void,
  onWarning?: (line: string) => void,
): Promise<TagCounts> {
  const counts = new Map<string, number>();
  let images = 0;
  let imagesWithoutTagFile = 0;
  let tagFilesWithoutImage = 0;
  let skippedTagFiles = 0;
  for await (const entry of walkDataset(root)) {
    if (entry.kind === 'orphan-tags') {
      tagFilesWithoutImage++;
      continue;
    }
    images++;
    if (!entry.tagFile) imagesWithoutTagFile++;
    else {
      const file = entry.tagFile;
      let tags: string[] = [];
      try {
        tags = await readTagFile(file, (t) =>
          onWarning?.(
            `warning: ${file}: tag of ${t.length} characters left out (over ${MAX_TAG_LENGTH}): ${JSON.stringify(t.slice(0, 40))}…`,
          ),
        );
      } catch (err) {
        if (!(err instanceof TagFileError)) throw err;
        skippedTagFiles++;
        onWarning?.(`warning: ${file}: skipped, it ${err.message}`);
      }
      for (const tag of tags) counts.set(tag, (counts.get(tag) ?? 0) + 1);
    }
    onImage?.(images);
  }
  return { counts, images, imagesWithoutTagFile, tagFilesWithoutImage, skippedTagFiles };
}

/** The top `top` tags with at least `minCount` images, by count descending, ties by name. */
export function selectTags(counts: Map<string, number>, top: number, minCount: number): TagRow[] {
  const rows: TagRow[] = [];
  for (const [name, count] of counts) if (count >= minCount) rows.push({ name, category: categoryOf(name), count });
  rows.sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return rows.slice(0, top);
}

export function formatTagsCsv(rows: readonly TagRow[]): string {
  return stringify(
    rows.map((r, i) => [i, r.name, r.category, r.count]),
    { header: true, columns: ['tag_id', 'name', 'category', 'count'] },
  );
}

/** A loaded tags.csv: names in output order, with a content hash that shards and runs record. */
export class TagIndex {
  private readonly byName: Map<string, number>;

  private constructor(
    readonly rows: readonly TagRow[],
    /** sha256 of the file bytes, hex. */
    readonly hash: string,
  ) {
    this.byName = new Map(rows.map((r, i) => [r.name, i]));
  }

  get size(): number {
    return this.rows.length;
  }

  get names(): string[] {
    return this.rows.map((r) => r.name);
  }

  indexOf(tag: string): number | undefined {
    return this.byName.get(tag);
  }

  static async load(file: string): Promise<TagIndex> {
    return TagIndex.parse(await readInput(file, 'a tags.csv file for --tags'), file);
  }

  static parse(bytes: Buffer, file: string): TagIndex {
    const where = JSON.stringify(file);
    let records: string[][];
    try {
      records = parse(bytes, { bom: true, skip_empty_lines: true, relax_column_count: false });
    } catch (err) {
      throw new UsageError(`Expected CSV in ${where} but it does not parse: ${(err as Error).message}`);
    }
    const header = records[0]?.map((h) => h.trim());
    if (
      !header ||
      header[0] !== 'tag_id' ||
      header[1] !== 'name' ||
      header[2] !== 'category' ||
      header[3] !== 'count'
    ) {
      throw new UsageError(
        `Expected header "tag_id,name,category,count" in ${where} but found ${JSON.stringify(header?.join(',') ?? '')}`,
      );
    }
    const rows: TagRow[] = [];
    const seen = new Set<string>();
    for (let i = 1; i < records.length; i++) {
      const [, name, category, count] = records[i]!;
      const line = `${where} row ${i + 1}`;
      if (!name || /\s/.test(name))
        throw new UsageError(
          `Expected a tag name without spaces in ${line} but received ${JSON.stringify(name ?? '')}`,
        );
      if (seen.has(name))
        throw new UsageError(
          `Expected unique tag names in ${where} but ${JSON.stringify(name)} repeats at row ${i + 1}`,
        );
      const cat = Number(category);
      const cnt = Number(count);
      if (!Number.isInteger(cat) || cat < 0)
        throw new UsageError(`Expected a category integer ≥ 0 in ${line} but received ${JSON.stringify(category)}`);
      if (!Number.isInteger(cnt) || cnt < 0)
        throw new UsageError(`Expected a count integer ≥ 0 in ${line} but received ${JSON.stringify(count)}`);
      seen.add(name);
      rows.push({ name, category: cat, count: cnt });
    }
    if (rows.length === 0) throw new UsageError(`Expected at least one tag in ${where} but it has none`);
    return new TagIndex(rows, createHash('sha256').update(bytes).digest('hex'));
  }
}
