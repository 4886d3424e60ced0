// `train SHARDS --out RUN`: rounds over shards with a checkpoint per round (src/train/run.ts).
// Ctrl-C (SIGINT) or SIGTERM: finish the step, write a checkpoint, exit 130; a second Ctrl-C aborts.
import type { Options } from 'yargs';
import { defineCommand, type Args, type Command } from '../command.js';
import { checkChoice, checkInteger, checkNumber, InterruptedError } from '../../util/errors.js';
import { DEVICES } from '../../runtime/providers.js';
import { trainRun } from '../../train/run.js';
import { PRECISIONS, trainPrecision } from '../../train/run-config.js';
import { ENGINES } from '../../train/engines.js';
import { setIntegrityCheck } from '../../data/safetensors.js';
import type { Io } from '../io.js';
import { roundProgress } from '../train-progress.js';

const OPTIONS = {
  out: {
    type: 'string',
    demandOption: true,
    describe: 'Run folder: config, artifacts, checkpoints, log.jsonl, curves.svg',
  },
  backbone: {
    type: 'string',
    default: 'vgg16',
    describe: 'vgg16 (random init), vgg16-tiny, or an ONNX VGG16 file with pretrained weights',
  },
  rounds: { type: 'number', default: 500, describe: 'Rounds: one epoch over one shard each' },
  batch: { type: 'number', default: 32, describe: 'Images per step' },
  lr: { type: 'number', default: 0.001, describe: 'Adam learning rate' },
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model trains' },
  precision: {
    type: 'string',
    choices: PRECISIONS,
    default: 'fp32',
    describe:
      'fp32; tf32 on CUDA (tensor cores, ~1e-3 relative error per product); fp16 (convolutions and GEMMs in float16, dynamic loss scaling; for CUDA, slow on the CPU); bf16 is refused (no CUDA bfloat16 kernels)',
  },
  seed: { type: 'number', default: 1, describe: 'Seed of init, shard order, batch order, dropout' },
  resume: { type: 'boolean', default: false, describe: 'Continue the run in --out from its last checkpoint' },
  hidden: { type: 'number', default: 5000, describe: 'Width of the hidden dense layer' },
  freeze: { type: 'number', describe: 'Convs frozen from the bottom [default: 8, 0 for vgg16-tiny]' },
  keep: { type: 'number', default: 3, describe: 'Finished-round checkpoints kept (the best is always kept)' },
  'checkpoint-every': {
    type: 'number',
    default: 1,
    describe: 'Finished rounds between checkpoints (the last round and Ctrl-C always write one)',
  },
  'log-every': { type: 'number', default: 10, describe: 'Steps between log.jsonl lines' },
  threads: { type: 'number', default: 0, describe: 'Threads per op (0 = one per core)' },
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
} as const satisfies Record<string, Options>;

export const trainCommand: Command = ({ io }) =>
  defineCommand({
    command: 'train <shards>',
    describe: 'Train the tagger over shards, one checkpoint per round (resumable)',
    builder: (y) =>
      y
        .positional('shards', { type: 'string', demandOption: true, describe: 'Shards folder made by `pairs`' })
        .options(OPTIONS),
    handler: (argv: RunTrainArgs) => runTrain(io, argv),
  });

type RunTrainArgs = Args<typeof OPTIONS> & { shards: string };

async function runTrain(io: Io, argv: RunTrainArgs): Promise<void> {
  setIntegrityCheck(argv.verify);
  const opts = {
    shards: argv.shards,
    out: argv.out,
    backbone: argv.backbone,
    rounds: checkInteger('--rounds', argv.rounds, 1, 1e7),
    batch: checkInteger('--batch', argv.batch, 2, 4096),
    lr: checkNumber('--lr', argv.lr, 1e-12, 10),
    device: checkChoice('--device', argv.device, DEVICES),
    seed: checkInteger('--seed', argv.seed, 0, 2 ** 31 - 1),
    resume: argv.resume,
    hidden: checkInteger('--hidden', argv.hidden, 1, 1e6),
    freeze: argv.freeze === undefined ? undefined : checkInteger('--freeze', argv.freeze, 0, 13),
    keep: checkInteger('--keep', argv.keep, 1, 1e6),
    checkpointEvery: checkInteger('--checkpoint-every', argv.checkpointEvery, 1, 1e7),
    logEvery: checkInteger('--log-every', argv.logEvery, 1, 1e9),
    threads: checkInteger('--threads', argv.threads, 0, 1024),
    engine: checkChoice('--engine', argv.engine, ENGINES),
    precision: trainPrecision(
      checkChoice('--precision', argv.precision, PRECISIONS),
      checkChoice('--device', argv.device, DEVICES),
    ),
  };
  let stop = false;
  const onSignal = (): void => {
    if (stop) process.exit(130);
    stop = true;
    io.err('train: stopping after this step and writing a checkpoint (Ctrl-C again to abort at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = roundProgress(io, opts.rounds);
  try {
    const result = await trainRun(opts, {
      info: progress.log,
      warn: progress.log,
      ...progress.hooks,
      stopRequested: () => stop,
    });
    progress.stop();
    if (result.status === 'interrupted') {
      throw new InterruptedError(
        `interrupted: state saved in ${result.last.file}; continue with \`alt-i2v-ort train ${argv.shards} --out ${argv.out} --resume --rounds ${opts.rounds}\``,
      );
    }
    io.out(
      `done: ${opts.rounds} rounds; last checkpoint ${result.last.file}${result.best ? `; best ${result.best.file} (holdout mAP ${result.best.metrics!.map.toFixed(4)})` : ''}`,
    );
    io.out(`next: alt-i2v-ort export ${argv.out} --out model.onnx`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
