// `demo [--out DIR]`: the pipeline on the built-in demo data, printing each step. It grows with the
// pipeline: today synth → tags → pairs; training, export and prediction join as they land.
import path from 'node:path';
import { defineCommand, type Command } from '../command.js';

export const demoCommand: Command = ({ io, run }) =>
  defineCommand({
    command: 'demo',
    describe: 'Run the pipeline on built-in demo data (synth → tags → pairs)',
    builder: (y) =>
      y
        .option('out', { type: 'string', default: 'demo-out', describe: 'Working folder' })
        .option('count', { type: 'number', default: 600, describe: 'Demo images to draw' }),
    handler: async (argv: { out: string; count: number }) => {
      const out = path.resolve(argv.out);
      const steps: string[][] = [
        ['synth', '--out', path.join(out, 'data'), '--count', String(argv.count), '--seed', '1'],
        ['tags', path.join(out, 'data'), '--out', path.join(out, 'tags.csv'), '--min-count', '3'],
        ['pairs', path.join(out, 'data'), '--tags', path.join(out, 'tags.csv'), '--out', path.join(out, 'shards'), '--size', '64', '--shard-size', '200', '--holdout', '0.1'],
      ];
      for (const step of steps) {
        io.out(`$ alt-i2v-ort ${step.join(' ')}`);
        const code = await run(step);
        if (code !== 0) throw new Error(`demo step "${step[0]}" failed with exit code ${code}`);
      }
    },
  });
