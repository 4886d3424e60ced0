// `pred`'s selection, caption and output flags as yargs options, derived from their one declaration
// (src/select/pred-spec.ts): sd-scripts' tag_images_by_wd14_tagger.py options are accepted under their
// own names (with underscores or dashes), as aliases of ours where they mean the same.
import type { Argv } from 'yargs';
import { PRED_OPTIONS, type PredOptionSpec } from '../select/pred-spec.js';
import { yargsOption } from './command.js';

/** pred's flags: ours, sd-scripts' and the web UI tagger's (or those of them named in `only`). */
export function withPredFlags(y: Argv, only?: readonly string[]): Argv {
  const entries = (Object.entries(PRED_OPTIONS) as [string, PredOptionSpec][]).filter(
    ([name]) => !only || only.includes(name),
  );
  const described = (o: PredOptionSpec): string =>
    o.styles ? `${o.describe} (caption styles: ${o.styles.join(', ')})` : o.describe;
  return y.options(Object.fromEntries(entries.map(([name, o]) => [name, yargsOption(o, described(o))])));
}
