// `teach DATASET --model MODEL --out merged.onnx`: teach a tagger the dataset's tags it lacks, in one
// step (src/teach/teach.ts), then print each taught tag's holdout AP and F1 beside its base rate.
import path from 'node:path';
import { defineCommand, yargsOptions, yargsOption, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { checkDatasetDir } from '../../data/scan.js';
import { teach, TEACH_DEFAULTS } from '../../teach/teach.js';
import { EMBEDDING_OPTION, loadOptionsFrom, MODEL_OPTIONS, type ModelArgs } from '../model-options.js';
import { startProgress, type Io, type Progress } from '../io.js';
import { roundProgress } from '../train-progress.js';

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'The merged model to write (.onnx); its work folder is OUT.teach/' },
  tags: {
    type: 'string',
    describe:
      "A tags.csv of the tags to teach [default: the captions' tags on --min-count images that the base lacks or scores poorly]",
  },
  'model-tags': { type: 'string', describe: "The --model tagger's own tags file, where it is not beside the model" },
  negatives: { type: 'string', describe: 'A folder of images that hold none of the tags: more negative examples' },
  'min-count': {
    type: 'number',
    default: TEACH_DEFAULTS.minCount,
    range: [1, 1e9],
    integer: true,
    describe: 'Teach a tag on this many images or more',
  },
  'relearn-below': {
    type: 'number',
    default: TEACH_DEFAULTS.relearnBelow,
    range: [0, 1],
    describe: "Teach a tag the base has again when its AP on the dataset's images is below this",
  },
  hidden: {
    type: 'number',
    default: TEACH_DEFAULTS.hidden,
    range: [0, 1e6],
    integer: true,
    describe: "The head's hidden layer (0: one linear layer over the embedding)",
  },
  ...EMBEDDING_OPTION,
} as const satisfies Specs;

const { tags: _tags, ...modelOptions } = MODEL_OPTIONS;

export const teachCommand: Command = ({ io }) =>
  defineCommand({
    command: 'teach <dataset>',
    describe: 'Teach a tagger your tags: a head over its embedding trained on the dataset, one merged model out',
    builder: (y) =>
      y
        .positional('dataset', {
          type: 'string',
          demandOption: true,
          describe: 'Images with .txt captions, or a folder per tag (DATASET/TAG/*.png)',
        })
        .options({ ...yargsOptions(OPTIONS), ...yargsOptions(modelOptions), model: yargsOption(MODEL_OPTIONS.model) }),
    handler: (argv: ArgsOf<typeof OPTIONS> & Omit<ModelArgs, 'tags'> & { dataset: string; model: string }) =>
      runTeach(io, argv),
  });

async function runTeach(
  io: Io,
  argv: ArgsOf<typeof OPTIONS> & Omit<ModelArgs, 'tags'> & { dataset: string; model: string },
): Promise<void> {
  const o = checkedOptions(OPTIONS, argv);
  const load = loadOptionsFrom({ ...argv, tags: o.modelTags }, io);
  const dataset = await checkDatasetDir(argv.dataset);
  let bar: Progress | undefined;
  let total = Infinity;
  const progress = roundProgress(io, TEACH_DEFAULTS.rounds);
  const r = await teach({
    dataset,
    model: argv.model,
    load,
    tags: o.tags,
    negatives: o.negatives === undefined ? undefined : await checkDatasetDir(o.negatives, '--negatives'),
    out: path.resolve(o.out),
    minCount: o.minCount,
    relearnBelow: o.relearnBelow,
    hidden: o.hidden,
    batch: TEACH_DEFAULTS.batch,
    embedding: o.embedding,
    modelBatch: argv.batch,
    threads: argv.threads,
    info: (l) => (bar ? bar.log(l) : io.err(l)),
    warn: (l) => (bar ? bar.log(l) : io.err(l)),
    embedProgress: {
      onStart: ({ images, toEmbed }) => {
        io.err(`teach: ${images} images, ${images - toEmbed} embeddings cached, ${toEmbed} to embed`);
        if (toEmbed > 0) bar = startProgress(io, 'embed', (total = toEmbed));
      },
      onProgress: (done) => {
        bar?.update(done);
        if (bar && done >= total) {
          bar.stop();
          bar = undefined;
        }
      },
    },
    train: { roundStart: progress.hooks.roundStart, step: progress.hooks.step },
  });
  progress.stop();
  const h = r.exported.holdout;
  io.out(`taught ${r.tags.length} tags; holdout of ${h?.images ?? 0} images (AP and F1 at each tag's best threshold):`);
  io.out(
    `${'tag'.padEnd(28)} ${'train+'.padStart(6)} ${'hold+'.padStart(5)} ${'AP'.padStart(6)} ${'F1'.padStart(6)} ${'base rate'.padStart(9)}`,
  );
  const f = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : v.toFixed(3));
  for (const t of h?.tags ?? [])
    io.out(
      `${t.tag.padEnd(28)} ${String(t.trainPositives).padStart(6)} ${String(t.positives).padStart(5)} ${f(t.ap).padStart(6)} ${f(t.f1).padStart(6)} ${f(t.baseRate).padStart(9)}`,
    );
  io.out(
    `wrote ${o.out} and ${r.exported.tagsFile}${r.exported.thresholdsFile ? ` and ${r.exported.thresholdsFile}` : ''} (work folder ${r.work})`,
  );
  io.out(
    `next: alt-i2v-ort pred IMAGES_OR_FOLDER --model ${o.out}${r.exported.thresholdsFile ? ` --thresholds ${r.exported.thresholdsFile}` : ''}`,
  );
}
