// Captions as the WD14 web UI tagger (toriato/stable-diffusion-webui-wd14-tagger, its last commit
// 99bf7d8) writes them in its batch mode, byte for byte:
// - the first 4 rows of the tags file are ratings and are never written; every other tag, of any
//   category, passes at ≥ one threshold (default 0.35); --additional-tags join with confidence 1.0;
// - order: confidence, highest first (ties in file order), or with --sort alpha by name;
// - --exclude compares the tags file's own names (underscores), exactly;
// - underscores become spaces unless --underscores, except in --underscore-excludes (its 19 kaomoji by
//   default), whatever the length; --escape-brackets puts a backslash before `\`, `(` and `)` (the
//   web UI's DeepDanbooru pattern; not `[` `]`); --weighted writes `(tag:confidence)` with the
//   confidence as Python prints the float64 value of the model's float32;
// - tags joined with ", "; an existing caption is kept (its "ignore"), replaced with --overwrite
//   ("copy"), or joined after (--append) or before (--prepend) its stripped text with ", ";
//   --remove-duplicated-tag then splits the whole on commas, strips each part and drops repeats;
// - no newline at the end of the file.
import { KAOMOJI } from './ours.js';
import type { TagScore } from '../select/select.js';
import { CATEGORY } from '../data/tags.js';
import { UsageError } from '../util/errors.js';

export const WEBUI_COMMIT = '99bf7d8';
/** Its settings' defaults (tagger/ui.py): the Threshold slider's value. */
export const WEBUI_THRESHOLD = 0.35;

export interface WebuiOptions {
  threshold: number;
  additionalTags: readonly string[];
  excludeTags: readonly string[];
  alpha: boolean;
  weighted: boolean;
  replaceUnderscore: boolean;
  underscoreExcludes: readonly string[];
  escape: boolean;
  removeDuplicated: boolean;
}

export const DEFAULT_UNDERSCORE_EXCLUDES = [...KAOMOJI];

/** Python's repr() of a float: the shortest round-trip digits, `1.0` for integers, `1e-05` below 1e-4. */
export function pythonFloat(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return x.toFixed(1);
  if (Math.abs(x) >= 1e-4 && Math.abs(x) < 1e16) return String(x);
  return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
}

/** The web UI tagger's split_str: split on commas, strip, drop empty parts. */
export const splitWebui = (text: string): string[] =>
  text
    .split(',')
    .filter((t) => t !== '')
    .map((t) => t.trim());

/** How the web UI tagger writes one tag: underscores to spaces (unless asked or excluded), escaped. */
export function webuiTagText(
  tag: string,
  o: Pick<WebuiOptions, 'replaceUnderscore' | 'underscoreExcludes' | 'escape'>,
): string {
  const text = o.replaceUnderscore && !o.underscoreExcludes.includes(tag) ? tag.replace(/_/g, ' ') : tag;
  return o.escape ? text.replace(/([\\()])/g, '\\$1') : text;
}

export class WebuiCaptioner {
  constructor(
    private readonly tags: readonly string[],
    private readonly categories: readonly number[],
    private readonly o: WebuiOptions,
    where: string,
  ) {
    for (let i = 0; i < 4; i++)
      if ((categories[i] ?? 0) !== CATEGORY.rating)
        throw new UsageError(
          `Expected the 4 rating tags first in ${where} (the web UI tagger reads rows 1–4 as ratings) but row ${i + 1} (${JSON.stringify(tags[i])}) has category ${categories[i]}: use --caption-style ours for this model`,
        );
  }

  /** One image's caption tags in the web UI tagger's order, with the model tag each came from. */
  caption(probs: ArrayLike<number>): { items: string[]; tags: TagScore[] } {
    const o = this.o;
    // A dict from name to confidence: a repeated name keeps its first place and its last value.
    const conf = new Map<string, { prob: number; category: number }>();
    for (let i = 4; i < this.tags.length; i++)
      conf.set(this.tags[i]!, { prob: probs[i]!, category: this.categories[i] ?? 0 });
    for (const t of o.additionalTags) conf.set(t, { prob: 1, category: conf.get(t)?.category ?? CATEGORY.general });
    const entries = [...conf];
    if (o.alpha) entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    else entries.sort((a, b) => b[1].prob - a[1].prob);
    const out = new Map<string, TagScore>();
    for (const [tag, c] of entries) {
      if (!(c.prob >= o.threshold) || o.excludeTags.includes(tag)) continue;
      let text = webuiTagText(tag, o);
      if (o.weighted) text = `(${text}:${pythonFloat(c.prob)})`;
      out.set(text, { tag, prob: c.prob, category: c.category });
    }
    return { items: [...out.keys()], tags: [...out.values()] };
  }

  /** The caption file's text (no final newline); `existing`: the current caption, when merging. */
  fileText(items: readonly string[], existing?: { text: string; mode: 'append' | 'prepend' }): string {
    const plain = items.join(', ');
    const output = existing === undefined ? [plain] : [existing.text.trim()];
    if (existing?.mode === 'prepend') output.unshift(plain);
    else if (existing) output.push(plain);
    if (!this.o.removeDuplicated) return output.join(', ');
    return [
      ...new Set(
        output
          .join(',')
          .split(',')
          .map((t) => t.trim()),
      ),
    ].join(', ');
  }
}
