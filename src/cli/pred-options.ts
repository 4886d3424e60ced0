// `pred`'s selection, caption and output flags as yargs options; their parsing is src/predict/options.ts.
import type { Argv } from 'yargs';
import { CAPTION_SORTS } from '../predict/caption.js';
import { RATING_MODES } from '../predict/select.js';

/** pred's selection, caption and output flags (the model's are model-options.ts). */
export function withPredFlags(y: Argv): Argv {
  return y
    .option('top', { type: 'number', describe: 'At most K tags per image [default: 30 when no threshold is given]' })
    .option('threshold', { type: 'number', describe: 'Tags with probability ≥ T (every category without its own)' })
    .option('general-threshold', { type: 'number', describe: 'Threshold of general tags (category 0)' })
    .option('character-threshold', { type: 'number', describe: 'Threshold of character tags (category 4)' })
    .option('category-threshold', { type: 'string', describe: 'NAME_OR_ID=T for any category (repeatable)' })
    .option('thresholds', {
      type: 'string',
      describe: 'Per-tag thresholds: the CSV of `eval --per-tag` (its P = R column)',
    })
    .option('mcut', {
      type: 'string',
      describe: 'MCut thresholds: alone over all tags, or per category (general,character; character ≥ 0.15)',
    })
    .option('rating', {
      type: 'string',
      choices: RATING_MODES,
      default: 'top',
      describe: 'Rating tags: only the most probable, all that pass, or none',
    })
    .option('rating-position', {
      type: 'string',
      choices: ['first', 'last'],
      default: 'first',
      describe: 'caption: where the rating goes',
    })
    .option('exclude', {
      type: 'string',
      describe: 'Tags never to report, comma-separated, repeatable (spaces or underscores)',
    })
    .option('replace', { type: 'string', describe: 'caption: OLD=NEW renames a tag (repeatable)' })
    .option('always-first', { type: 'string', describe: 'caption: these tags first, in this order, when predicted' })
    .option('character-first', {
      type: 'boolean',
      default: false,
      describe: 'caption: character tags before general ones',
    })
    .option('sort', { type: 'string', choices: CAPTION_SORTS, default: 'confidence', describe: 'caption: tag order' })
    .option('underscores', {
      type: 'boolean',
      default: false,
      describe: 'caption: keep underscores (default: spaces, except kaomoji and tags of ≤ 3 characters)',
    })
    .option('escape-brackets', { type: 'boolean', default: false, describe: 'caption: write ( ) as \\( \\)' })
    .option('weighted', { type: 'boolean', default: false, describe: 'caption: write (tag:0.93)' })
    .option('separator', { type: 'string', default: ', ', describe: 'caption: between tags' })
    .option('caption-ext', { type: 'string', default: '.txt', describe: 'caption: file extension' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'caption: replace existing caption files' })
    .option('append', {
      type: 'boolean',
      default: false,
      describe: 'caption: add the tags after an existing caption (no duplicates)',
    })
    .option('prepend', {
      type: 'boolean',
      default: false,
      describe: 'caption: add the tags before an existing caption (no duplicates)',
    })
    .option('allow-empty', {
      type: 'boolean',
      default: false,
      describe: 'caption: let an image without tags empty its existing caption',
    })
    .option('frequency', {
      type: 'string',
      describe: 'Write the tag counts of the run to this CSV (tag,count), most frequent first',
    })
    .option('part', {
      type: 'string',
      describe: 'I/N: tag only part I of N of the inputs (a stable split, for N machines or a job array)',
    });
}
