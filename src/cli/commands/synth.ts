// `synth --out DIR [--count N] [--seed S]`: the built-in demo dataset (src/data/synth.ts).
import path from 'node:path';
import { defineCommand, type Command } from '../command.js';
import { checkInteger } from '../../util/errors.js';
import { writeSynthDataset } from '../../data/synth.js';
import { startProgress } from '../io.js';

export const synthCommand: Command = ({ io }) =>
  defineCommand({
    command: 'synth',
    describe: 'Write a demo dataset: illustration-like images with booru-style tag files',
    builder: (y) =>
      y
        .option('out', { type: 'string', demandOption: true, describe: 'Folder to write (created if missing)' })
        .option('count', { type: 'number', default: 500, describe: 'Number of images' })
        .option('seed', { type: 'number', default: 1, describe: 'Random seed: the same seed writes the same bytes' }),
    handler: async (argv: { out: string; count: number; seed: number }) => {
      const count = checkInteger('--count', argv.count, 1, 10_000_000);
      const seed = checkInteger('--seed', argv.seed, 0, 2 ** 32 - 1);
      const out = path.resolve(argv.out);
      const bar = startProgress(io, 'synth', count);
      await writeSynthDataset(out, count, seed, (d) => bar.update(d));
      bar.stop();
      io.out(`wrote ${count} images with tags to ${out}`);
    },
  });
