// The options every command that loads a tagger shares, declared once with one meaning: the model, a
// foreign tagger's tags file, preset and input overrides, and where it runs (--device, --threads, --batch).
import type { Argv } from 'yargs';
import { padColorOf } from '../data/images.js';
import { CHANNEL_ORDERS } from '../contracts/contract.js';
import { PRESET_NAMES } from '../contracts/contract-doc.js';
import type { LoadOptions } from '../model/tagger.js';
import { checkedOptions, checkOption, type ArgsOf, type Specs } from '../util/option-spec.js';
import { yargsOption, yargsOptions } from './command.js';
import { startProgress, type Io } from './io.js';
import { DEVICES, executionProviders, type Device } from '../runtime/providers.js';

/** The image inputs of every command that tags images: files, folders (recursive) or `-` (paths on stdin). */
export const IMAGES_ARG = {
  type: 'string',
  array: true,
  demandOption: true,
  describe: 'Image files, folders, or - for a list on stdin',
} as const;

/** The largest --batch of a model run. */
export const MAX_BATCH = 4096;

/** --embedding: which tensor of a foreign tagger is its features (vec, similar). */
export const EMBEDDING_OPTION = {
  embedding: {
    type: 'string',
    describe:
      "A foreign tagger's features for --kind features or binary: the tensor its last layer reads [default: found by walking back from its scores to their MatMul, Gemm or 1×1 Conv]",
  },
} as const satisfies Specs;

/** The options of every command that loads a tagger (src/util/option-spec.ts). */
export const MODEL_OPTIONS = {
  model: {
    type: 'string',
    required: true,
    describe:
      'Model: exported by `export`, a foreign ONNX tagger (its tags file beside it, or --tags), or hf:OWNER/REPO[@REVISION][:FILE] from the Hugging Face cache',
  },
  tags: {
    type: 'string',
    describe: 'Tags of a WD or DeepDanbooru model: selected_tags.csv, or tags.txt with one tag per line',
  },
  preset: {
    type: 'string',
    choices: ['auto', ...PRESET_NAMES],
    default: 'auto',
    describe: 'Contract of a foreign model (src/contracts/presets/): auto picks by the tags file and the input layout',
  },
  contract: { type: 'string', describe: "A foreign model's contract file (docs/CONTRACTS.md), not a preset" },
  channels: { type: 'string', choices: CHANNEL_ORDERS, describe: 'Override: channel order of a foreign model' },
  scale: { type: 'number', choices: [255, 1], describe: 'Override: a foreign model takes 0–255 (255) or 0–1 (1)' },
  'pad-color': {
    type: 'string',
    describe: 'Override: letterbox and alpha colour of a foreign model (white, black or R,G,B)',
  },
  threads: {
    type: 'number',
    default: 0,
    range: [0, 1024],
    integer: true,
    describe:
      'Threads the model runs on (0 = one per core; 1 leaves the other cores to decoding, which suits small models)',
  },
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model runs' },
  batch: {
    type: 'number',
    default: 8,
    range: [1, MAX_BATCH],
    integer: true,
    alias: ['batch-size', 'batch_size'],
    describe: `Images per model run (1–${MAX_BATCH})`,
  },
} as const satisfies Specs;

/** MODEL_OPTIONS as yargs options; `--model` optional where a command finds the model elsewhere. */
export function withModelOptions(y: Argv, modelRequired = true): Argv {
  const { model, ...rest } = MODEL_OPTIONS;
  return y.options({ model: yargsOption({ ...model, required: modelRequired }), ...yargsOptions(rest) });
}

/** --batch, checked. */
export const batchOf = (argv: { batch: number }): number =>
  checkOption('--batch', MODEL_OPTIONS.batch, argv.batch) as number;

export type ModelArgs = Omit<ArgsOf<typeof MODEL_OPTIONS>, 'model'>;

export function loadOptionsFrom(argv: ModelArgs, io: Io): LoadOptions {
  const { model: _, ...specs } = MODEL_OPTIONS;
  const checked = checkedOptions(specs, argv);
  return {
    executionProviders: executionProviders(checked.device as Device),
    threads: checked.threads,
    tags: argv.tags,
    preset: checked.preset,
    contract: argv.contract,
    overrides: {
      channels: checked.channels,
      scale: checked.scale,
      padColor: argv.padColor === undefined ? undefined : padColorOf(argv.padColor, '--pad-color'),
    },
    onChoice: (line) => io.err(line),
    onDownload: (label, total) => {
      const mb = (bytes: number): number => Math.round(bytes / 1e5) / 10;
      const bar = startProgress(io, label, mb(total), 'MB', 2000);
      return { update: (done) => bar.update(mb(done)), stop: () => bar.stop() };
    },
  };
}
