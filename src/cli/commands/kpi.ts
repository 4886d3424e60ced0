// `kpi fit VEC.npy --target TARGETS.csv --out kpi.json` and `kpi pred IMAGE… --model M --kpi kpi.json`:
// a KPI (click-through rate, likes, sales) predicted from illustration vectors (src/kpi/).
import { stringify } from 'csv-stringify/sync';
import type { Argv } from 'yargs';
import { defineCommand, yargsOptions, type Command, type Ctx } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { batchOf, loadOptionsFrom, withModelOptions, type ModelArgs, IMAGES_ARG } from '../model-options.js';
import { fitKpiFile, predictKpiFiles, readKpiFile, writeKpiFile } from '../../kpi/kpi.js';
import { KPI_KINDS } from '../../kpi/fit.js';
import { TaggerModel } from '../../model/tagger.js';

const FORMATS = ['text', 'json', 'csv'] as const;

export const KPI_FIT_OPTIONS = {
  target: { type: 'string', required: true, describe: 'TARGETS.csv with file,value rows (paths relative to the CSV)' },
  out: { type: 'string', required: true, describe: 'kpi.json to write' },
  kind: {
    type: 'string',
    choices: KPI_KINDS,
    default: 'linear',
    describe: 'linear (a value) or logistic (0/1 outcomes)',
  },
  folds: { type: 'number', default: 5, range: [2, 100], integer: true, describe: 'Cross-validation folds' },
} as const satisfies Specs;

export const KPI_PRED_OPTIONS = {
  kpi: { type: 'string', required: true, describe: 'kpi.json written by `kpi fit`' },
  format: { type: 'string', choices: FORMATS, default: 'text', describe: 'text, json or csv' },
} as const satisfies Specs;

function fitCommand({ io }: Ctx): ReturnType<typeof defineCommand> {
  return defineCommand({
    command: 'fit <vec>',
    describe: 'Fit a KPI on `vec` vectors: ridge (linear) or logistic regression, strength chosen by k-fold CV',
    builder: (y) =>
      y
        .positional('vec', {
          type: 'string',
          demandOption: true,
          describe: '.npy written by `vec --out` (probs, features or binary)',
        })
        .options(yargsOptions(KPI_FIT_OPTIONS)),
    handler: async (argv: ArgsOf<typeof KPI_FIT_OPTIONS> & { vec: string }) => {
      const { kind, folds } = checkedOptions(KPI_FIT_OPTIONS, argv);
      const r = await fitKpiFile(argv.vec, argv.target, kind, folds);
      if (r.withoutTarget > 0) io.err(`kpi: ${r.withoutTarget} vectors have no target and were left out`);
      if (r.targetsWithoutRow.length > 0)
        io.err(
          `warning: ${r.targetsWithoutRow.length} targets have no vector in ${argv.vec}, e.g. ${r.targetsWithoutRow.slice(0, 3).join(', ')}`,
        );
      await writeKpiFile(argv.out, r.kpi);
      const cv = r.kpi.cv;
      io.out(
        kind === 'linear'
          ? `R² ${cv.r2!.toFixed(2)} (${folds}-fold CV; mean predictor ${cv.baseline.toFixed(2)}) on ${r.used} images`
          : `AUC ${cv.auc!.toFixed(2)}, log-loss ${cv.logLoss!.toFixed(2)} (${folds}-fold CV; base rate ${cv.baseline.toFixed(2)}, its log-loss ${cv.baselineLogLoss!.toFixed(2)}) on ${r.used} images`,
      );
      const fmt = (xs: [string, number][]): string =>
        xs.map(([n, w]) => `${n} ${w >= 0 ? '+' : ''}${w.toFixed(3)}`).join(', ') || '(none)';
      io.out(`raises it: ${fmt(r.top.positive)}`);
      io.out(`lowers it: ${fmt(r.top.negative)}`);
      io.out(`wrote ${argv.out} (λ = ${cv.lambda} × images, weights per standard deviation of each feature)`);
    },
  });
}

function predCommand({ io }: Ctx): ReturnType<typeof defineCommand> {
  return defineCommand({
    command: 'pred <images..>',
    describe: 'Predict a fitted KPI for images, folders or `-`',
    builder: (y) => withModelOptions(y.positional('images', IMAGES_ARG)).options(yargsOptions(KPI_PRED_OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof KPI_PRED_OPTIONS> & { images: string[]; model: string }) => {
      const { format } = checkedOptions(KPI_PRED_OPTIONS, argv);
      const batch = batchOf(argv);
      const load = loadOptionsFrom(argv, io);
      const kpi = await readKpiFile(argv.kpi);
      const model = await TaggerModel.load(argv.model, load);
      let failed = 0;
      let rows: { file: string; value: number }[];
      try {
        rows = await predictKpiFiles(model, kpi, argv.kpi, argv.images, batch, (file, reason) => {
          failed++;
          io.err(`warning: ${file}: skipped, ${reason}`);
        });
      } finally {
        await model.release();
      }
      const key = kpi.fit.kind === 'logistic' ? 'probability' : 'value';
      if (format === 'json')
        io.out(
          JSON.stringify(
            rows.map((r) => ({ file: r.file, [key]: r.value })),
            null,
            1,
          ),
        );
      else if (format === 'csv')
        io.out(
          stringify(
            rows.map((r) => [r.file, r.value]),
            { header: true, columns: ['file', key] },
          ).trimEnd(),
        );
      else for (const r of rows) io.out(`${r.file}\t${r.value.toFixed(4)}`);
      if (failed > 0) throw new Error(`${failed} images could not be read (warnings above); the others were scored`);
    },
  });
}

export const kpiCommand: Command = (ctx) =>
  defineCommand({
    command: 'kpi',
    describe: 'Predict a KPI (clicks, likes, sales) from illustration vectors: kpi fit, kpi pred',
    builder: (y: Argv) =>
      y.command(fitCommand(ctx)).command(predCommand(ctx)).demandCommand(1, 'Expected kpi fit or kpi pred'),
    handler: async () => undefined,
  });
