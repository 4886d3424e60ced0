// Our caption style (`--caption-style ours`; sd-scripts.ts and webui.ts are theirs): tags renamed (--replace), ordered
// (confidence or alpha, characters first, always-first tags, rating first or last), underscores shown as
// spaces except in kaomoji and tags of 3 characters or fewer, brackets escaped, weights shown, joined
// by a separator, and merged with an existing caption (--append / --prepend) without duplicates.
import { tagKey, type TagScore } from '../select/select.js';
import type { CAPTION_SORTS } from '../select/pred-spec.js';
import { CATEGORY } from '../data/tags.js';

/**
 * Kaomoji whose underscores are part of the face: the WD14 web UI tagger's list (tagger/ui.py; sd-scripts
 * has none). Faces of 3 characters or fewer keep theirs anyway (displayTag).
 */
export const KAOMOJI = new Set([
  '0_0',
  '(o)_(o)',
  '+_+',
  '+_-',
  '._.',
  '<o>_<o>',
  '<|>_<|>',
  '=_=',
  '>_<',
  '3_3',
  '6_9',
  '>_o',
  '@_@',
  '^_^',
  'o_o',
  'u_u',
  'x_x',
  '|_|',
  '||_||',
]);

export interface CaptionOptions {
  /** Keep underscores (default: spaces, except kaomoji and short tags). */
  underscores: boolean;
  escapeBrackets: boolean;
  /** `(tag:0.93)` */
  weighted: boolean;
  separator: string;
  sort: (typeof CAPTION_SORTS)[number];
  characterFirst: boolean;
  /** Tag keys put first, in this order, when predicted. */
  alwaysFirst: readonly string[];
  ratingPosition: 'first' | 'last';
  /** Tag key → the tag written instead. */
  replace: ReadonlyMap<string, string>;
}

export const DEFAULT_CAPTION: CaptionOptions = {
  underscores: false,
  escapeBrackets: false,
  weighted: false,
  separator: ', ',
  sort: 'confidence',
  characterFirst: false,
  alwaysFirst: [],
  ratingPosition: 'first',
  replace: new Map(),
};

/** How one tag is written: spaces for underscores (unless kaomoji, ≤ 3 characters or asked), escaped, weighted. */
export function displayTag(tag: string, prob: number, o: CaptionOptions): string {
  let t = o.underscores || KAOMOJI.has(tag) || tag.length <= 3 ? tag : tag.replace(/_/g, ' ');
  if (o.escapeBrackets) t = t.replace(/([()[\]])/g, '\\$1');
  return o.weighted ? `(${t}:${prob.toFixed(2)})` : t;
}

/** The selected tags in caption order, renamed, with their written form. */
export function orderCaption(
  selected: readonly TagScore[],
  o: CaptionOptions,
): { key: string; text: string; prob: number }[] {
  const renamed = selected.map((s) => ({ ...s, tag: o.replace.get(tagKey(s.tag)) ?? s.tag }));
  const sorted = [...renamed].sort((a, b) =>
    o.sort === 'alpha' ? (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0) : b.prob - a.prob,
  );
  const rank = (s: TagScore): number => {
    const first = o.alwaysFirst.indexOf(tagKey(s.tag));
    if (s.category === CATEGORY.rating) return o.ratingPosition === 'first' ? -2e6 : 2e6;
    if (first >= 0) return -1e6 + first;
    return o.characterFirst && s.category === CATEGORY.character ? -1 : 0;
  };
  const ordered = sorted
    .map((s, i) => ({ s, i }))
    .sort((a, b) => rank(a.s) - rank(b.s) || a.i - b.i)
    .map((x) => x.s);
  const seen = new Set<string>();
  const out: { key: string; text: string; prob: number }[] = [];
  for (const s of ordered) {
    const key = tagKey(s.tag);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ key, text: displayTag(s.tag, s.prob, o), prob: s.prob });
  }
  return out;
}

/** The tag an item of a caption file stands for: brackets unescaped, a weight dropped, spaces to underscores. */
export const captionItemKey = (text: string): string =>
  tagKey(text.replace(/\\([()[\]])/g, '$1').replace(/^\((.*):[\d.]+\)$/, '$1'));

/** A caption file's items, split on lines and on `sep` (a separator stripped of its spaces), each with its tag key. */
export const captionItems = (text: string, sep: string): { key: string; text: string }[] =>
  text
    .split('\n')
    .flatMap((line) => line.split(sep))
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => ({ key: captionItemKey(t), text: t }));

/** The caption text; with `existing` (append/prepend), its tags are kept and duplicates dropped. */
export function captionText(
  tags: readonly { key: string; text: string }[],
  o: CaptionOptions,
  existing?: { text: string; mode: 'append' | 'prepend' },
): string {
  let parts = tags.map((t) => ({ key: t.key, text: t.text }));
  if (existing) {
    // The existing caption's items are split on the separator in use (as sd-scripts does, stripped), not on commas only.
    const old = captionItems(existing.text, o.separator.trim() || ',');
    parts = existing.mode === 'append' ? [...old, ...parts] : [...parts, ...old];
  }
  const seen = new Set<string>();
  return parts
    .filter((p) => !seen.has(p.key) && seen.add(p.key))
    .map((p) => p.text)
    .join(o.separator);
}
