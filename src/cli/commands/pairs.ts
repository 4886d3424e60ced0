// `pairs DATASET --tags tags.csv --out SHARDS`: the seed's make_pair, as resumable safetensors shards.
import path from 'node:path';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkInteger, UsageError } from '../../util/errors.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { checkDatasetDir } from '../../data/scan.js';
import { DEFAULT_MAX_PIXELS, PAD_RULES } from '../../data/images.js';
import { makeShards } from '../../data/make-shards.js';
import { TagIndex } from '../../data/tags.js';
import { startProgress, type Io, type Progress } from '../io.js';
import { BACKBONE_OPTIONS, runEmbeddingPairs, shardCounts } from './pairs-backbone.js';

export const OPTIONS = {
  tags: { type: 'string', required: true, describe: 'tags.csv made by `tags`' },
  out: {
    type: 'string',
    required: true,
    describe: 'Shards folder (re-run to continue an interrupted run)',
  },
  'shard-size': {
    type: 'number',
    default: 15000,
    range: [1, 28_000],
    integer: true,
    describe: 'Training images per shard',
  },
  size: {
    type: 'number',
    default: 224,
    range: [32, 2048],
    integer: true,
    describe: 'Image side S in pixels (a multiple of 32)',
  },
  holdout: {
    type: 'number',
    default: 0.01,
    range: [0, 0.5],
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
    range: [1, 2 ** 40],
    integer: true,
    describe: 'Skip images with more pixels (decompression bombs)',
  },
  ...BACKBONE_OPTIONS,
  concurrency: {
    type: 'number',
    range: [1, 256],
    integer: true,
    describe: 'Images decoded at once [default: cores]',
  },
} as const satisfies Specs;

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
        .options(yargsOptions(OPTIONS)),
    handler: (argv: RunPairsArgs) => runPairs(io, argv),
  });

type RunPairsArgs = ArgsOf<typeof OPTIONS> & { dataset: string };

async function runPairs(io: Io, argv: RunPairsArgs): Promise<void> {
  const checked = checkedOptions(OPTIONS, argv);
  const { shardSize, size, holdout, pad, maxPixels, concurrency, backbone } = checked;
  if (backbone !== undefined) return runEmbeddingPairs(io, { ...argv, ...checked, backbone });
  // train's VGG16 halves the image five times: refuse now what it would refuse later.
  if (size % 32 !== 0)
    throw new UsageError(`Expected a multiple of 32 for --size (VGG16 halves the image 5 times) but received ${size}`);
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
  const c = shardCounts(index);
  io.out(
    `kept ${c.kept} (train ${c.train}, holdout ${c.holdout}) in ${index.shards.length} shards; skipped: ${c.skipped}; tag files without image: ${index.stats.orphanTagFiles}`,
  );
  if (c.holdout < 200)
    io.err(
      `warning: the holdout has ${c.holdout} images: its mAP will be noisy; hold out more with --holdout (200 or more images is a good start)`,
    );
  io.out(`next: alt-i2v-ort train ${argv.out} --out run`);
}
