// Tag selection and caption options from their string forms (pred's flags, serve's query and form
// fields): thresholds by category and tag, MCut, ratings, exclude/replace (both underscore and space
// forms, repeated values accumulate), caption order and format, --part I/N. Tags the model does not
// have get a warning each. Errors and warnings name each option as its caller spells it: `--exclude` on
// the command line (`cliName`), `exclude` in an HTTP request.
import { tagKey, type SelectOptions } from './select.js';
import { RATING_MODES, type PredArgs } from './pred-spec.js';
import { CATEGORY, type TagInfo } from '../data/tags.js';
import { readTagThresholds } from './thresholds.js';
import { checkChoice, checkInteger, checkNumber, UsageError } from '../util/errors.js';

/** How an option is named in messages: `--general-threshold` (CLI) or `general-threshold` (HTTP). */
export type OptionName = (option: string) => string;
export const cliName: OptionName = (option) => `--${option}`;

/** Repeated or comma-separated list flags as one list. */
export const listFlag = (v: string | string[] | undefined): string[] =>
  (Array.isArray(v) ? v : v === undefined ? [] : [v])
    .flatMap((x) => String(x).split(','))
    .map((t) => t.trim())
    .filter(Boolean);

/** A category given by our name for it or its id (an inherited name like `constructor` is none). */
export function categoryId(name: string, flag: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const key = name.toLowerCase();
  const id = Object.hasOwn(CATEGORY, key) ? (CATEGORY as Record<string, number>)[key] : undefined;
  if (id === undefined)
    throw new UsageError(
      `Expected a category name (${Object.keys(CATEGORY).join(', ')}) or id for ${flag} but received ${JSON.stringify(name)}`,
    );
  return id;
}

/** Tag keys from a list flag, with a warning for each tag the model does not have. */
export function modelTags(
  values: string[],
  flag: string,
  known: ReadonlySet<string>,
  warn: (l: string) => void,
): string[] {
  const keys = values.map(tagKey);
  for (const k of keys) if (!known.has(k)) warn(`${flag}: the model has no tag ${JSON.stringify(k)}`);
  return keys;
}

export async function selectOptionsFrom(
  a: PredArgs,
  model: TagInfo,
  warn: (l: string) => void,
  name: OptionName = cliName,
): Promise<SelectOptions> {
  const known = new Set(model.tags);
  const categoryThresholds = new Map<number, number>();
  for (const item of listFlag(a.categoryThreshold)) {
    const m = /^([^=]+)=([\d.]+)$/.exec(item);
    if (!m)
      throw new UsageError(
        `Expected NAME_OR_ID=T for ${name('category-threshold')} but received ${JSON.stringify(item)}`,
      );
    categoryThresholds.set(
      categoryId(m[1]!.trim(), name('category-threshold')),
      checkNumber(name('category-threshold'), Number(m[2]), 0, 1),
    );
  }
  if (a.generalThreshold !== undefined)
    categoryThresholds.set(CATEGORY.general, checkNumber(name('general-threshold'), a.generalThreshold, 0, 1));
  if (a.characterThreshold !== undefined)
    categoryThresholds.set(CATEGORY.character, checkNumber(name('character-threshold'), a.characterThreshold, 0, 1));
  let threshold = a.threshold === undefined ? undefined : checkNumber(name('threshold'), a.threshold, 0, 1);
  const mcut =
    a.mcut === undefined
      ? undefined
      : a.mcut.trim() === ''
        ? ('all' as const)
        : new Set(listFlag(a.mcut).map((n) => categoryId(n, name('mcut'))));
  const tagThresholds = a.thresholds ? await readTagThresholds(a.thresholds, known, warn) : undefined;
  const given =
    threshold !== undefined || categoryThresholds.size > 0 || mcut !== undefined || tagThresholds !== undefined;
  // A foreign contract's published defaults fill whatever is not given: --general-threshold alone keeps the
  // character default (without it, every character tag passed), --threshold covers every category
  // without its own, and MCut replaces the thresholds of the categories it covers.
  const preset = model.thresholds;
  if (preset && mcut !== 'all') {
    threshold ??= preset.default;
    const characterCut = mcut instanceof Set && mcut.has(CATEGORY.character);
    if (preset.character !== undefined && a.threshold === undefined && !characterCut)
      if (!categoryThresholds.has(CATEGORY.character)) categoryThresholds.set(CATEGORY.character, preset.character);
  }
  // Once a threshold decides, --top caps only when given; without one, the seed's top 30.
  const top = a.top !== undefined ? checkInteger(name('top'), a.top, 1, 1e6) : given || preset ? undefined : 30;
  return {
    top,
    threshold,
    categoryThresholds,
    tagThresholds,
    mcut,
    rating: checkChoice(name('rating'), a.rating, RATING_MODES),
    exclude: new Set(modelTags(listFlag(a.exclude), name('exclude'), known, warn)),
  };
}
