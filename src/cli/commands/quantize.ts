// `quantize MODEL --out FILE [--images DIR ...] [--min-agreement 0.95]`: a tagger with its MatMul and
// Gemm layers in int8 (src/quantize/), checked on the user's images when given.
import { defineCommand, type Command } from '../command.js';
import { IMAGES_ARG, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { checkInteger, checkNumber } from '../../util/errors.js';
import { selectOptionsFrom, type PredArgs } from '../../predict/options.js';
import { listImageEntries } from '../../predict/inputs.js';
import { quantizeModel } from '../../quantize/quantize.js';

export const quantizeCommand: Command = ({ io }) =>
  defineCommand({
    command: 'quantize <model>',
    describe: "A tagger's MatMul and Gemm layers in int8 (dynamic activations), checked on your images",
    builder: (y) =>
      withModelOptions(y, false)
        .positional('model', { type: 'string', demandOption: true, describe: 'The float model (a file or hf:…)' })
        .option('out', { type: 'string', demandOption: true, describe: 'The int8 model to write' })
        .option('images', { ...IMAGES_ARG, demandOption: false, describe: 'Images to compare int8 and float on' })
        .option('min-agreement', {
          type: 'number',
          default: 0.95,
          describe: 'Least F1 of int8 tags against float tags on --images; below it nothing is written',
        })
        .option('threshold', { type: 'number', describe: "Tag threshold for the check [default: the model's]" })
        .option('batch', { type: 'number', default: 8 }),
    handler: async (
      argv: ModelArgs & {
        model: string;
        out: string;
        images?: string[];
        minAgreement: number;
        threshold?: number;
        batch: number;
      },
    ) => {
      const minAgreement = checkNumber('--min-agreement', argv.minAgreement, 0, 1);
      const batch = checkInteger('--batch', argv.batch, 1, 4096);
      const entries = [];
      for await (const e of listImageEntries(argv.images ?? [])) entries.push(e);
      const args = { threshold: argv.threshold, rating: 'top' } as PredArgs;
      const r = await quantizeModel({
        model: argv.model,
        out: argv.out,
        load: loadOptionsFrom(argv, io),
        minAgreement,
        check: argv.images
          ? {
              entries,
              batch,
              // pred's selection; our own models report a top 30 without a threshold: 0.5 decides here.
              select: async (m) => {
                const s = await selectOptionsFrom(args, m, (l) => io.err(`warning: ${l}`));
                return s.threshold === undefined && !s.categoryThresholds?.size && !s.mcut
                  ? { ...s, threshold: 0.5, top: undefined }
                  : s;
              },
            }
          : undefined,
      });
      const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
      io.out(
        `wrote ${r.file}: ${r.layers.length} MatMul/Gemm layers in int8, ${mb(r.bytesBefore)} → ${mb(r.bytesAfter)}`,
      );
      if (r.tagsCopied) io.out(`copied the tags file beside it: ${r.tagsCopied}`);
      const a = r.agreement;
      if (a)
        io.out(
          `agreement on ${a.images} images: F1 ${a.f1.toFixed(4)} of int8 tags against float tags, +${a.addedPerImage.toFixed(2)} / −${a.droppedPerImage.toFixed(2)} tags per image, |Δp| max ${a.maxDelta.toFixed(4)} mean ${a.meanDelta.toFixed(5)}${a.unreadable.length ? `; ${a.unreadable.length} images unreadable` : ''}`,
        );
      else io.out('not checked on images: give --images DIR to compare int8 and float tags before keeping it');
    },
  });
