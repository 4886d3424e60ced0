// train's options declared once (src/train/train-spec.ts): `train --help` shows each with its default,
// and each range and choice is enforced with one line naming the flag — checked option by option
// against the table, and once through the CLI.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRAIN_OPTIONS } from '../../src/train/train-spec.js';
import { camel, checkedOptions, defaultsOf, type ArgsOf, type OptionSpec } from '../../src/util/option-spec.js';
import { cli } from '../helpers.js';

const entries = Object.entries(TRAIN_OPTIONS) as [string, OptionSpec][];
const valid = { ...defaultsOf(TRAIN_OPTIONS), out: 'run' } as ArgsOf<typeof TRAIN_OPTIONS>;

test('train --help lists every option of the table with its default', async () => {
  const help = (await cli('train', '--help')).out.join('\n').replace(/\s+/g, ' ');
  for (const [name, o] of entries) {
    assert.match(help, new RegExp(`--${name}\\b`), name);
    if (o.default !== undefined) assert.ok(help.includes(`[default: ${JSON.stringify(o.default)}]`), name);
  }
});

test('every range and choice of the table is enforced, naming the flag; the ends of each range pass', () => {
  let checked = 0;
  for (const [name, o] of entries) {
    const at = (v: unknown): unknown => checkedOptions(TRAIN_OPTIONS, { ...valid, [camel(name)]: v } as never);
    if (o.range) {
      const [min, max] = o.range;
      at(min);
      at(max);
      for (const bad of [min - 1, max + 1, ...(o.integer ? [min + 0.5] : [])])
        assert.throws(() => at(bad), new RegExp(`Expected .* for --${name} but received`), name);
      checked++;
    }
    if (o.choices) {
      for (const c of o.choices) at(c);
      assert.throws(() => at('nope'), new RegExp(`--${name}`));
      checked++;
    }
  }
  assert.ok(checked >= 13, `${checked}`);
  // Only the table's own options come back: no yargs aliases or positionals ride along.
  assert.deepEqual(
    Object.keys(checkedOptions(TRAIN_OPTIONS, { ...valid, _: [], $0: 'x' } as never)).sort(),
    Object.keys(valid).sort(),
  );
});

test('through the CLI: a bad value is a usage error (exit 2) of one line naming the flag', async () => {
  const r = await cli('train', 'shards', '--out', 'run', '--keep', '0');
  assert.equal(r.code, 2);
  assert.equal(r.err.length, 1);
  assert.match(r.err[0]!, /--keep/);
});
