// `similar QUERY --index FILE.npy [--k 10]`: nearest neighbours of an image among the rows of a `vec`
// index (src/outputs/vectors.ts).
import { stat } from 'node:fs/promises';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { fsReason } from '../../util/fsx.js';
import { EMBEDDING_OPTION, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { UsageError } from '../../util/errors.js';
import { TaggerModel } from '../../model/tagger.js';
import { nearest, readVecIndex, vectorize, type Vectors } from '../../outputs/vectors.js';

export const OPTIONS = {
  index: { type: 'string', required: true, describe: '.npy written by `vec --out`' },
  k: { type: 'number', default: 10, range: [1, 1e6], integer: true, describe: 'Neighbours to list' },
  ...EMBEDDING_OPTION,
} as const satisfies Specs;

export const similarCommand: Command = ({ io }) =>
  defineCommand({
    command: 'similar <query>',
    describe: 'Nearest neighbours of an image in a `vec` index (cosine, or Hamming for binary)',
    builder: (y) =>
      withModelOptions(
        y.positional('query', { type: 'string', demandOption: true, describe: 'Query image' }),
        false,
      ).options(yargsOptions(OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof OPTIONS> & { query: string; model?: string }) => {
      const { k, embedding } = checkedOptions(OPTIONS, argv);
      const load = loadOptionsFrom(argv, io);
      const info = await stat(argv.query).catch((err: unknown) => {
        throw new UsageError(
          `Expected an image file for QUERY but ${JSON.stringify(argv.query)} cannot be read (${fsReason(err)})`,
        );
      });
      if (!info.isFile())
        throw new UsageError(
          `Expected one image file for QUERY but ${JSON.stringify(argv.query)} is a folder or not a regular file`,
        );
      const { meta, index } = await readVecIndex(argv.index);
      const model = await TaggerModel.load(argv.model ?? meta.model, {
        ...load,
        ...(meta.kind === 'probs' ? {} : { embedding: embedding ?? true }),
      });
      let q: Vectors;
      try {
        q = await vectorize(model, [argv.query], meta.kind, 1, (file, reason) => {
          throw new UsageError(`Expected a readable query image but ${file}: ${reason}`);
        });
      } finally {
        await model.release();
      }
      const binary = meta.kind === 'binary';
      nearest(q.rows[0]!, index, meta, k).forEach((s, r) =>
        io.out(`${r + 1}\t${binary ? `${s.score} bits` : s.score.toFixed(4)}\t${s.file}`),
      );
    },
  });
