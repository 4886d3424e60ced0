// Captions as sd-scripts' finetune/tag_images_by_wd14_tagger.py writes them, in its v0.9.1 release
// (2025-03-21): the last whose --tag_replacement works (v0.10.0's rewrite replaces in a local copy, so it
// does nothing) and whose character tags work (v0.10.0's run_batch assigns `character_tags` in a branch
// it does not take for WD models, so the first character tag raises UnboundLocalError). Every rule below
// is that script's, in its order, quirks included, so that a caption matches it byte for byte:
// - names: --character_tag_expand (`name_(series)` → `name<sep>series`), then --remove_underscore (only
//   for names longer than 3 characters; no kaomoji list), then --tag_replacement (`a,b;c,d`, `\,` and
//   `\;` escaped; the first general tag of that name, else character, else rating);
// - the tags file must be laid out as WD's: 4 ratings, then general, then character tags (the script
//   reads scores 0–3 as ratings and the rest by position);
// - general and character tags pass at ≥ their threshold (default --thresh 0.35 for both), in file
//   order; with --character_tags_first each character tag is put at the front as it is found (so they
//   come out in reverse file order); --undesired_tags is split on the stripped separator and compared
//   with the final names; the rating (the largest of the 4 scores) only with --use_rating_tags (front)
//   or --use_rating_tags_as_last_tag (end); --always_first_tags, split on the stripped separator and
//   not stripped itself, each moved to the front in list order (so the last listed ends first);
// - --append_tags: the existing caption without its leading and trailing newlines, split on the
//   stripped separator, each part stripped, empty ones dropped, then the new tags it lacks.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TagScore } from '../select/select.js';
import { CATEGORY } from '../data/tags.js';
import { UsageError } from '../util/errors.js';

export const SD_SCRIPTS_VERSION = 'v0.9.1';
/** Its argparse defaults (setup_parser): --thresh, --caption_separator, --caption_extension. */
export const SD_SCRIPTS_DEFAULTS = { thresh: 0.35, captionSeparator: ', ', captionExtension: '.txt' } as const;

export interface SdScriptsOptions {
  generalThreshold: number;
  characterThreshold: number;
  removeUnderscore: boolean;
  characterTagExpand: boolean;
  /** --tag_replacement as typed: `source,target;source2,target2`. */
  tagReplacement?: string;
  /** --undesired_tags as typed. */
  undesiredTags: string;
  /** --always_first_tags as typed. */
  alwaysFirstTags?: string;
  characterTagsFirst: boolean;
  useRatingTags: boolean;
  useRatingTagsAsLastTag: boolean;
  separator: string;
}

/** --remove_underscore on one tag: underscores to spaces in tags longer than 3 characters. */
export const sdRemoveUnderscore = (name: string): string => ([...name].length > 3 ? name.replace(/_/g, ' ') : name);

/** --tag_replacement's pairs: `;` between pairs, `,` within one, `\,` and `\;` literal. */
export function parseTagReplacement(text: string, flag = '--tag-replacement'): [string, string][] {
  const escaped = text.replace(/\\,/g, '@@@@').replace(/\\;/g, '####');
  return escaped.split(';').map((pair) => {
    const parts = pair.split(',');
    if (parts.length !== 2)
      throw new UsageError(
        `Expected source,target pairs separated by ; (\\, and \\; for literal ones) for ${flag} but received ${JSON.stringify(text)}`,
      );
    const pairOut = parts.map((t) => t.replace(/@@@@/g, ',').replace(/####/g, ';')) as [string, string];
    // eslint-disable-next-line no-control-regex -- control characters are what this looks for
    const control = pairOut.find((t) => /[\u0000-\u001f\u007f-\u009f]/.test(t));
    if (control !== undefined)
      throw new UsageError(
        `Expected tags without control characters (a newline would split the caption) for ${flag} but received ${JSON.stringify(control)}`,
      );
    return pairOut;
  });
}

/** Python's str.split(sep) for a non-empty sep. */
const splitOn = (text: string, sep: string): string[] => text.split(sep);

/** The separator with its whitespace stripped: what sd-scripts splits lists and existing captions on. */
export function strippedSeparator(separator: string): string {
  const s = separator.trim();
  if (s === '')
    throw new UsageError(
      `Expected a separator with a non-space character for --caption-style sd-scripts (it splits lists on it) but received ${JSON.stringify(separator)}`,
    );
  return s;
}

interface Named {
  index: number;
  name: string;
}

export class SdScriptsCaptioner {
  private readonly general: Named[] = [];
  private readonly character: Named[] = [];
  private readonly rating: Named[] = [];
  private readonly undesired: Set<string>;
  private readonly alwaysFirst: string[] | null;

  constructor(
    private readonly tags: readonly string[],
    private readonly categories: readonly number[],
    private readonly o: SdScriptsOptions,
    where: string,
  ) {
    const lists = {
      [CATEGORY.rating]: this.rating,
      [CATEGORY.general]: this.general,
      [CATEGORY.character]: this.character,
    };
    let sawCharacter = false;
    for (let i = 0; i < tags.length; i++) {
      const cat = categories[i] ?? 0;
      sawCharacter ||= cat === CATEGORY.character;
      const fits =
        i < 4 ? cat === CATEGORY.rating : cat === CATEGORY.character || (cat === CATEGORY.general && !sawCharacter);
      if (!fits)
        throw new UsageError(
          `Expected a WD tags file laid out as sd-scripts reads it (4 rating tags, then general, then character tags) in ${where} but row ${i + 1} (${JSON.stringify(tags[i])}) has category ${cat} there: use --caption-style ours for this model`,
        );
      lists[cat as 0 | 4 | 9].push({ index: i, name: tags[i]! });
    }
    if (this.rating.length !== 4)
      throw new UsageError(`Expected 4 rating tags first in ${where} (WD layout) but it has ${this.rating.length}`);
    if (o.characterTagExpand)
      for (const t of this.character) {
        if (!t.name.endsWith(')')) continue;
        const parts = t.name.split('(');
        let name = parts.slice(0, -1).join('(');
        if (name.endsWith('_')) name = name.slice(0, -1);
        t.name = name + o.separator + parts.at(-1)!.replace(/\)/g, '');
      }
    if (o.removeUnderscore)
      for (const list of [this.rating, this.general, this.character])
        for (const t of list) t.name = sdRemoveUnderscore(t.name);
    for (const [source, target] of o.tagReplacement === undefined ? [] : parseTagReplacement(o.tagReplacement)) {
      const hit = [this.general, this.character, this.rating]
        .map((l) => l.find((t) => t.name === source))
        .find(Boolean);
      if (hit) hit.name = target;
    }
    const sep = strippedSeparator(o.separator);
    this.undesired = new Set(
      splitOn(o.undesiredTags, sep)
        .map((t) => t.trim())
        .filter(Boolean),
    );
    this.alwaysFirst =
      o.alwaysFirstTags === undefined ? null : splitOn(o.alwaysFirstTags, sep).filter((t) => t.trim() !== '');
  }

  /**
   * One image's caption tags in the script's order, each with the model tag it came from, and the same
   * names in the order the script counts them for --frequency_tags (general, character, rating).
   */
  caption(probs: ArrayLike<number>): { items: string[]; tags: TagScore[]; found: string[] } {
    const o = this.o;
    const combined: { name: string; score: TagScore }[] = [];
    const found: string[] = [];
    const score = (t: Named): TagScore => ({
      tag: this.tags[t.index]!,
      prob: probs[t.index]!,
      category: this.categories[t.index] ?? 0,
    });
    for (const t of this.general)
      if (probs[t.index]! >= o.generalThreshold && !this.undesired.has(t.name)) {
        found.push(t.name);
        combined.push({ name: t.name, score: score(t) });
      }
    for (const t of this.character) {
      if (probs[t.index]! < o.characterThreshold || this.undesired.has(t.name)) continue;
      found.push(t.name);
      if (o.characterTagsFirst) combined.unshift({ name: t.name, score: score(t) });
      else combined.push({ name: t.name, score: score(t) });
    }
    if (o.useRatingTags || o.useRatingTagsAsLastTag) {
      let best = this.rating[0]!;
      for (const t of this.rating) if (probs[t.index]! > probs[best.index]!) best = t;
      if (!this.undesired.has(best.name)) {
        found.push(best.name);
        if (o.useRatingTags) combined.unshift({ name: best.name, score: score(best) });
        else combined.push({ name: best.name, score: score(best) });
      }
    }
    for (const tag of this.alwaysFirst ?? []) {
      const at = combined.findIndex((c) => c.name === tag);
      if (at >= 0) combined.unshift(...combined.splice(at, 1));
    }
    return { items: combined.map((c) => c.name), tags: combined.map((c) => c.score), found };
  }

  /** The caption file's text: `items` joined, or with --append_tags merged into `existing`; then "\n". */
  fileText(items: readonly string[], existing?: string): string {
    const sep = this.o.separator;
    if (existing === undefined) return `${items.join(sep)}\n`;
    const old = splitOn(existing.replace(/^\n+|\n+$/g, ''), strippedSeparator(sep))
      .map((t) => t.trim())
      .filter(Boolean);
    return `${[...old, ...items.filter((t) => !old.includes(t))].join(sep)}\n`;
  }
}

/** --frequency_tags' report: "Tag frequencies:" then `tag: count`, most frequent first, ties by first appearance. */
export function sdScriptsFrequencyLines(counts: ReadonlyMap<string, number>): string[] {
  return ['Tag frequencies:', ...[...counts].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t}: ${n}`)];
}

/** sd-scripts' defaults for where its tagger model lives. */
export const SD_SCRIPTS_MODEL_DIR = 'wd14_tagger_model';
export const SD_SCRIPTS_REPO_ID = 'SmilingWolf/wd-v1-4-convnext-tagger-v2';

/**
 * The model and tags files sd-scripts (run with --onnx) keeps for `repoId` under `modelDir`:
 * MODEL_DIR/OWNER_REPO/model.onnx and selected_tags.csv. Refused when the model is not there (nothing
 * is downloaded here).
 */
export function sdScriptsModelFiles(modelDir?: string, repoId?: string): { model: string; tags: string } {
  const dir = path.join(modelDir ?? SD_SCRIPTS_MODEL_DIR, (repoId ?? SD_SCRIPTS_REPO_ID).replace(/\//g, '_'));
  const model = path.join(dir, 'model.onnx');
  if (!existsSync(model))
    throw new UsageError(
      `Expected --model, or the ONNX model sd-scripts keeps for --repo_id under --model_dir, at ${JSON.stringify(model)}, but it does not exist (this tool downloads nothing: pass --model and --tags)`,
    );
  return { model, tags: path.join(dir, 'selected_tags.csv') };
}
