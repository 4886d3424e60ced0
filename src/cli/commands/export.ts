// `export RUN --out model.onnx [--checkpoint FILE] [--int8 [--calibrate N] [--shards DIR] | --fp16]`: the self-contained inference model of a run.
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { startProgress, type Progress } from '../io.js';
import { UsageError } from '../../util/errors.js';
import { DEFAULT_CALIBRATION_IMAGES, exportModel } from '../../train/export.js';
import { readRunConfig, type RunConfig } from '../../train/run-config.js';
import { exportTaught } from '../../teach/export-taught.js';
import type { Io } from '../io.js';

type CheckedExport = ReturnType<typeof checkedOptions<typeof OPTIONS>>;

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'ONNX file to write' },
  checkpoint: { type: 'string', describe: 'Checkpoint file [default: the best by holdout mAP]' },
  int8: {
    type: 'boolean',
    default: false,
    describe:
      'Write an int8 model (QDQ, per-channel int8 weights): about 4× smaller and, on CPUs with VNNI, about 3× faster',
  },
  fp16: {
    type: 'boolean',
    default: false,
    describe:
      'Write a float16 model for GPUs (--device cuda): convolutions and GEMMs in float16; on a CPU it is much slower than fp32',
  },
  calibrate: {
    type: 'number',
    range: [1, 1_000_000],
    integer: true,
    describe: `Images of the training shards to calibrate int8 activations on [default: ${DEFAULT_CALIBRATION_IMAGES}]`,
  },
  shards: { type: 'string', describe: 'Shards folder to calibrate on [default: the one the run was trained on]' },
  'only-new': {
    type: 'boolean',
    default: false,
    describe: "A head taught over a tagger (pairs --backbone): the new tags' outputs alone, without the base's",
  },
  base: {
    type: 'string',
    describe: 'A head taught over a tagger: the base model, where it is no longer where the shards recorded it',
  },
  keep: {
    type: 'list',
    describe:
      'A head taught over a tagger: only these taught tags (comma-separated, repeatable); a relearned tag left out keeps the base output [default: all]',
  },
} as const satisfies Specs;

export const exportCommand: Command = ({ io }) =>
  defineCommand({
    command: 'export <run>',
    describe: 'Write the inference model (uint8 image → probs, features) from the best or a named checkpoint',
    builder: (y) =>
      y
        .positional('run', { type: 'string', demandOption: true, describe: 'Run folder made by `train`' })
        .options(yargsOptions(OPTIONS))
        .check((a) => {
          if ((a.calibrate !== undefined || a.shards !== undefined) && !a.int8)
            throw new UsageError('Expected --int8 with --calibrate or --shards: they only apply to the int8 model');
          if (a.int8 && a.fp16)
            throw new UsageError('Expected --int8 or --fp16, not both: a model is one or the other');
          return true;
        }),
    handler: async (argv: ArgsOf<typeof OPTIONS> & { run: string }) => {
      const o = checkedOptions(OPTIONS, argv);
      const run = await readRunConfig(argv.run);
      if (run.base) return exportTaughtRun(io, argv.run, run, o);
      if (o.onlyNew || o.base || o.keep)
        throw new UsageError(
          `Expected --only-new, --base and --keep only for a head taught over a tagger, but ${JSON.stringify(argv.run)} trains the VGG16 model`,
        );
      let progress: Progress | undefined;
      const onProgress = (done: number, total: number): void =>
        (progress ??= startProgress(io, 'calibrating', total)).update(done);
      const r = await exportModel(argv.run, o.out, { ...o, onProgress });
      progress?.stop();
      const map = r.checkpoint.metrics ? `, holdout mAP ${r.checkpoint.metrics.map.toFixed(4)}` : '';
      const kind = r.calibrated
        ? `int8 model calibrated on ${r.calibrated} training images, `
        : argv.fp16
          ? 'float16 model for GPUs, '
          : '';
      io.out(
        `wrote ${argv.out} (${kind}${(r.bytes / 2 ** 20).toFixed(1)} MiB) from ${r.checkpoint.file} (round ${r.checkpoint.round}${map})`,
      );
      io.out(`next: alt-i2v-ort pred IMAGES_OR_FOLDER --model ${argv.out}`);
    },
  });

async function exportTaughtRun(io: Io, runDir: string, run: RunConfig, o: CheckedExport): Promise<void> {
  if (o.int8 || o.fp16)
    throw new UsageError(
      `Expected no --int8 or --fp16 for ${JSON.stringify(runDir)}, a head taught over a tagger: export it, then \`alt-i2v-ort quantize\` the merged model`,
    );
  const r = await exportTaught(runDir, run, o.out, {
    checkpoint: o.checkpoint,
    onlyNew: o.onlyNew,
    base: o.base,
    keep:
      o.keep === undefined
        ? undefined
        : ([] as string[])
            .concat(o.keep)
            .flatMap((t) => t.split(','))
            .map((t) => t.trim())
            .filter(Boolean),
    onNote: (l) => io.err(l),
  });
  const map = r.checkpoint.metrics ? `, holdout mAP ${r.checkpoint.metrics.map.toFixed(4)}` : '';
  io.out(
    `wrote ${o.out} (${(r.bytes / 2 ** 20).toFixed(1)} MiB: ${run.base!.model} with ${r.taught.length} taught tags, ${r.tags} outputs) and its tags to ${r.tagsFile}, from ${r.checkpoint.file} (round ${r.checkpoint.round}${map})`,
  );
  if (r.thresholdsFile) io.out(`per-tag thresholds at the holdout's best F1: ${r.thresholdsFile} (pred --thresholds)`);
  io.out(`next: alt-i2v-ort pred IMAGES_OR_FOLDER --model ${o.out}`);
}
