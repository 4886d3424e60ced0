// `quantize MODEL --out FILE [--images DIR ...] [--mode auto|dynamic|static] [--calibrate 256]
// [--min-agreement 0.95]`: a tagger with its layers in int8 (src/quantize/), checked on the user's
// images when given.
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { batchOf, IMAGES_ARG, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { listImageEntries } from '../../predict/inputs.js';
import { HEAD_CHECK_F1, HEAD_MODES, MODES, quantizeModel } from '../../quantize/quantize.js';
import { checkSelection } from '../../quantize/agreement.js';
import { quantizeReport } from '../../quantize/report.js';

export const OPTIONS = {
  out: { type: 'string', required: true, describe: 'The int8 model to write' },
  'min-agreement': {
    type: 'number',
    default: 0.95,
    range: [0, 1],
    describe: 'Least F1 of int8 tags against float tags on --images; below it nothing is written',
  },
  mode: {
    type: 'string',
    choices: MODES,
    default: 'auto',
    describe:
      'dynamic: MatMul/Gemm, activations quantized at run time; static: Conv too, activations calibrated on --images; auto: static where convolutions hold half the work or more (with --images), else dynamic',
  },
  calibrate: {
    type: 'number',
    default: 256,
    range: [1, 1_000_000],
    integer: true,
    describe: 'Images of --images that --mode static calibrates on (the first N)',
  },
  head: {
    type: 'string',
    choices: HEAD_MODES,
    default: 'auto',
    describe: `The last layer (the head): int8, float, or auto: float when, with --images, int8 tags agree under F1 ${HEAD_CHECK_F1} and agree better with it float`,
  },
  threshold: { type: 'number', range: [0, 1], describe: "Tag threshold for the check [default: the model's]" },
} as const satisfies Specs;

export const quantizeCommand: Command = ({ io }) =>
  defineCommand({
    command: 'quantize <model>',
    describe: "A tagger's layers in int8 (dynamic, or static calibrated on your images), checked on your images",
    builder: (y) =>
      withModelOptions(y, false)
        .positional('model', { type: 'string', demandOption: true, describe: 'The float model (a file or hf:…)' })
        .option('images', { ...IMAGES_ARG, demandOption: false, describe: 'Images to compare int8 and float on' })
        .options(yargsOptions(OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof OPTIONS> & { model: string; images?: string[] }) => {
      const { minAgreement, mode, calibrate, head } = checkedOptions(OPTIONS, argv);
      const batch = batchOf(argv);
      const entries = [];
      for await (const e of listImageEntries(argv.images ?? [])) entries.push(e);
      const r = await quantizeModel({
        model: argv.model,
        out: argv.out,
        load: loadOptionsFrom(argv, io),
        minAgreement,
        mode,
        calibrate,
        head,
        check: argv.images
          ? {
              entries,
              batch,
              select: (m) => checkSelection(m, argv.threshold, (l) => io.err(`warning: ${l}`)),
            }
          : undefined,
      });
      for (const line of quantizeReport(r)) io.out(line);
    },
  });
