// `quantize MODEL --out FILE [--images DIR ...] [--mode auto|dynamic|static] [--calibrate 256]
// [--min-agreement 0.95]`: a tagger with its layers in int8 (src/quantize/), checked on the user's
// images when given.
import { defineCommand, type Command } from '../command.js';
import { batchOf, IMAGES_ARG, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { checkChoice, checkInteger, checkNumber } from '../../util/errors.js';
import { selectOptionsFrom } from '../../select/options.js';
import { predDefaults, type PredArgs } from '../../select/pred-spec.js';
import { listImageEntries } from '../../predict/inputs.js';
import { HEAD_CHECK_F1, HEAD_MODES, MODES, quantizeModel, type QuantizeResult } from '../../quantize/quantize.js';

export const quantizeCommand: Command = ({ io }) =>
  defineCommand({
    command: 'quantize <model>',
    describe: "A tagger's layers in int8 (dynamic, or static calibrated on your images), checked on your images",
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
        .option('mode', {
          type: 'string',
          choices: MODES,
          default: 'auto',
          describe:
            'dynamic: MatMul/Gemm, activations quantized at run time; static: Conv too, activations calibrated on --images; auto: static where convolutions hold half the work or more (with --images), else dynamic',
        })
        .option('calibrate', {
          type: 'number',
          default: 256,
          describe: 'Images of --images that --mode static calibrates on (the first N)',
        })
        .option('head', {
          type: 'string',
          choices: HEAD_MODES,
          default: 'auto',
          describe: `The last layer (the head): int8, float, or auto: float when, with --images, int8 tags agree under F1 ${HEAD_CHECK_F1} and agree better with it float`,
        })
        .option('threshold', { type: 'number', describe: "Tag threshold for the check [default: the model's]" }),
    handler: async (
      argv: ModelArgs & {
        model: string;
        out: string;
        images?: string[];
        minAgreement: number;
        mode: string;
        calibrate: number;
        head: string;
        threshold?: number;
        batch: number;
      },
    ) => {
      const minAgreement = checkNumber('--min-agreement', argv.minAgreement, 0, 1);
      const batch = batchOf(argv);
      const mode = checkChoice('--mode', argv.mode, MODES);
      const calibrate = checkInteger('--calibrate', argv.calibrate, 1, 1_000_000);
      const head = checkChoice('--head', argv.head, HEAD_MODES);
      const entries = [];
      for await (const e of listImageEntries(argv.images ?? [])) entries.push(e);
      const args: PredArgs = { ...predDefaults(), threshold: argv.threshold };
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
      for (const line of report(r)) io.out(line);
    },
  });

/** What `quantize` prints: the file and its layers, the tags file copied, the mode, the agreement. */
function report(r: QuantizeResult): string[] {
  const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
  const layers = [...new Map(r.layers.map((l) => [l.weight, l])).values()]; // a tiled MLP's nodes share their weights
  const ops = ['MatMul', 'Gemm', 'Conv']
    .map((op) => [op, layers.filter((l) => l.op === op).length] as const)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} ${op}`);
  const lines = [
    `wrote ${r.file}: ${layers.length} layers in int8 (${ops.join(', ')}), ${mb(r.bytesBefore)} → ${mb(r.bytesAfter)}`,
  ];
  if (r.tagsCopied) lines.push(`copied the tags file beside it: ${r.tagsCopied}`);
  lines.push(
    r.mode === 'static'
      ? `mode static: activations at ranges calibrated on ${r.calibrated} images${r.why ? ` (${r.why})` : ''}`
      : `mode dynamic: activations quantized at run time${r.why ? ` (${r.why})` : ''}`,
  );
  const n = r.norms;
  if (n.count > 0)
    lines.push(
      `${n.count} layer norm${n.count === 1 ? '' : 's'} as instance norms (ONNX Runtime's vectorized kernel), γ and β of ${n.folded} folded into the layers after them`,
    );
  if (r.residuals > 0)
    lines.push(
      `${r.residuals} residual add${r.residuals === 1 ? '' : 's'} in their branch's layout (a Transpose fewer each)`,
    );
  if (r.tiled > 0)
    lines.push(
      `${r.tiled} MLP${r.tiled === 1 ? '' : 's'} a tile of rows at a time (their hidden activations stay in cache)`,
    );
  const h = r.head;
  const tried = h.tried ? ` (F1 ${h.tried.int8.toFixed(4)} with it in int8, ${h.tried.float.toFixed(4)} float)` : '';
  lines.push(`head ${h.layer.node} (${h.layer.op} ${h.layer.k} × ${h.layer.n}): ${h.float ? 'float' : 'int8'}${tried}`);
  const a = r.agreement;
  lines.push(
    a
      ? `agreement on ${a.images} images: F1 ${a.f1.toFixed(4)} of int8 tags against float tags, +${a.addedPerImage.toFixed(2)} / −${a.droppedPerImage.toFixed(2)} tags per image, |Δp| max ${a.maxDelta.toFixed(4)} mean ${a.meanDelta.toFixed(5)}${a.unreadable.length ? `; ${a.unreadable.length} images unreadable` : ''}`
      : 'not checked on images: give --images DIR to compare int8 and float tags before keeping it',
  );
  return lines;
}
