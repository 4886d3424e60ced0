// `vec IMAGE|DIR|- ... --model model.onnx [--kind probs|features|binary] [--out FILE]`: the
// "illustration to vector" (src/outputs/vectors.ts) as .npy (with FILE.npy.json naming the rows) or JSONL.
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import {
  batchOf,
  EMBEDDING_OPTION,
  IMAGES_ARG,
  loadOptionsFrom,
  withModelOptions,
  type ModelArgs,
} from '../model-options.js';
import { UsageError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { TaggerModel } from '../../model/tagger.js';
import { VEC_KINDS, vectorize, vectorLines, writeVecIndex, type Vectors } from '../../outputs/vectors.js';

export const OPTIONS = {
  kind: {
    type: 'string',
    choices: VEC_KINDS,
    default: 'features',
    describe: 'probs (K), features (hidden), binary (features > 0, packed bits)',
  },
  out: {
    type: 'string',
    describe: 'FILE.npy (plus FILE.npy.json naming the rows) or FILE.jsonl [default: JSONL on stdout]',
  },
  ...EMBEDDING_OPTION,
} as const satisfies Specs;

export const vecCommand: Command = ({ io }) =>
  defineCommand({
    command: 'vec <images..>',
    describe: 'Illustration vectors: tag probabilities, hidden features or binary hashes, as .npy or JSONL',
    builder: (y) => withModelOptions(y.positional('images', IMAGES_ARG)).options(yargsOptions(OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof OPTIONS> & { images: string[]; model: string }) => {
      const { kind, embedding } = checkedOptions(OPTIONS, argv);
      const batch = batchOf(argv);
      if (argv.out && !/\.(npy|jsonl)$/.test(argv.out))
        throw new UsageError(`Expected --out ending in .npy or .jsonl but received ${JSON.stringify(argv.out)}`);
      const model = await TaggerModel.load(argv.model, {
        ...loadOptionsFrom(argv, io),
        ...(kind === 'probs' ? {} : { embedding: embedding ?? true }),
      });
      let failed = 0;
      let v: Vectors;
      try {
        v = await vectorize(model, argv.images, kind, batch, (file, reason) => {
          failed++;
          io.err(`warning: ${file}: skipped, ${reason}`);
        });
      } finally {
        await model.release();
      }
      if (argv.out?.endsWith('.npy')) {
        await writeVecIndex(argv.out, v, kind, argv.model, model);
        io.out(
          `wrote ${v.rows.length} ${kind} vectors (${v.dim}${kind === 'binary' ? ' bits' : ''}) to ${argv.out} and their names to ${argv.out}.json`,
        );
      } else if (argv.out) {
        await writeFileAtomic(
          argv.out,
          vectorLines(v, kind)
            .map((l) => `${l}\n`)
            .join(''),
        );
        io.out(`wrote ${v.rows.length} ${kind} vectors to ${argv.out}`);
      } else vectorLines(v, kind).forEach((l) => io.out(l));
      if (failed > 0) throw new Error(`${failed} images could not be read (warnings above); the others were written`);
    },
  });
