// `pred IMAGE|DIR|- ... --model model.onnx`: tags for images, the seed's --pred done for collections
// and for the taggers users already have (WD, DeepDanbooru): thresholds per category, MCut, ratings,
// several output formats, captions next to the images edited as sd-scripts does.
import type { Io } from '../io.js';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { batchOf, loadOptionsFrom, withModelOptions, type ModelArgs, IMAGES_ARG } from '../model-options.js';
import { withPredFlags } from '../pred-options.js';
import { FRAME_OPTIONS } from '../../predict/tagging.js';
import { selectOptionsFrom } from '../../select/options.js';
import { PRED_OPTIONS, type PredArgs } from '../../select/pred-spec.js';
import { captionerFrom, captionStyleOf } from '../../captions/style.js';
import { sdScriptsFrequencyLines, sdScriptsModelFiles } from '../../captions/sd-scripts.js';
import { UsageError } from '../../util/errors.js';
import { checkedOptions, checkOption, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { checkOutputFile } from '../../util/fsx.js';
import { TaggerModel } from '../../model/tagger.js';
import { partFrom } from '../../predict/part.js';
import { predictImages } from '../../predict/predict-images.js';
import { checkCaptionExt } from '../../captions/caption-file.js';
import { PRED_FORMATS, predOutput, predRows, writeFrequency } from '../../outputs/pred-output.js';

type Argv = PredArgs & ModelArgs & { images: string[]; model?: string; format: string };

export const OPTIONS = {
  format: {
    type: 'string',
    choices: PRED_FORMATS,
    default: 'text',
    describe: 'Output format; caption writes NAME.txt next to each image',
  },
  ...FRAME_OPTIONS,
} as const satisfies Specs;

export const predCommand: Command = ({ io }) =>
  defineCommand({
    command: 'pred <images..>',
    describe: 'Predict tags for images, folders (recursive) or `-` (paths on stdin)',
    builder: (y) =>
      withPredFlags(withModelOptions(y.positional('images', IMAGES_ARG), false)).options(yargsOptions(OPTIONS)),
    handler: (argv: RunPredArgs) => runPred(io, argv),
  });

type RunPredArgs = ArgsOf<typeof OPTIONS> & Argv;

async function runPred(io: Io, argv: RunPredArgs): Promise<void> {
  const batch = batchOf(argv);
  const { format, frames, framesMerge: merge } = checkedOptions(OPTIONS, argv);
  const parts = checkOption('--parts', PRED_OPTIONS.parts, argv.parts) as number | undefined;
  const { part, from } = partFrom(argv.part, parts);
  if (from) io.err(`pred: part ${part!.index}/${part!.count}: ${from}`);
  if (argv.append && argv.prepend) throw new UsageError('Expected one of --append and --prepend but received both');
  const captionExt = checkCaptionExt(argv.captionExt);
  captionStyleOf(argv);
  if (argv.frequency) await checkOutputFile(argv.frequency, '--frequency');
  const warn = (l: string): void => io.err(l);
  const rows = await predRows(format, argv.out, argv.skipDone, warn);
  const files = modelFiles(argv, warn);
  const t0 = performance.now();
  const tagger = await TaggerModel.load(
    files.model,
    loadOptionsFrom({ ...argv, tags: argv.tags ?? files.tags }, io),
  ).catch(async (err: unknown) => {
    await rows?.close();
    throw err;
  });
  const loaded = performance.now();
  let out: ReturnType<typeof predOutput> | undefined;
  let stats: Awaited<ReturnType<typeof predictImages>>;
  try {
    const captioner = captionerFrom(argv, tagger.tagInfo, (l) => warn(`warning: ${l}`));
    const select =
      captioner.style === 'ours'
        ? await selectOptionsFrom(argv, tagger.tagInfo, (l) => warn(`warning: ${l}`))
        : undefined;
    // sd-scripts looks into subfolders only with --recursive; the other styles always do.
    const recursive = captioner.style !== 'sd-scripts' || argv.recursive === true;
    const sink = predOutput({
      format,
      captioner,
      captionExt,
      allowEmpty: argv.allowEmpty,
      out: (l) => io.out(l),
      err: warn,
      rows,
    });
    out = sink;
    const o = { images: argv.images, recursive, batch, part, frames, merge, select, captioner };
    const skip = argv.skipDone ? (file: string): boolean => sink.isDone(file) : undefined;
    stats = await predictImages(tagger, { ...o, listFirst: out.listFirst, skip }, out, warn);
  } finally {
    await tagger.release();
    await rows?.close();
  }
  out.end();
  if (stats.skipped > 0) io.err(`pred: ${stats.skipped} images already done, left out (--skip-done)`);
  const { done, failed, frequency } = stats;
  if (argv.frequencyTags) for (const line of sdScriptsFrequencyLines(frequency.entries())) io.out(line);
  if (argv.frequency) {
    await writeFrequency(argv.frequency, frequency);
    io.err(`pred: tag frequencies of ${done} images in ${argv.frequency}`);
  }
  const end = performance.now();
  const rate = done / Math.max(1e-3, (end - stats.warmedAt) / 1000);
  io.err(
    `pred: ${done} images in ${((end - loaded) / 1000).toFixed(2)} s, ${rate.toFixed(2)} img/s after warm-up (model loaded in ${((loaded - t0) / 1000).toFixed(2)} s, warmed up in ${stats.warmSeconds.toFixed(2)} s while the first images decoded)`,
  );
  if (failed > 0)
    throw new Error(`${failed} of ${failed + done} images could not be read (warnings above); the others were tagged`);
  if (out.captions.failed > 0) throw new Error(`${out.captions.failed} captions could not be written (warnings above)`);
}

/** --model, or without it the model sd-scripts keeps under --model_dir for --repo_id. */
function modelFiles(argv: RunPredArgs, warn: (l: string) => void): { model: string; tags?: string } {
  if (argv.forceDownload) warn('warning: --force_download: nothing is downloaded here; the files given are used');
  if (argv.model !== undefined && argv.repoId !== undefined)
    warn('warning: --repo_id is not used: --model names the model');
  return argv.model === undefined ? sdScriptsModelFiles(argv.modelDir, argv.repoId) : { model: argv.model };
}
