// `pred`'s selection, caption and output flags as yargs options; their parsing is src/select/options.ts
// and src/captions/style.ts. sd-scripts' tag_images_by_wd14_tagger.py options are accepted under
// their own names (with underscores or dashes), as aliases of ours where they mean the same.
import type { Argv, Options } from 'yargs';
import { CAPTION_SORTS } from '../captions/ours.js';
import { CAPTION_STYLES } from '../captions/style.js';
import { RATING_MODES } from '../select/select.js';

/** sd-scripts' spelling of a flag, with underscores and with dashes. */
const sd = (...names: string[]): string[] => names.flatMap((n) => [n, n.replace(/_/g, '-')]);

/** pred's selection, caption and output flags (the model's are model-options.ts). */
const PRED_FLAGS = {
  top: { type: 'number', describe: 'At most K tags per image [default: 30 when no threshold is given]' },
  'caption-style': {
    type: 'string',
    choices: CAPTION_STYLES,
    default: 'ours',
    describe: 'Caption rules: ours, sd-scripts (tag_images_by_wd14_tagger.py v0.9.1), webui (the WD14 web UI tagger)',
  },
  threshold: {
    type: 'number',
    alias: 'thresh',
    describe: 'Tags with probability ≥ T (every category without its own)',
  },
  'general-threshold': {
    type: 'number',
    alias: 'general_threshold',
    describe: 'Threshold of general tags (category 0)',
  },
  'character-threshold': {
    type: 'number',
    alias: 'character_threshold',
    describe: 'Threshold of character tags (category 4)',
  },
  'category-threshold': { type: 'string', describe: 'NAME_OR_ID=T for any category (repeatable)' },
  thresholds: {
    type: 'string',
    describe: 'Per-tag thresholds: the CSV of `eval --per-tag` (its P = R column)',
  },
  mcut: {
    type: 'string',
    describe: 'MCut thresholds: alone over all tags, or per category (general,character; character ≥ 0.15)',
  },
  rating: {
    type: 'string',
    choices: RATING_MODES,
    default: 'top',
    describe: 'Rating tags: only the most probable, all that pass, or none',
  },
  'rating-position': {
    type: 'string',
    choices: ['first', 'last'],
    default: 'first',
    describe: 'caption: where the rating goes',
  },
  exclude: {
    type: 'string',
    alias: sd('undesired_tags'),
    describe: 'Tags never to report, comma-separated, repeatable (spaces or underscores)',
  },
  replace: { type: 'string', describe: 'caption: OLD=NEW renames a tag (repeatable)' },
  'always-first': {
    type: 'string',
    alias: sd('always_first_tags'),
    describe: 'caption: these tags first, in this order, when predicted',
  },
  'character-first': {
    type: 'boolean',
    alias: sd('character_tags_first'),
    default: false,
    describe: 'caption: character tags before general ones',
  },
  sort: { type: 'string', choices: CAPTION_SORTS, default: 'confidence', describe: 'caption: tag order' },
  underscores: {
    type: 'boolean',
    default: false,
    describe: 'caption: keep underscores (default: spaces, except kaomoji and tags of ≤ 3 characters)',
  },
  'escape-brackets': { type: 'boolean', default: false, describe: 'caption: write ( ) as \\( \\)' },
  weighted: { type: 'boolean', default: false, describe: 'caption: write (tag:0.93)' },
  separator: {
    type: 'string',
    default: ', ',
    alias: sd('caption_separator'),
    describe: 'caption: between tags',
  },
  'caption-ext': {
    type: 'string',
    default: '.txt',
    alias: sd('caption_extension', 'caption_extention'),
    describe: 'caption: file extension',
  },
  overwrite: { type: 'boolean', default: false, describe: 'caption: replace existing caption files' },
  append: {
    type: 'boolean',
    default: false,
    alias: sd('append_tags'),
    describe: 'caption: add the tags after an existing caption (no duplicates)',
  },
  prepend: {
    type: 'boolean',
    default: false,
    describe: 'caption: add the tags before an existing caption (no duplicates)',
  },
  'allow-empty': {
    type: 'boolean',
    default: false,
    describe: 'caption: let an image without tags empty its existing caption',
  },
  frequency: {
    type: 'string',
    describe: 'Write the tag counts of the run to this CSV (tag,count), most frequent first',
  },
  part: {
    type: 'string',
    describe: 'I/N: tag only part I of N of the inputs (a stable split, for N machines or a job array)',
  },
} as const satisfies Record<string, Options>;

/** sd-scripts' own flags: its caption rules, and those accepted for its command lines to work as typed. */
const SD_SCRIPTS_FLAGS = {
  'remove-underscore': {
    type: 'boolean',
    alias: 'remove_underscore',
    describe: 'sd-scripts style: underscores to spaces in tags longer than 3 characters',
  },
  'tag-replacement': {
    type: 'string',
    alias: 'tag_replacement',
    describe: 'sd-scripts style: source,target;source2,target2 (\\, and \\; for literal ones)',
  },
  'use-rating-tags': {
    type: 'boolean',
    alias: 'use_rating_tags',
    describe: 'sd-scripts style: rating first',
  },
  'use-rating-tags-as-last-tag': {
    type: 'boolean',
    alias: 'use_rating_tags_as_last_tag',
    describe: 'sd-scripts style: rating last',
  },
  'character-tag-expand': {
    type: 'boolean',
    alias: 'character_tag_expand',
    describe: 'sd-scripts style: name_(series) becomes name, series',
  },
  'frequency-tags': {
    type: 'boolean',
    alias: 'frequency_tags',
    describe: 'Print the tag frequencies of the run on stdout at the end, as sd-scripts does',
  },
  recursive: {
    type: 'boolean',
    describe: 'sd-scripts style: look into subfolders (the other styles always do)',
  },
  onnx: { type: 'boolean', hidden: true, describe: 'sd-scripts: always ONNX here' },
  debug: { type: 'boolean', hidden: true, describe: 'sd-scripts: accepted, no effect' },
  'max-data-loader-n-workers': {
    type: 'number',
    alias: 'max_data_loader_n_workers',
    hidden: true,
    describe: 'sd-scripts: accepted; decoding is always parallel here',
  },
  'force-download': { type: 'boolean', alias: 'force_download', hidden: true },
  'repo-id': {
    type: 'string',
    alias: 'repo_id',
    describe: 'sd-scripts: without --model, use the model sd-scripts downloaded for this repo under --model-dir',
  },
  'model-dir': {
    type: 'string',
    alias: 'model_dir',
    describe: 'sd-scripts: where it keeps downloaded models [default: wd14_tagger_model]',
  },
} as const satisfies Record<string, Options>;

/** The WD14 web UI tagger's caption settings. */
const WEBUI_FLAGS = {
  'additional-tags': { type: 'string', describe: 'webui style: tags added to every caption' },
  'underscore-excludes': {
    type: 'string',
    describe: "webui style: tags whose underscores stay [default: the web UI tagger's 19 kaomoji]",
  },
  'remove-duplicated-tag': { type: 'boolean', describe: 'webui style: drop repeats after a merge' },
} as const satisfies Record<string, Options>;

/** pred's flags: ours, sd-scripts' and the web UI tagger's. */
export function withPredFlags(y: Argv): Argv {
  return y.options(PRED_FLAGS).options(SD_SCRIPTS_FLAGS).options(WEBUI_FLAGS);
}
