// `pred`'s selection, caption and output options, declared once: name (the kebab-case flag, also the
// HTTP field), type, default, aliases (sd-scripts' spelling included), choices, the caption styles that
// accept it, whether an HTTP request may set it, and help text. From this one table come the yargs
// options (src/cli/pred-options.ts), serve's request fields (src/serve/fields.ts), the `PredArgs`
// type every parser takes, the defaults, and the refusal of a flag under a style that lacks it
// (src/captions/style.ts) — as fastify derives validation and types from a route schema.
import { camel, defaultsOf, type ArgsOf, type OptionSpec } from '../util/option-spec.js';

export const CAPTION_STYLES = ['ours', 'sd-scripts', 'webui'] as const;
export type CaptionStyle = (typeof CAPTION_STYLES)[number];
export const RATING_MODES = ['top', 'all', 'none'] as const;
export const CAPTION_SORTS = ['confidence', 'alpha'] as const;

/** A pred option: a declared option (src/util/option-spec.ts) and the caption styles that accept it. */
export interface PredOptionSpec extends OptionSpec {
  /** Accepted only with these caption styles; given under another, refused naming it. */
  styles?: readonly CaptionStyle[];
  /** Not a field of an HTTP request (a file path, or what only a run over files means). */
  cliOnly?: boolean;
}

/** sd-scripts' spelling of a flag, with underscores and with dashes. */
const sd = (...names: string[]): string[] => names.flatMap((n) => [n, n.replace(/_/g, '-')]);
const OURS = ['ours'] as const;
const NOT_WEBUI = ['ours', 'sd-scripts'] as const;
const NOT_SD = ['ours', 'webui'] as const;
const SD = ['sd-scripts'] as const;
const WEBUI = ['webui'] as const;

export const PRED_OPTIONS = {
  top: { type: 'number', styles: OURS, describe: 'At most K tags per image [default: 30 when no threshold is given]' },
  'caption-style': {
    type: 'string',
    choices: CAPTION_STYLES,
    default: 'ours',
    describe: 'Caption rules: ours, sd-scripts (tag_images_by_wd14_tagger.py v0.9.1), webui (the WD14 web UI tagger)',
  },
  threshold: {
    type: 'number',
    alias: ['thresh'],
    describe: 'Tags with probability ≥ T (every category without its own)',
  },
  'general-threshold': {
    type: 'number',
    alias: ['general_threshold'],
    styles: NOT_WEBUI,
    describe: 'Threshold of general tags (category 0)',
  },
  'character-threshold': {
    type: 'number',
    alias: ['character_threshold'],
    styles: NOT_WEBUI,
    describe: 'Threshold of character tags (category 4)',
  },
  'category-threshold': { type: 'list', styles: OURS, describe: 'NAME_OR_ID=T for any category (repeatable)' },
  thresholds: {
    type: 'string',
    styles: OURS,
    cliOnly: true,
    describe: 'Per-tag thresholds: the CSV of `eval --per-tag` (its P = R column)',
  },
  mcut: {
    type: 'string',
    styles: OURS,
    describe: 'MCut thresholds: alone over all tags, or per category (general,character; character ≥ 0.15)',
  },
  rating: {
    type: 'string',
    choices: RATING_MODES,
    default: 'top',
    styles: OURS,
    describe: 'Rating tags: only the most probable, all that pass, or none',
  },
  'rating-position': {
    type: 'string',
    choices: ['first', 'last'],
    default: 'first',
    styles: OURS,
    describe: 'caption: where the rating goes',
  },
  exclude: {
    type: 'list',
    alias: sd('undesired_tags'),
    describe: 'Tags never to report, comma-separated, repeatable (spaces or underscores)',
  },
  replace: { type: 'list', styles: OURS, describe: 'caption: OLD=NEW renames a tag (repeatable)' },
  'always-first': {
    type: 'list',
    alias: sd('always_first_tags'),
    styles: NOT_WEBUI,
    describe: 'caption: these tags first, in this order, when predicted',
  },
  'character-first': {
    type: 'boolean',
    alias: sd('character_tags_first'),
    default: false,
    styles: NOT_WEBUI,
    describe: 'caption: character tags before general ones',
  },
  sort: {
    type: 'string',
    choices: CAPTION_SORTS,
    default: 'confidence',
    styles: NOT_SD,
    describe: 'caption: tag order',
  },
  underscores: {
    type: 'boolean',
    default: false,
    styles: NOT_SD,
    describe: 'caption: keep underscores (default: spaces, except kaomoji and tags of ≤ 3 characters)',
  },
  'escape-brackets': { type: 'boolean', default: false, styles: NOT_SD, describe: 'caption: write ( ) as \\( \\)' },
  weighted: { type: 'boolean', default: false, styles: NOT_SD, describe: 'caption: write (tag:0.93)' },
  separator: {
    type: 'string',
    default: ', ',
    alias: sd('caption_separator'),
    styles: NOT_WEBUI,
    describe: 'caption: between tags',
  },
  'caption-ext': {
    type: 'string',
    default: '.txt',
    alias: sd('caption_extension', 'caption_extention'),
    cliOnly: true,
    describe: 'caption: file extension',
  },
  overwrite: { type: 'boolean', default: false, cliOnly: true, describe: 'caption: replace existing caption files' },
  append: {
    type: 'boolean',
    default: false,
    alias: sd('append_tags'),
    cliOnly: true,
    describe: 'caption: add the tags after an existing caption (no duplicates)',
  },
  prepend: {
    type: 'boolean',
    default: false,
    styles: NOT_SD,
    cliOnly: true,
    describe: 'caption: add the tags before an existing caption (no duplicates)',
  },
  'allow-empty': {
    type: 'boolean',
    default: false,
    cliOnly: true,
    describe: 'caption: let an image without tags empty its existing caption',
  },
  frequency: {
    type: 'string',
    cliOnly: true,
    describe: 'Write the tag counts of the run to this CSV (tag,count), most frequent first',
  },
  part: {
    type: 'string',
    cliOnly: true,
    describe:
      'I/N: tag only part I of N of the inputs (a stable split, for N machines or a job array); auto: from the Slurm job array or Kubernetes Indexed Job that runs it',
  },
  out: {
    type: 'string',
    cliOnly: true,
    describe:
      'jsonl and csv: write the rows to this file, one write per row (a kill leaves whole rows), instead of stdout',
  },
  'skip-done': {
    type: 'boolean',
    default: false,
    cliOnly: true,
    describe:
      'Leave out images already done: their caption exists (--format caption) or --out already holds their rows (continued)',
  },
  parts: {
    type: 'number',
    cliOnly: true,
    range: [1, 1_000_000],
    integer: true,
    describe: "--part auto in a Kubernetes Indexed Job: the Job's completions (or JOB_COMPLETIONS)",
  },
  // sd-scripts' own flags: its caption rules, and those accepted for its command lines to work as typed.
  'remove-underscore': {
    type: 'boolean',
    alias: ['remove_underscore'],
    styles: SD,
    describe: 'sd-scripts style: underscores to spaces in tags longer than 3 characters',
  },
  'tag-replacement': {
    type: 'string',
    alias: ['tag_replacement'],
    styles: SD,
    describe: 'sd-scripts style: source,target;source2,target2 (\\, and \\; for literal ones)',
  },
  'use-rating-tags': {
    type: 'boolean',
    alias: ['use_rating_tags'],
    styles: SD,
    describe: 'sd-scripts style: rating first',
  },
  'use-rating-tags-as-last-tag': {
    type: 'boolean',
    alias: ['use_rating_tags_as_last_tag'],
    styles: SD,
    describe: 'sd-scripts style: rating last',
  },
  'character-tag-expand': {
    type: 'boolean',
    alias: ['character_tag_expand'],
    styles: SD,
    describe: 'sd-scripts style: name_(series) becomes name, series',
  },
  'frequency-tags': {
    type: 'boolean',
    alias: ['frequency_tags'],
    cliOnly: true,
    describe: 'Print the tag frequencies of the run on stdout at the end, as sd-scripts does',
  },
  recursive: {
    type: 'boolean',
    cliOnly: true,
    describe: 'sd-scripts style: look into subfolders (the other styles always do)',
  },
  onnx: { type: 'boolean', hidden: true, cliOnly: true, describe: 'sd-scripts: always ONNX here' },
  debug: { type: 'boolean', hidden: true, cliOnly: true, describe: 'sd-scripts: accepted, no effect' },
  'max-data-loader-n-workers': {
    type: 'number',
    alias: ['max_data_loader_n_workers'],
    hidden: true,
    cliOnly: true,
    describe: 'sd-scripts: accepted; decoding is always parallel here',
  },
  'force-download': {
    type: 'boolean',
    alias: ['force_download'],
    hidden: true,
    cliOnly: true,
    describe: 'sd-scripts: accepted; nothing is downloaded for it',
  },
  'repo-id': {
    type: 'string',
    alias: ['repo_id'],
    cliOnly: true,
    describe: 'sd-scripts: without --model, use the model sd-scripts downloaded for this repo under --model-dir',
  },
  'model-dir': {
    type: 'string',
    alias: ['model_dir'],
    cliOnly: true,
    describe: 'sd-scripts: where it keeps downloaded models [default: wd14_tagger_model]',
  },
  // The WD14 web UI tagger's caption settings.
  'additional-tags': { type: 'list', styles: WEBUI, describe: 'webui style: tags added to every caption' },
  'underscore-excludes': {
    type: 'string',
    styles: WEBUI,
    describe: "webui style: tags whose underscores stay [default: the web UI tagger's 19 kaomoji]",
  },
  'remove-duplicated-tag': { type: 'boolean', styles: WEBUI, describe: 'webui style: drop repeats after a merge' },
} as const satisfies Record<string, PredOptionSpec>;

/** pred's options as every parser takes them: camel-case names, present where the spec has a default. */
export type PredArgs = ArgsOf<typeof PRED_OPTIONS>;

/** Every option at its default (those without one absent): the start of a caller's own PredArgs. */
export const predDefaults = (): PredArgs => defaultsOf(PRED_OPTIONS) as PredArgs;

/** Whether option `name` of `a` is given (not absent, not its default). */
export function isGiven(a: PredArgs, name: keyof typeof PRED_OPTIONS): boolean {
  const v = (a as Record<string, unknown>)[camel(name)];
  return v !== undefined && v !== (PRED_OPTIONS[name] as PredOptionSpec).default;
}
