// `train SHARDS --out RUN`: rounds over shards with a checkpoint per round (src/train/run.ts).
// Ctrl-C (SIGINT) or SIGTERM: finish the step, write a checkpoint, exit 130; a second Ctrl-C aborts.
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { InterruptedError } from '../../util/errors.js';
import { checkedOptions, type ArgsOf } from '../../util/option-spec.js';
import { TRAIN_OPTIONS } from '../../train/train-spec.js';
import { trainRun } from '../../train/run.js';
import { trainPrecision } from '../../train/run-config.js';
import { setIntegrityCheck } from '../../data/safetensors.js';
import type { Io } from '../io.js';
import { roundProgress } from '../train-progress.js';

export const trainCommand: Command = ({ io }) =>
  defineCommand({
    command: 'train <shards>',
    describe: 'Train the tagger over shards, one checkpoint per round (resumable)',
    builder: (y) =>
      y
        .positional('shards', { type: 'string', demandOption: true, describe: 'Shards folder made by `pairs`' })
        .options(yargsOptions(TRAIN_OPTIONS)),
    handler: (argv: RunTrainArgs) => runTrain(io, argv),
  });

type RunTrainArgs = ArgsOf<typeof TRAIN_OPTIONS> & { shards: string };

async function runTrain(io: Io, argv: RunTrainArgs): Promise<void> {
  setIntegrityCheck(argv.verify);
  const { verify: _, ...args } = checkedOptions(TRAIN_OPTIONS, argv);
  const precision = args.precision === undefined ? undefined : trainPrecision(args.precision, args.device);
  const opts = { ...args, shards: argv.shards, precision };
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
      `done: ${result.last.round === opts.rounds ? `${opts.rounds} rounds` : `round ${result.last.round} of ${opts.rounds} (stopped early)`}; last checkpoint ${result.last.file}${result.best ? `; best ${result.best.file} (holdout mAP ${result.best.metrics!.map.toFixed(4)})` : ''}`,
    );
    io.out(`next: alt-i2v-ort export ${argv.out} --out model.onnx`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
