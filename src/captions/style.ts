// Which rules a caption follows (`--caption-style`): ours (ours.ts: thresholds per category, MCut,
// ratings, confidence order, kaomoji kept), sd-scripts (sd-scripts.ts) or webui (webui.ts). One
// Captioner per run turns an image's scores into the tags reported, the caption items and the caption
// file's text. A flag that a style does not have is refused with one line, never silently ignored.
import { captionText, orderCaption } from './ours.js';
import type { TagInfo } from '../data/tags.js';
import { cliName, listFlag, modelTags, type OptionName } from '../select/options.js';
import {
  CAPTION_SORTS,
  CAPTION_STYLES,
  isGiven,
  PRED_OPTIONS,
  type CaptionStyle,
  type PredOptionSpec,
  type PredArgs,
} from '../select/pred-spec.js';
import { SD_SCRIPTS_DEFAULTS, SdScriptsCaptioner } from './sd-scripts.js';
import type { TagScore } from '../select/select.js';
import { DEFAULT_UNDERSCORE_EXCLUDES, splitWebui, WEBUI_THRESHOLD, WebuiCaptioner } from './webui.js';
import { checkChoice, checkNumber, UsageError } from '../util/errors.js';
import { DEFAULT_CAPTION, type CaptionOptions } from './ours.js';
import { tagKey } from '../select/select.js';

/** One caption item: what is written, and the key duplicates are found by. */
export interface CaptionItem {
  key: string;
  text: string;
}

export interface Captioner {
  style: CaptionStyle;
  /** An image's reported tags and caption items from our selection (`selected`) or its scores. */
  caption(
    selected: readonly TagScore[],
    probs: ArrayLike<number>,
  ): { tags: TagScore[]; items: CaptionItem[]; counted: string[] };
  /** The caption file's whole text; `existing` is the current caption when the run merges with it. */
  fileText(items: readonly CaptionItem[], existing?: string): string;
  /** An existing caption: replaced (sd-scripts always replaces), or merged (`merge`), or else kept. */
  overwrite: boolean;
  merge: 'append' | 'prepend' | undefined;
}

/** The caption style asked for, once every flag given is one that style has (checked before a model loads). */
export function captionStyleOf(a: PredArgs, name: OptionName = cliName): CaptionStyle {
  const style = checkChoice(name('caption-style'), a.captionStyle ?? 'ours', CAPTION_STYLES);
  checkStyleFlags(a, style, name);
  return style;
}

/** A flag that only some styles have (its spec's `styles`), given under another style, is refused. */
function checkStyleFlags(a: PredArgs, style: CaptionStyle, name: OptionName): void {
  for (const [flag, f] of Object.entries(PRED_OPTIONS) as [keyof typeof PRED_OPTIONS, PredOptionSpec][])
    if (f.styles && !f.styles.includes(style) && isGiven(a, flag))
      throw new UsageError(
        `Expected ${name(flag)} only with --caption-style ${f.styles.join(' or ')} but the caption style is ${style}`,
      );
}

/** `raw` of a string list flag as typed (repeats joined with the separator), for the styles that split it themselves. */
const typed = (v: string | string[] | undefined, sep: string): string | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v.join(sep.trim() || ',') : String(v);

export function captionerFrom(
  a: PredArgs,
  model: TagInfo,
  warn: (line: string) => void,
  name: OptionName = cliName,
): Captioner {
  const style = captionStyleOf(a, name);
  const mode = a.append ? ('append' as const) : a.prepend ? ('prepend' as const) : undefined;
  if (style === 'sd-scripts') return sdScriptsCaptioner(a, model, name);
  if (style === 'webui') return webuiCaptioner(a, model, mode, name);
  const ours = captionOptionsFrom(a, model, warn, name);
  return {
    style,
    caption: (selected) => {
      const items = orderCaption(selected, ours).map((o) => ({ key: o.key, text: o.text }));
      return { tags: [...selected], items, counted: items.map((i) => i.text) };
    },
    fileText: (items, existing) =>
      `${captionText(items, ours, existing === undefined || !mode ? undefined : { text: existing, mode })}\n`,
    overwrite: a.overwrite ?? false,
    merge: mode,
  };
}

const threshold = (name: OptionName, flag: string, v: number | undefined, d: number): number =>
  v === undefined ? d : checkNumber(name(flag), v, 0, 1);

const itemsOf = (names: readonly string[]): CaptionItem[] => names.map((t) => ({ key: t, text: t }));

function sdScriptsCaptioner(a: PredArgs, model: TagInfo, name: OptionName): Captioner {
  const thresh = threshold(name, 'thresh', a.threshold, SD_SCRIPTS_DEFAULTS.thresh);
  const sd = new SdScriptsCaptioner(
    model.tags,
    model.categories,
    {
      generalThreshold: threshold(name, 'general-threshold', a.generalThreshold, thresh),
      characterThreshold: threshold(name, 'character-threshold', a.characterThreshold, thresh),
      removeUnderscore: a.removeUnderscore ?? false,
      characterTagExpand: a.characterTagExpand ?? false,
      tagReplacement: a.tagReplacement,
      undesiredTags: typed(a.exclude, a.separator) ?? '',
      alwaysFirstTags: typed(a.alwaysFirst, a.separator),
      characterTagsFirst: a.characterFirst,
      useRatingTags: a.useRatingTags ?? false,
      useRatingTagsAsLastTag: a.useRatingTagsAsLastTag ?? false,
      separator: a.separator,
    },
    model.source || 'the tags file',
  );
  return {
    style: 'sd-scripts',
    caption: (_s, probs) => {
      const c = sd.caption(probs);
      return { tags: c.tags, items: itemsOf(c.items), counted: c.found };
    },
    fileText: (items, existing) =>
      sd.fileText(
        items.map((i) => i.text),
        existing,
      ),
    overwrite: true,
    merge: a.append ? 'append' : undefined,
  };
}

function webuiCaptioner(
  a: PredArgs,
  model: TagInfo,
  mode: 'append' | 'prepend' | undefined,
  name: OptionName,
): Captioner {
  const web = new WebuiCaptioner(
    model.tags,
    model.categories,
    {
      threshold: threshold(name, 'threshold', a.threshold, WEBUI_THRESHOLD),
      additionalTags: splitWebui(typed(a.additionalTags, ',') ?? ''),
      excludeTags: splitWebui(typed(a.exclude, ',') ?? ''),
      alpha: a.sort === 'alpha',
      weighted: a.weighted,
      replaceUnderscore: !a.underscores,
      underscoreExcludes:
        a.underscoreExcludes === undefined ? DEFAULT_UNDERSCORE_EXCLUDES : splitWebui(a.underscoreExcludes),
      escape: a.escapeBrackets,
      removeDuplicated: a.removeDuplicatedTag ?? false,
    },
    model.source || 'the tags file',
  );
  return {
    style: 'webui',
    caption: (_s, probs) => {
      const c = web.caption(probs);
      return { tags: c.tags, items: itemsOf(c.items), counted: c.items };
    },
    fileText: (items, existing) =>
      web.fileText(
        items.map((i) => i.text),
        existing === undefined || !mode ? undefined : { text: existing, mode },
      ),
    overwrite: a.overwrite ?? false,
    merge: mode,
  };
}

export function captionOptionsFrom(
  a: PredArgs,
  model: TagInfo,
  warn: (l: string) => void,
  name: OptionName = cliName,
): CaptionOptions {
  const known = new Set(model.tags);
  const replace = new Map<string, string>();
  for (const item of listFlag(a.replace)) {
    const m = /^([^=]+)=(.+)$/.exec(item);
    if (!m) throw new UsageError(`Expected OLD=NEW for ${name('replace')} but received ${JSON.stringify(item)}`);
    replace.set(modelTags([m[1]!], name('replace'), known, warn)[0]!, m[2]!.trim());
  }
  return {
    ...DEFAULT_CAPTION,
    underscores: a.underscores,
    escapeBrackets: a.escapeBrackets,
    weighted: a.weighted,
    separator: a.separator,
    characterFirst: a.characterFirst,
    sort: checkChoice(name('sort'), a.sort, CAPTION_SORTS),
    ratingPosition: checkChoice(name('rating-position'), a.ratingPosition, ['first', 'last'] as const),
    alwaysFirst: listFlag(a.alwaysFirst).map(tagKey),
    replace,
  };
}
