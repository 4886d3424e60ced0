// Every command's options are declared once, as a table (src/util/option-spec.ts): `--help` shows each
// with its default, and each range and choice is enforced with one line naming the flag before any file
// is touched — checked entry by entry for every table, so an option added to a table is covered by itself.
// (pred's selection and caption options: test/predict/pred-spec.test.ts.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { camel, checkedOptions, defaultsOf, type OptionSpec, type Specs } from '../../src/util/option-spec.js';
import { TRAIN_OPTIONS } from '../../src/train/train-spec.js';
import { MODEL_OPTIONS } from '../../src/cli/model-options.js';
import * as demo from '../../src/cli/commands/demo.js';
import * as doctor from '../../src/cli/commands/doctor.js';
import * as evalCmd from '../../src/cli/commands/eval.js';
import * as exportCmd from '../../src/cli/commands/export.js';
import * as gallery from '../../src/cli/commands/gallery.js';
import * as kpi from '../../src/cli/commands/kpi.js';
import * as pairs from '../../src/cli/commands/pairs.js';
import * as pred from '../../src/cli/commands/pred.js';
import * as quantize from '../../src/cli/commands/quantize.js';
import * as serve from '../../src/cli/commands/serve.js';
import * as similar from '../../src/cli/commands/similar.js';
import * as synth from '../../src/cli/commands/synth.js';
import * as tags from '../../src/cli/commands/tags.js';
import * as vec from '../../src/cli/commands/vec.js';
import { cli } from '../helpers.js';

// Paths that do not exist: a check that ran after touching a file would fail on the file, not the flag.
const M = ['--model', '/nonexistent/m.onnx'];
/** Each command: a command line that is complete but for the option under test, and its tables. */
const COMMANDS: { argv: string[]; tables: Specs[]; positional?: string }[] = [
  { argv: ['synth', '--out', '/nonexistent/d'], tables: [synth.OPTIONS] },
  { argv: ['tags', '/nonexistent/d', '--out', '/nonexistent/t.csv'], tables: [tags.OPTIONS] },
  {
    argv: ['pairs', '/nonexistent/d', '--tags', '/nonexistent/t.csv', '--out', '/nonexistent/s'],
    tables: [pairs.OPTIONS],
  },
  { argv: ['train', '/nonexistent/s', '--out', '/nonexistent/r'], tables: [TRAIN_OPTIONS] },
  { argv: ['export', '/nonexistent/r', '--out', '/nonexistent/m.onnx', '--int8'], tables: [exportCmd.OPTIONS] },
  { argv: ['eval', '/nonexistent/s', ...M], tables: [evalCmd.OPTIONS, MODEL_OPTIONS] },
  { argv: ['pred', '/nonexistent/a.png', ...M], tables: [pred.OPTIONS, MODEL_OPTIONS] },
  { argv: ['vec', '/nonexistent/a.png', ...M], tables: [vec.OPTIONS, MODEL_OPTIONS] },
  {
    argv: ['similar', '/nonexistent/a.png', '--index', '/nonexistent/v.npy'],
    tables: [similar.OPTIONS, MODEL_OPTIONS],
  },
  {
    argv: ['gallery', '/nonexistent/d', ...M, '--out', '/nonexistent/g.html'],
    tables: [gallery.OPTIONS, MODEL_OPTIONS],
  },
  {
    argv: ['kpi', 'fit', '/nonexistent/v.npy', '--target', '/nonexistent/t.csv', '--out', '/nonexistent/k.json'],
    tables: [kpi.KPI_FIT_OPTIONS],
  },
  {
    argv: ['kpi', 'pred', '/nonexistent/a.png', ...M, '--kpi', '/nonexistent/k.json'],
    tables: [kpi.KPI_PRED_OPTIONS, MODEL_OPTIONS],
  },
  { argv: ['serve', ...M], tables: [serve.OPTIONS, MODEL_OPTIONS] },
  {
    argv: ['quantize', '/nonexistent/m.onnx', '--out', '/nonexistent/q.onnx'],
    tables: [quantize.OPTIONS, MODEL_OPTIONS],
    positional: 'model',
  },
  { argv: ['doctor'], tables: [doctor.OPTIONS] },
  { argv: ['demo', '--out', '/nonexistent/demo'], tables: [demo.OPTIONS] },
];

const entriesOf = (t: Specs): [string, OptionSpec][] => Object.entries(t);

test('every command lists every option of its tables in --help, with its default', async () => {
  for (const { argv, tables, positional } of COMMANDS) {
    const words = argv[0] === 'kpi' ? argv.slice(0, 2) : argv.slice(0, 1);
    const help = (await cli(...words, '--help')).out.join('\n').replace(/\s+/g, ' ');
    for (const [name, o] of tables.flatMap(entriesOf)) {
      if (name === positional) continue;
      assert.match(help, new RegExp(`${name.length > 1 ? '--' : '-'}${name}\\b`), `${words.join(' ')} --${name}`);
      if (o.default !== undefined)
        assert.ok(help.includes(`[default: ${JSON.stringify(o.default)}]`), `${words.join(' ')} --${name}`);
    }
  }
});

test('every range and choice is checked by the table; the ends of each range pass', () => {
  let checked = 0;
  for (const t of [...new Set(COMMANDS.flatMap((c) => c.tables))]) {
    const valid = defaultsOf(t) as Record<string, unknown>;
    for (const [name, o] of entriesOf(t)) {
      const at = (v: unknown): unknown => checkedOptions(t, { ...valid, [camel(name)]: v } as never);
      if (o.range) {
        const [min, max] = o.range;
        at(min);
        at(max);
        for (const bad of [min - 1, max + 1, Number.NaN, ...(o.integer ? [min + 0.5] : [])])
          assert.throws(() => at(bad), new RegExp(`Expected .* for --${name} but received`), name);
        checked++;
      }
      if (o.choices) {
        for (const c of o.choices) at(c);
        assert.throws(() => at(o.type === 'number' ? -7 : 'nope'), new RegExp(`--${name}`), name);
        checked++;
      }
    }
    // Only the table's own options come back: no yargs aliases or positionals ride along.
    assert.deepEqual(
      Object.keys(checkedOptions(t, { ...valid, _: [], $0: 'x' } as never)).sort(),
      Object.keys(valid).sort(),
    );
  }
  assert.ok(checked >= 60, `${checked}`);
});

test('through the CLI: a value past either end of a range is a usage error (exit 2) of one line naming the flag, before any file is read', async () => {
  let runs = 0;
  for (const { argv, tables } of COMMANDS) {
    for (const [name, o] of tables.flatMap(entriesOf)) {
      if (!o.range) continue;
      for (const bad of [o.range[0] - 1, o.range[1] + 1]) {
        const r = await cli(...argv, `--${name}=${bad}`);
        const line = `${argv.slice(0, 2).join(' ')} --${name}=${bad}`;
        assert.equal(r.code, 2, `${line}: ${r.err.join(' | ')}`);
        assert.equal(r.err.length, 1, `${line}: ${r.err.join(' | ')}`);
        assert.match(r.err[0]!, new RegExp(`--${name}\\b`), line);
        runs++;
      }
    }
  }
  assert.ok(runs >= 60, `${runs}`);
});
