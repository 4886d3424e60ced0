// `pairs DATASET --tags tags.csv --out SHARDS`: the seed's make_pair, as resumable safetensors shards.
import path from 'node:path';
import type { Options } from 'yargs';
import { defineCommand, type Args, type Command } from '../command.js';
import { checkChoice, checkInteger, checkNumber, UsageError } from '../../util/errors.js';
import { checkDatasetDir } from '../../data/scan.js';
import { DEFAULT_MAX_PIXELS, PAD_RULES } from '../../data/images.js';
import { makeShards } from '../../data/make-shards.js';
import { TagIndex } from '../../data/tags.js';
import { startProgress, type Io, type Progress } from '../io.js';

const OPTIONS = {
  tags: { type: 'string', demandOption: true, describe: 'tags.csv made by `tags`' },
  out: {
    type: 'string',
    demandOption: true,
    describe: 'Shards folder (re-run to continue an interrupted run)',
  },
  'shard-size': { type: 'number', default: 15000, describe: 'Training images per shard' },
  size: { type: 'number', default: 224, describe: 'Image side S in pixels' },
  holdout: {
    type: 'number',
    default: 0.01,
    describe: 'Fraction held out for evaluation (by file name hash)',
  },
  pad: {
    type: 'string',
    choices: PAD_RULES,
    default: 'center',
    describe: 'Letterbox placement (topleft = the seed)',
  },
  'max-pixels': {
    type: 'number',
    default: DEFAULT_MAX_PIXELS,
    describe: 'Skip images with more pixels (decompression bombs)',
  },
  concurrency: { type: 'number', describe: 'Images decoded at once [default: cores]' },
} as const satisfies Record<string, Options>;

export const pairsCommand: Command = ({ io }) =>
  defineCommand({
    command: 'pairs <dataset>',
    describe: 'Decode, letterbox and resize images into training shards with multi-hot labels (resumable)',
    builder: (y) =>
      y
        .positional('dataset', {
          type: 'string',
          demandOption: true,
          describe: 'Folder of images with sibling .txt tag files',
        })
        .options(OPTIONS),
    handler: (argv: RunPairsArgs) => runPairs(io, argv),
  });

type RunPairsArgs = Args<typeof OPTIONS> & {
  dataset: string;
  tags: string;
  out: string;
  shardSize: number;
  size: number;
  holdout: number;
  pad: string;
  maxPixels: number;
  concurrency?: number;
};

async function runPairs(io: Io, argv: RunPairsArgs): Promise<void> {
  const shardSize = checkInteger('--shard-size', argv.shardSize, 1, 28_000);
  const size = checkInteger('--size', argv.size, 32, 2048);
  // train's VGG16 halves the image five times: refuse now what it would refuse later.
  if (size % 32 !== 0)
    throw new UsageError(`Expected a multiple of 32 for --size (VGG16 halves the image 5 times) but received ${size}`);
  const holdout = checkNumber('--holdout', argv.holdout, 0, 0.5);
  const pad = checkChoice('--pad', argv.pad, PAD_RULES);
  const maxPixels = checkInteger('--max-pixels', argv.maxPixels, 1, 2 ** 40);
  const concurrency =
    argv.concurrency === undefined ? undefined : checkInteger('--concurrency', argv.concurrency, 1, 256);
  if (shardSize * size * size * 3 > 2 ** 32 - 1)
    checkInteger('--shard-size', shardSize, 1, Math.floor((2 ** 32 - 1) / (size * size * 3)));
  const dataset = await checkDatasetDir(argv.dataset);
  const tags = await TagIndex.load(argv.tags);
  const out = path.resolve(argv.out);
  let bar: Progress | undefined;
  const index = await makeShards({
    dataset,
    tags,
    out,
    shardSize,
    imageSize: size,
    holdout,
    pad,
    maxPixels,
    concurrency,
    onStart: ({ total, resumedFrom }) => {
      if (resumedFrom > 0) io.err(`pairs: continuing ${out} after ${resumedFrom} files`);
      if (total > 0) bar = startProgress(io, 'pairs', total);
    },
    onProgress: (done) => bar?.update(done),
    onWarning: (line) => (bar ? bar.log(line) : io.err(line)),
  });
  bar?.stop();
  const { kept, skipped, orphanTagFiles } = index.stats;
  const skipText =
    Object.entries(skipped)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const train = index.shards.filter((s) => s.split === 'train').reduce((a, s) => a + s.count, 0);
  io.out(
    `kept ${kept} (train ${train}, holdout ${kept - train}) in ${index.shards.length} shards; skipped: ${skipText}; tag files without image: ${orphanTagFiles}`,
  );
  if (kept - train < 200)
    io.err(
      `warning: the holdout has ${kept - train} images: its mAP will be noisy; hold out more with --holdout (200 or more images is a good start)`,
    );
  io.out(`next: alt-i2v-ort train ${argv.out} --out run`);
}
