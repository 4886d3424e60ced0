// `tags DATASET --out tags.csv [--top 5000] [--min-count N]`: the seed's make_tag_index.
import path from 'node:path';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { UsageError } from '../../util/errors.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { checkDatasetDir } from '../../data/scan.js';
import { countTags, formatTagsCsv, selectTags } from '../../data/tags.js';
import { writeFileAtomic } from '../../util/fsx.js';

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'tags.csv to write' },
  top: {
    type: 'number',
    default: 5000,
    range: [1, 1_000_000],
    integer: true,
    describe: 'Keep the K most frequent tags',
  },
  'min-count': {
    type: 'number',
    default: 2,
    range: [1, 1e12],
    integer: true,
    describe: 'Drop tags on fewer images than this (a tag on one image cannot be learned or evaluated)',
  },
} as const satisfies Specs;

export const tagsCommand: Command = ({ io }) =>
  defineCommand({
    command: 'tags <dataset>',
    describe: 'Count the tags of a dataset and write the top ones as tags.csv (tag_id,name,category,count)',
    builder: (y) =>
      y
        .positional('dataset', {
          type: 'string',
          demandOption: true,
          describe: 'Folder of images with sibling .txt tag files',
        })
        .options(yargsOptions(OPTIONS)),
    handler: async (argv: ArgsOf<typeof OPTIONS> & { dataset: string }) => {
      const { top, minCount } = checkedOptions(OPTIONS, argv);
      const root = await checkDatasetDir(argv.dataset);
      let lastReport = performance.now();
      const counted = await countTags(
        root,
        (n) => {
          if (performance.now() - lastReport > 5000) {
            lastReport = performance.now();
            io.err(`tags: ${n} images read`);
          }
        },
        (line) => io.err(line),
      );
      const rows = selectTags(counted.counts, top, minCount);
      if (rows.length === 0) {
        throw new UsageError(
          `Expected images with tags in ${JSON.stringify(argv.dataset)} but found ${counted.images} images and no tag with ≥ ${minCount} images`,
        );
      }
      await writeFileAtomic(path.resolve(argv.out), formatTagsCsv(rows));
      if (counted.imagesWithoutTagFile > 0)
        io.err(`warning: ${counted.imagesWithoutTagFile} images have no .txt tag file`);
      if (counted.tagFilesWithoutImage > 0) io.err(`warning: ${counted.tagFilesWithoutImage} .txt files have no image`);
      if (counted.skippedTagFiles > 0)
        io.err(`warning: ${counted.skippedTagFiles} tag files were skipped (warnings above)`);
      const dropped = [...counted.counts.values()].filter((n) => n < minCount).length;
      io.out(
        `${counted.images} images, ${counted.counts.size} distinct tags${dropped ? ` (${dropped} on fewer than ${minCount} images dropped)` : ''}; wrote ${rows.length} to ${argv.out}`,
      );
      io.out(`next: alt-i2v-ort pairs ${argv.dataset} --tags ${argv.out} --out shards`);
    },
  });
