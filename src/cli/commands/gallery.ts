// `gallery DIR|SHARDS --model model.onnx --out gallery.html [--limit 100]`: one self-contained page of
// images with their predicted tags, marked against the true tags where known (src/outputs/gallery.ts).
import path from 'node:path';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { UsageError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { galleryHtml, galleryItems } from '../../outputs/gallery.js';
import { TaggerModel } from '../../model/tagger.js';

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'HTML file to write' },
  limit: { type: 'number', default: 100, range: [1, 100_000], integer: true, describe: 'At most this many images' },
  threshold: {
    type: 'number',
    default: 0.5,
    range: [0, 1],
    describe: 'Tags with probability ≥ T count as predicted',
  },
} as const satisfies Specs;

export const galleryCommand: Command = ({ io }) =>
  defineCommand({
    command: 'gallery <source>',
    describe: 'Write one HTML page of images with their predicted tags (marked against true tags when known)',
    builder: (y) =>
      withModelOptions(
        y.positional('source', {
          type: 'string',
          demandOption: true,
          describe: 'A folder of images (true tags from .txt files) or a shards folder',
        }),
      ).options(yargsOptions(OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof OPTIONS> & { source: string; model: string }) => {
      const { limit, threshold } = checkedOptions(OPTIONS, argv);
      if (!/\.html?$/i.test(argv.out))
        throw new UsageError(`Expected --out ending in .html but received ${JSON.stringify(argv.out)}`);
      const model = await TaggerModel.load(argv.model, loadOptionsFrom(argv, io));
      let items;
      try {
        items = await galleryItems(model, path.resolve(argv.source), { limit, threshold }, (file, reason) =>
          io.err(`warning: ${file}: skipped, ${reason}`),
        );
      } finally {
        await model.release();
      }
      await writeFileAtomic(
        argv.out,
        galleryHtml(
          items,
          model.meta.tags,
          `${path.basename(path.resolve(argv.source))}: ${items.length} images, ${path.basename(argv.model)}`,
          threshold,
        ),
      );
      io.out(`wrote ${argv.out} (${items.length} images)`);
    },
  });
