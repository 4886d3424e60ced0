// `export RUN --out model.onnx [--checkpoint FILE]`: the self-contained inference model of a run.
import { defineCommand, type Command } from '../command.js';
import { exportModel } from '../../train/export.js';

export const exportCommand: Command = ({ io }) =>
  defineCommand({
    command: 'export <run>',
    describe: 'Write the inference model (uint8 image → probs, features) from the best or a named checkpoint',
    builder: (y) =>
      y
        .positional('run', { type: 'string', demandOption: true, describe: 'Run folder made by `train`' })
        .option('out', { type: 'string', demandOption: true, describe: 'ONNX file to write' })
        .option('checkpoint', { type: 'string', describe: 'Checkpoint file [default: the best by holdout mAP]' }),
    handler: async (argv: { run: string; out: string; checkpoint?: string }) => {
      const r = await exportModel(argv.run, argv.out, argv.checkpoint);
      const map = r.checkpoint.metrics ? `, holdout mAP ${r.checkpoint.metrics.map.toFixed(4)}` : '';
      io.out(`wrote ${argv.out} (${(r.bytes / 2 ** 20).toFixed(1)} MiB) from ${r.checkpoint.file} (round ${r.checkpoint.round}${map})`);
      io.out(`next: alt-i2v-ort pred IMAGES_OR_FOLDER --model ${argv.out}`);
    },
  });
