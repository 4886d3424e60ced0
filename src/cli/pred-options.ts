// `pred`'s selection, caption and output flags as yargs options, derived from their one declaration
// (src/select/pred-spec.ts): sd-scripts' tag_images_by_wd14_tagger.py options are accepted under their
// own names (with underscores or dashes), as aliases of ours where they mean the same.
import type { Argv, Options } from 'yargs';
import { PRED_OPTIONS, type OptionSpec } from '../select/pred-spec.js';
import { FRAME_MERGES } from '../predict/tagging.js';

/** One spec entry as a yargs option: a `list` is a string that may repeat (yargs collects the values). */
export function yargsOption(o: OptionSpec): Options {
  return {
    type: o.type === 'list' ? 'string' : o.type,
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.alias ? { alias: [...o.alias] } : {}),
    ...(o.choices ? { choices: [...o.choices] } : {}),
    ...(o.hidden ? { hidden: true } : {}),
    describe: o.styles ? `${o.describe} (caption styles: ${o.styles.join(', ')})` : o.describe,
  };
}

/** pred's flags: ours, sd-scripts' and the web UI tagger's. */
export function withPredFlags(y: Argv): Argv {
  const entries = Object.entries(PRED_OPTIONS) as [string, OptionSpec][];
  return y.options(Object.fromEntries(entries.map(([name, o]) => [name, yargsOption(o)])));
}

/** --frames and --frames-merge, for `pred` and `serve`. */
export const FRAME_OPTIONS = {
  frames: {
    type: 'number',
    default: 1,
    describe: 'Tag N evenly spaced frames of each animated GIF, WebP or APNG and merge their scores',
  },
  'frames-merge': { type: 'string', choices: FRAME_MERGES, default: 'max', describe: 'How frames merge: max or mean' },
} as const;
