// `gallery DIR|SHARDS --model model.onnx --out gallery.html [--limit 100]`: one self-contained page of
// images with their predicted tags, marked against the true tags where known (src/outputs/gallery.ts).
import path from 'node:path';
import { defineCommand, type Command } from '../command.js';
import { loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { checkInteger, checkNumber, UsageError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { galleryHtml, galleryItems } from '../../outputs/gallery.js';
import { TaggerModel } from '../../model/tagger.js';

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
      )
        .option('out', { type: 'string', demandOption: true, describe: 'HTML file to write' })
        .option('limit', { type: 'number', default: 100, describe: 'At most this many images' })
        .option('threshold', {
          type: 'number',
          default: 0.5,
          describe: 'Tags with probability ≥ T count as predicted',
        }),
    handler: async (
      argv: ModelArgs & { source: string; model: string; out: string; limit: number; threshold: number },
    ) => {
      const limit = checkInteger('--limit', argv.limit, 1, 100_000);
      const threshold = checkNumber('--threshold', argv.threshold, 0, 1);
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
