// The tags files foreign taggers ship, read into our names and categories, each checked with one line
// naming the file and the row or key that is wrong:
// - wd-csv: WD's selected_tags.csv (tag_id,name,category,count; 9 rating, 0 general, 4 character);
// - e621-csv: Z3D-E621's tags-selected.csv (columns found by header name "name" and "category", as the
//   Python taggers read it with csv.DictReader; e621's category ids: 0 general, 1 artist, 3 copyright,
//   4 character, 5 species, 6 invalid, 7 meta, 8 lore);
// - txt: one tag per line (DeepDanbooru's tags.txt, JoyTag's top_tags.txt; `rating:` tags are ratings);
// - camie-json: Camie Tagger's metadata (dataset_info.tag_mapping.idx_to_tag {"0": tag} and
//   tag_to_category {tag: "general" | "character" | "copyright" | "artist" | "meta" | "rating" | "year"});
// - pixai-json: PixAI's tags_v0.9_13k.json (tag_map {tag: index}; tag_split.gen_tag_count general tags
//   first, then tag_split.character_tag_count character tags);
// - cl-tagger-json: cl_tagger's tag_mapping.json ({"0": {"tag", "category"}}, categories Rating, General,
//   Character, Copyright, Artist, Meta, Quality, Model).
// Categories map onto ours (src/data/tags.ts CATEGORY); a name we have no id for is refused, not guessed.
import path from 'node:path';
import { categoryOf, checkTagNames, TagIndex } from '../data/tags.js';
import { parse } from 'csv-parse/sync';
import { CATEGORY } from '../data/tags.js';
import { UsageError } from '../util/errors.js';
import { parseJson } from '../util/json.js';
import { readInput } from '../util/fsx.js';

export const TAG_FORMATS = ['wd-csv', 'e621-csv', 'txt', 'camie-json', 'pixai-json', 'cl-tagger-json'] as const;
export type TagFormat = (typeof TAG_FORMATS)[number];

export interface ForeignTags {
  tags: string[];
  categories: number[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A category name of a JSON tags file as our id (case-insensitive). */
function categoryId(name: unknown, where: string): number {
  // Own keys only: "__proto__" or "constructor" are not categories.
  const key = typeof name === 'string' ? name.toLowerCase() : '';
  const id = Object.hasOwn(CATEGORY, key) ? (CATEGORY as Record<string, number>)[key] : undefined;
  if (id === undefined)
    throw new UsageError(
      `Expected a category (${Object.keys(CATEGORY).join(', ')}) at ${where} but received ${JSON.stringify(name)}`,
    );
  return id;
}

/** Entries keyed "0".."n-1" (every index once) as an array. */
function byIndex<T>(entries: [string, T][], where: string, what: string): T[] {
  const out: T[] = new Array<T>(entries.length);
  for (const [key, value] of entries) {
    const i = Number(key);
    if (!/^\d+$/.test(key) || i >= entries.length || out[i] !== undefined)
      throw new UsageError(
        `Expected ${what} indexed 0 to ${entries.length - 1}, each once, in ${where} but found the index ${JSON.stringify(key)}`,
      );
    out[i] = value;
  }
  return out;
}

function camie(j: Json, where: string): ForeignTags {
  const mapping = isObject(j.dataset_info) ? j.dataset_info.tag_mapping : undefined;
  if (!isObject(mapping) || !isObject(mapping.idx_to_tag) || !isObject(mapping.tag_to_category))
    throw new UsageError(
      `Expected dataset_info.tag_mapping.idx_to_tag and .tag_to_category in ${where} (Camie Tagger metadata)`,
    );
  const toCategory = mapping.tag_to_category;
  const tags = byIndex(Object.entries(mapping.idx_to_tag), where, 'idx_to_tag entries');
  tags.forEach((t, i) => {
    if (typeof t !== 'string') throw new UsageError(`Expected a tag name at idx_to_tag["${i}"] of ${where}`);
  });
  const names = tags as string[];
  return {
    tags: names,
    categories: names.map((t) =>
      categoryId(
        Object.hasOwn(toCategory, t) ? toCategory[t] : undefined,
        `tag_to_category[${JSON.stringify(t)}] of ${where}`,
      ),
    ),
  };
}

function pixai(j: Json, where: string): ForeignTags {
  const split = j.tag_split;
  if (!isObject(j.tag_map) || !isObject(split))
    throw new UsageError(`Expected tag_map and tag_split in ${where} (PixAI tags)`);
  const entries = Object.entries(j.tag_map).map(([t, i]) => [String(i), t] as [string, string]);
  const tags = byIndex(entries, where, 'tag_map values');
  const general = split.gen_tag_count;
  const character = split.character_tag_count;
  if (
    !Number.isInteger(general) ||
    !Number.isInteger(character) ||
    (general as number) + (character as number) !== tags.length
  )
    throw new UsageError(
      `Expected tag_split.gen_tag_count + character_tag_count = ${tags.length} (the tags in tag_map) in ${where} but received ${JSON.stringify(general)} + ${JSON.stringify(character)}`,
    );
  return { tags, categories: tags.map((_, i) => (i < (general as number) ? CATEGORY.general : CATEGORY.character)) };
}

function clTagger(j: Json, where: string): ForeignTags {
  const rows = byIndex(Object.entries(j), where, 'entries');
  const tags: string[] = [];
  const categories: number[] = [];
  rows.forEach((r, i) => {
    if (!isObject(r) || typeof r.tag !== 'string')
      throw new UsageError(`Expected {"tag", "category"} at "${i}" of ${where} (cl_tagger tag mapping)`);
    tags.push(r.tag);
    categories.push(categoryId(r.category, `"${i}".category of ${where}`));
  });
  return { tags, categories };
}

/** e621's category ids (its API's tag categories) as ours. */
export const E621_CATEGORY: ReadonlyMap<number, number> = new Map([
  [0, CATEGORY.general],
  [1, CATEGORY.artist],
  [3, CATEGORY.copyright],
  [4, CATEGORY.character],
  [5, CATEGORY.species],
  [6, CATEGORY.invalid],
  [7, CATEGORY.meta],
  [8, CATEGORY.lore],
]);

function e621(bytes: Buffer, where: string): ForeignTags {
  let records: string[][];
  try {
    records = parse(bytes, { bom: true, skip_empty_lines: true, relax_column_count: false });
  } catch (err) {
    throw new UsageError(`Expected CSV in ${where} but it does not parse: ${(err as Error).message.split('\n')[0]}`);
  }
  const header = (records[0] ?? []).map((h) => h.trim());
  const nameAt = header.indexOf('name');
  const categoryAt = header.indexOf('category');
  if (nameAt < 0 || categoryAt < 0)
    throw new UsageError(
      `Expected a header with "name" and "category" columns in ${where} (E621 tags) but found ${JSON.stringify(header.join(','))}`,
    );
  const tags: string[] = [];
  const categories: number[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < records.length; i++) {
    const row = records[i]!;
    const id = E621_CATEGORY.get(Number(row[categoryAt]!.trim()));
    if (id === undefined || row[categoryAt]!.trim() === '')
      throw new UsageError(
        `Expected an e621 category (${[...E621_CATEGORY.keys()].join(', ')}) in ${where} row ${i + 1} but received ${JSON.stringify(row[categoryAt])}`,
      );
    const name = row[nameAt]!.trim();
    if (seen.has(name))
      throw new UsageError(`Expected unique tag names in ${where} but ${JSON.stringify(name)} repeats at row ${i + 1}`);
    seen.add(name);
    tags.push(name);
    categories.push(id);
  }
  return { tags, categories };
}

/** The format of a tags file from its name and, for JSON, its content. */
export function sniffTagFormat(file: string, bytes: Buffer): TagFormat {
  const ext = path.extname(file).toLowerCase();
  if (path.basename(file).toLowerCase() === 'tags-selected.csv') return 'e621-csv';
  if (ext === '.csv') return 'wd-csv';
  if (ext !== '.json') return 'txt';
  const j = jsonObject(bytes, file);
  if (isObject(j.dataset_info)) return 'camie-json';
  if ('tag_map' in j) return 'pixai-json';
  return 'cl-tagger-json';
}

function jsonObject(bytes: Buffer, file: string): Json {
  let j: unknown;
  try {
    j = parseJson(bytes.toString('utf8').replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new UsageError(`Expected JSON in ${JSON.stringify(file)} but it does not parse: ${(err as Error).message}`);
  }
  if (!isObject(j)) throw new UsageError(`Expected a JSON object in ${JSON.stringify(file)}`);
  return j;
}

/** A foreign model's tags and categories from `file` in `format` (sniffed when undefined). */
export async function readForeignTags(file: string, format?: TagFormat): Promise<ForeignTags & { format: TagFormat }> {
  return parseForeignTags(await readTagsFile(file), file, format);
}

export const readTagsFile = (file: string): Promise<Buffer> =>
  readInput(file, "a tags file for --tags (selected_tags.csv, tags.txt, or a tagger's JSON)");

/** The tags of a tags file's `bytes` (read from `file`, named in errors). */
export function parseForeignTags(bytes: Buffer, file: string, format?: TagFormat): ForeignTags & { format: TagFormat } {
  const fmt = format ?? sniffTagFormat(file, bytes);
  const where = JSON.stringify(file);
  let out: ForeignTags;
  if (fmt === 'wd-csv') {
    const index = TagIndex.parse(bytes, file);
    out = { tags: index.names, categories: index.rows.map((r) => r.category) };
  } else if (fmt === 'e621-csv') {
    out = e621(bytes, where);
  } else if (fmt === 'txt') {
    const tags = bytes
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .split(/\r?\n/)
      .map((t) => t.trim())
      .filter(Boolean);
    out = { tags, categories: tags.map(categoryOf) };
  } else {
    const j = jsonObject(bytes, file);
    out = fmt === 'camie-json' ? camie(j, where) : fmt === 'pixai-json' ? pixai(j, where) : clTagger(j, where);
  }
  if (out.tags.length === 0) throw new UsageError(`Expected at least one tag in ${where} but it has none`);
  checkTagNames(out.tags, where);
  const first = new Map<string, number>();
  out.tags.forEach((t, i) => {
    const at = first.get(t);
    if (at !== undefined)
      throw new UsageError(
        `Expected each tag once in ${where} but ${JSON.stringify(t)} is at rows ${at + 1} and ${i + 1} (scores could not be told apart)`,
      );
    first.set(t, i);
  });
  return { ...out, format: fmt };
}
