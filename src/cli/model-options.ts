// The options every command that loads a tagger shares, declared once with one meaning: the model, a
// foreign tagger's tags file, preset and input overrides, and where it runs (--device, --threads, --batch).
import type { Argv } from 'yargs';
import { padColorOf } from '../data/images.js';
import { CHANNEL_ORDERS } from '../contracts/contract.js';
import { PRESET_NAMES } from '../contracts/contract-doc.js';
import type { LoadOptions } from '../model/tagger.js';
import { checkChoice, checkInteger } from '../util/errors.js';
import { startProgress, type Io } from './io.js';
import { DEVICES, executionProviders, type Device } from '../runtime/providers.js';

/** The image inputs of every command that tags images: files, folders (recursive) or `-` (paths on stdin). */
export const IMAGES_ARG = {
  type: 'string',
  array: true,
  demandOption: true,
  describe: 'Image files, folders, or - for a list on stdin',
} as const;

export function withModelOptions(y: Argv, modelRequired = true): Argv {
  return y
    .option('model', {
      type: 'string',
      demandOption: modelRequired,
      describe:
        'Model: exported by `export`, a foreign ONNX tagger (its tags file beside it, or --tags), or hf:OWNER/REPO[@REVISION][:FILE] from the Hugging Face cache',
    })
    .option('tags', {
      type: 'string',
      describe: 'Tags of a WD or DeepDanbooru model: selected_tags.csv, or tags.txt with one tag per line',
    })
    .option('preset', {
      type: 'string',
      choices: ['auto', ...PRESET_NAMES],
      default: 'auto',
      describe:
        'Contract of a foreign model (src/contracts/presets/): auto picks by the tags file and the input layout',
    })
    .option('contract', {
      type: 'string',
      describe: "A foreign model's contract file (docs/CONTRACTS.md), not a preset",
    })
    .option('channels', {
      type: 'string',
      choices: CHANNEL_ORDERS,
      describe: 'Override: channel order of a foreign model',
    })
    .option('scale', {
      type: 'number',
      choices: [255, 1],
      describe: 'Override: a foreign model takes 0–255 (255) or 0–1 (1)',
    })
    .option('pad-color', {
      type: 'string',
      describe: 'Override: letterbox and alpha colour of a foreign model (white, black or R,G,B)',
    })
    .option('threads', {
      type: 'number',
      default: 0,
      describe:
        'Threads the model runs on (0 = one per core; 1 leaves the other cores to decoding, which suits small models)',
    })
    .option('device', { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model runs' })
    .option('batch', {
      type: 'number',
      default: 8,
      alias: ['batch-size', 'batch_size'],
      describe: `Images per model run (1–${MAX_BATCH})`,
    });
}

/** The largest --batch of a model run. */
export const MAX_BATCH = 4096;

/** --batch, checked. */
export const batchOf = (argv: { batch: number }): number => checkInteger('--batch', argv.batch, 1, MAX_BATCH);

export interface ModelArgs {
  tags?: string;
  preset: string;
  contract?: string;
  channels?: string;
  scale?: number;
  padColor?: string;
  threads?: number;
  device: string;
  batch: number;
}

export function loadOptionsFrom(argv: ModelArgs, io: Io, extra: Partial<LoadOptions> = {}): LoadOptions {
  return {
    executionProviders: executionProviders(checkChoice('--device', argv.device, DEVICES) as Device),
    ...extra,
    threads: checkInteger('--threads', argv.threads ?? 0, 0, 1024),
    tags: argv.tags,
    preset: checkChoice('--preset', argv.preset, ['auto', ...PRESET_NAMES]),
    contract: argv.contract,
    overrides: {
      channels: argv.channels === undefined ? undefined : checkChoice('--channels', argv.channels, CHANNEL_ORDERS),
      scale: argv.scale,
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
