// The options every command that loads a tagger model shares (pred, vec, similar, eval, serve): the
// model, and for a foreign tagger its tags file, preset and input overrides.
import type { Argv } from 'yargs';
import { PAD_COLORS } from '../data/images.js';
import { CHANNEL_ORDERS, PRESETS } from '../predict/contract.js';
import type { LoadOptions } from '../predict/model.js';
import { checkChoice, checkInteger } from '../util/errors.js';
import type { Io } from './io.js';

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
      describe: 'Model: exported by `export`, or a WD / DeepDanbooru ONNX tagger (with --tags)',
    })
    .option('tags', {
      type: 'string',
      describe: 'Tags of a WD or DeepDanbooru model: selected_tags.csv, or tags.txt with one tag per line',
    })
    .option('preset', {
      type: 'string',
      choices: PRESETS,
      default: 'auto',
      describe: 'Input contract of a foreign model: wd (BGR 0–255, white padding), deepdanbooru (RGB 0–1), auto',
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
      choices: PAD_COLORS,
      describe: 'Override: letterbox and alpha colour of a foreign model',
    })
    .option('threads', {
      type: 'number',
      default: 0,
      describe:
        'Threads the model runs on (0 = one per core; 1 leaves the other cores to decoding, which suits small models)',
    });
}

export interface ModelArgs {
  tags?: string;
  preset: string;
  channels?: string;
  scale?: number;
  padColor?: string;
  threads?: number;
}

export function loadOptionsFrom(argv: ModelArgs, io: Io, extra: Partial<LoadOptions> = {}): LoadOptions {
  return {
    ...extra,
    threads: checkInteger('--threads', argv.threads ?? 0, 0, 1024),
    tags: argv.tags,
    preset: checkChoice('--preset', argv.preset, PRESETS),
    overrides: {
      channels: argv.channels === undefined ? undefined : checkChoice('--channels', argv.channels, CHANNEL_ORDERS),
      scale: argv.scale,
      padColor: argv.padColor === undefined ? undefined : checkChoice('--pad-color', argv.padColor, PAD_COLORS),
    },
    onChoice: (line) => io.err(line),
  };
}
