// pred's options declared once (src/select/pred-spec.ts): the yargs flags, serve's request fields and
// the caption styles' refusals all come from the spec, so each is checked here against it, option by
// option, rather than against a copy of the list.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captionStyleOf } from '../../src/captions/style.js';
import {
  CAPTION_STYLES,
  predDefaults,
  PRED_OPTIONS,
  type PredArgs,
  type PredOptionSpec,
} from '../../src/select/pred-spec.js';
import { camel } from '../../src/util/option-spec.js';
import { Fields, predArgs } from '../../src/serve/fields.js';
import { cli } from '../helpers.js';

const entries = Object.entries(PRED_OPTIONS) as [string, PredOptionSpec][];

/** A value of option `o` other than its default, as a parser receives it. */
function otherValue(o: PredOptionSpec): unknown {
  if (o.type === 'number') return 0.5;
  if (o.type === 'boolean') return !o.default;
  if (o.type === 'list') return ['x'];
  return o.choices ? o.choices.find((c) => c !== o.default) : 'x';
}

test('pred --help lists every flag of the spec under its name and aliases, with its default', async () => {
  const help = (await cli('pred', '--help')).out.join('\n');
  const missing: string[] = [];
  for (const [name, o] of entries) {
    if (o.hidden) continue;
    for (const n of [name, ...(o.alias ?? [])]) if (!new RegExp(`--${n}\\b`).test(help)) missing.push(n);
  }
  assert.deepEqual(missing, []);
  // An option's tags in the help: its type, then [choices: …] and [default: …], after its flag.
  const block = (name: string): string => {
    const at = help.search(new RegExp(`^ +(-\\w, )?--${name}\\b`, 'm'));
    return /\[(?:string|boolean|number)\]((?: \[[^\]]*\])*)/.exec(help.slice(at).replace(/\s+/g, ' '))?.[0] ?? '';
  };
  for (const [name, o] of entries)
    if (!o.hidden && o.default !== undefined)
      assert.ok(block(name).includes(`[default: ${JSON.stringify(o.default)}]`), `${name}: ${block(name)}`);
});

test("serve's request fields: every option but the CLI-only ones, parsed by its type; absent ones at their default", () => {
  assert.deepEqual(predArgs(new Fields()), predDefaults());
  const f = new Fields();
  const want: Record<string, unknown> = { ...predDefaults() };
  for (const [name, o] of entries) {
    const v = otherValue(o);
    f.add(name.replace(/-/g, '_'), Array.isArray(v) ? v[0] : v === true ? '' : String(v));
    if (!o.cliOnly && !(o.type === 'boolean' && v === false)) want[camel(name)] = v;
  }
  assert.deepEqual(predArgs(f), want);
  // A file path is never a request field: `thresholds` (a CSV read from disk) is ignored.
  assert.equal((predArgs(f) as PredArgs).thresholds, undefined);
});

test('a flag only some caption styles have is refused under the others, naming it, and accepted under its own', () => {
  let checked = 0;
  for (const [name, o] of entries) {
    if (!o.styles) continue;
    for (const style of CAPTION_STYLES) {
      const a = { ...predDefaults(), captionStyle: style, [camel(name)]: otherValue(o) } as PredArgs;
      if (o.styles.includes(style)) assert.equal(captionStyleOf(a), style);
      else
        assert.throws(
          () => captionStyleOf(a),
          new RegExp(`^UsageError: Expected --${name} only with --caption-style ${o.styles.join(' or ')} but`),
        );
      checked++;
    }
  }
  assert.ok(checked >= 60, `${checked}`);
  // sd-scripts' --remove_underscore under our style was silently ignored; now refused.
  assert.throws(() => captionStyleOf({ ...predDefaults(), removeUnderscore: true }), /--remove-underscore only with/);
});
