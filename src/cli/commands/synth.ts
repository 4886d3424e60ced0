// `synth --out DIR [--count N] [--seed S]`: the built-in demo dataset (src/data/synth.ts).
import path from 'node:path';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { writeSynthDataset } from '../../data/synth.js';
import { startProgress } from '../io.js';

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'Folder to write (created if missing)' },
  count: { type: 'number', default: 500, range: [1, 10_000_000], integer: true, describe: 'Number of images' },
  seed: {
    type: 'number',
    default: 1,
    range: [0, 2 ** 32 - 1],
    integer: true,
    describe: 'Random seed: the same seed writes the same bytes',
  },
} as const satisfies Specs;

export const synthCommand: Command = ({ io }) =>
  defineCommand({
    command: 'synth',
    describe: 'Write a demo dataset: illustration-like images with booru-style tag files',
    builder: (y) => y.options(yargsOptions(OPTIONS)),
    handler: async (argv: ArgsOf<typeof OPTIONS>) => {
      const { count, seed } = checkedOptions(OPTIONS, argv);
      const out = path.resolve(argv.out);
      const bar = startProgress(io, 'synth', count);
      await writeSynthDataset(out, count, seed, (d) => bar.update(d));
      bar.stop();
      io.out(`wrote ${count} images with tags to ${out}`);
    },
  });
