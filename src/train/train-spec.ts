// `train`'s options declared once: type, default, range and help of each (src/util/option-spec.ts), from
// which the CLI's yargs options and the parsed arguments' type come, and against which every value is
// checked before a run opens.
import { DEVICES } from '../runtime/providers.js';
import type { OptionSpec } from '../util/option-spec.js';
import { ENGINES } from './engines.js';
import { PRECISIONS } from './run-config.js';
import { BEST_BY } from './checkpoint.js';

export const TRAIN_OPTIONS = {
  out: {
    type: 'string',
    required: true,
    describe: 'Run folder: config, artifacts, checkpoints, log.jsonl, curves.svg',
  },
  backbone: {
    type: 'string',
    default: 'vgg16',
    describe: 'vgg16 (random init), vgg16-tiny, or an ONNX VGG16 file with pretrained weights',
  },
  rounds: {
    type: 'number',
    default: 500,
    range: [1, 1e7],
    integer: true,
    describe: 'Rounds: one epoch over one shard each',
  },
  batch: { type: 'number', default: 32, range: [2, 4096], integer: true, describe: 'Images per step' },
  best: {
    type: 'string',
    choices: BEST_BY,
    default: 'map',
    describe:
      "The holdout metric that picks the best round (export's checkpoint, --patience): map, or loss (steadier with few holdout positives; teach's)",
  },
  'pos-weight': {
    type: 'string',
    choices: ['none', 'auto'],
    default: 'none',
    describe:
      "Weight each tag's positives in the loss: none, or auto (its negatives / positives in the training shards, 1 to 100)",
  },
  patience: {
    type: 'number',
    default: 0,
    range: [0, 1e7],
    integer: true,
    describe: 'Stop early when the holdout mAP has not improved for this many rounds (0: train every round)',
  },
  lr: { type: 'number', default: 0.001, range: [1e-12, 10], describe: 'Adam learning rate' },
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model trains' },
  precision: {
    type: 'string',
    choices: PRECISIONS,
    describe:
      "fp32 (a new run's default; --resume keeps the run's own); tf32 on CUDA (tensor cores, ~1e-3 relative error per product); fp16 (convolutions and GEMMs in float16, dynamic loss scaling; for CUDA, slow on the CPU); bf16 is refused (no CUDA bfloat16 kernels)",
  },
  seed: {
    type: 'number',
    default: 1,
    range: [0, 2 ** 31 - 1],
    integer: true,
    describe: 'Seed of init, shard order, batch order, dropout',
  },
  resume: { type: 'boolean', default: false, describe: 'Continue the run in --out from its last checkpoint' },
  hidden: {
    type: 'number',
    default: 5000,
    range: [0, 1e6],
    integer: true,
    describe: "Width of the hidden dense layer (0: none, one linear layer; for a head over a tagger's embedding only)",
  },
  freeze: {
    type: 'number',
    range: [0, 13],
    integer: true,
    describe: 'Convs frozen from the bottom [default: 8, 0 for vgg16-tiny]',
  },
  keep: {
    type: 'number',
    default: 3,
    range: [1, 1e6],
    integer: true,
    describe: 'Finished-round checkpoints kept (the best is always kept)',
  },
  'checkpoint-every': {
    type: 'number',
    default: 1,
    range: [1, 1e7],
    integer: true,
    describe: 'Finished rounds between checkpoints (the last round and Ctrl-C always write one)',
  },
  'log-every': {
    type: 'number',
    default: 10,
    range: [1, 1e9],
    integer: true,
    describe: 'Steps between log.jsonl lines',
  },
  threads: {
    type: 'number',
    default: 0,
    range: [0, 1024],
    integer: true,
    describe: 'Threads per op (0 = one per core)',
  },
  verify: {
    type: 'boolean',
    default: true,
    describe: 'Check each shard and checkpoint against its SHA-256 when read (--no-verify skips it)',
  },
  engine: {
    type: 'string',
    choices: ENGINES,
    default: 'auto',
    describe: 'native (the C++ addon, CPU or CUDA), ort (onnxruntime-node, CPU), auto (native when built)',
  },
} as const satisfies Record<string, OptionSpec>;
