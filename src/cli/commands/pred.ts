// `pred IMAGE|DIR|- ... --model model.onnx`: tags for images, the seed's --pred done for collections
// and for the taggers users already have (WD, DeepDanbooru): thresholds per category, MCut, ratings,
// several output formats, captions next to the images edited as sd-scripts does.
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import type { Options } from 'yargs';
import type { Io } from '../io.js';
import { defineCommand, type Args, type Command } from '../command.js';
import { FRAME_OPTIONS, loadOptionsFrom, withModelOptions, type ModelArgs, IMAGES_ARG } from '../model-options.js';
import { withPredFlags } from '../pred-options.js';
import { partFrom, selectOptionsFrom, type PredArgs } from '../../predict/options.js';
import { captionerFrom, captionStyleOf, type CaptionItem, type Captioner } from '../../predict/caption-style.js';
import { sdScriptsFrequencyLines } from '../../predict/sd-scripts.js';
import { checkChoice, checkInteger, UsageError } from '../../util/errors.js';
import { checkOutputFile, writeFileAtomic } from '../../util/fsx.js';
import { DEVICES, executionProviders, type Device } from '../../runtime/providers.js';
import { TaggerModel } from '../../predict/model.js';
import type { TagScore } from '../../predict/select.js';
import { FRAME_MERGES, TagFrequency, tagImages, type ImageEntry } from '../../predict/tagging.js';
import { sdScriptsModelFiles } from '../../predict/sd-scripts.js';
import { captionTargets, checkCaptionExt, saveCaption, type CaptionOutcome } from '../../predict/caption-file.js';
import { listImageEntries } from '../../predict/inputs.js';

const FORMATS = ['text', 'json', 'jsonl', 'csv', 'caption'] as const;

type Argv = PredArgs &
  ModelArgs & {
    images: string[];
    model?: string;
    batch: number;
    format: string;
    allowEmpty: boolean;
    captionExt: string;
    frequency?: string;
    frequencyTags?: boolean;
    recursive?: boolean;
    repoId?: string;
    modelDir?: string;
    forceDownload?: boolean;
    device: string;
  };

const OPTIONS = {
  batch: { type: 'number', default: 8, alias: ['batch-size', 'batch_size'], describe: 'Images per inference run' },
  format: {
    type: 'string',
    choices: FORMATS,
    default: 'text',
    describe: 'Output format; caption writes NAME.txt next to each image',
  },
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model runs' },
  ...FRAME_OPTIONS,
} as const satisfies Record<string, Options>;

export const predCommand: Command = ({ io }) =>
  defineCommand({
    command: 'pred <images..>',
    describe: 'Predict tags for images, folders (recursive) or `-` (paths on stdin)',
    builder: (y) => withPredFlags(withModelOptions(y.positional('images', IMAGES_ARG), false)).options(OPTIONS),
    handler: (argv: RunPredArgs) => runPred(io, argv),
  });

type RunPredArgs = Args<typeof OPTIONS> & Argv;

async function runPred(io: Io, argv: RunPredArgs): Promise<void> {
  const batch = checkInteger('--batch', argv.batch, 1, 4096);
  const format = checkChoice('--format', argv.format, FORMATS);
  const device = checkChoice('--device', argv.device, DEVICES) as Device;
  const part = partFrom(argv.part);
  const frames = checkInteger('--frames', argv.frames, 1, 1000);
  const merge = checkChoice('--frames-merge', argv.framesMerge, FRAME_MERGES);
  if (argv.append && argv.prepend) throw new UsageError('Expected one of --append and --prepend but received both');
  const captionExt = checkCaptionExt(argv.captionExt);
  captionStyleOf(argv);
  if (argv.frequency) await checkOutputFile(argv.frequency, '--frequency');
  const warn = (l: string): void => io.err(l);
  const files = modelFiles(argv, warn);
  const t0 = performance.now();
  const tagger = await TaggerModel.load(
    files.model,
    loadOptionsFrom({ ...argv, tags: argv.tags ?? files.tags }, io, {
      executionProviders: executionProviders(device),
    }),
  );
  const loaded = performance.now();
  // Warm the session on a dummy batch while the first images decode; the rate counts from its end.
  let warmed = loaded;
  let warmSeconds = 0;
  const warm = tagger.warmUp(batch).then(
    (s) => ((warmed = performance.now()), (warmSeconds = s)),
    () => undefined,
  );
  const frequency = new TagFrequency();
  let failed = 0;
  let done = 0;
  let out: ReturnType<typeof outputs> | undefined;
  try {
    const captioner = captionerFrom(argv, tagger, (l) => warn(`warning: ${l}`));
    const select =
      captioner.style === 'ours' ? await selectOptionsFrom(argv, tagger, (l) => warn(`warning: ${l}`)) : undefined;
    // sd-scripts looks into subfolders only with --recursive; the other styles always do.
    const recursive = captioner.style !== 'sd-scripts' || argv.recursive === true;
    // Captions: every image's caption file is known before the first is written (two images must not share one).
    const entries =
      format === 'caption'
        ? await allImages(argv.images, recursive)
        : listImageEntries(argv.images, undefined, recursive);
    const targets = Array.isArray(entries)
      ? captionTargets(
          entries.map((e) => e.file),
          captionExt,
          warn,
        )
      : new Map<string, string>();
    out = outputs(io, format, argv, captioner, targets);
    for await (const t of tagImages(tagger, entries, { batch, select, part, frames, merge })) {
      if (t.failure !== undefined) {
        failed++;
        warn(`warning: ${t.file}: skipped, ${t.failure}`);
        continue;
      }
      done++;
      const c = captioner.caption(t.tags, t.probs);
      frequency.add(c.counted);
      await out.add(t.file, c.tags, c.items);
    }
  } finally {
    await tagger.release();
  }
  out.end();
  await reportFrequency(io, argv, frequency, done);
  await warm;
  const end = performance.now();
  const seconds = (end - loaded) / 1000;
  const rate = done / Math.max(1e-3, (end - warmed) / 1000);
  io.err(
    `pred: ${done} images in ${seconds.toFixed(2)} s, ${rate.toFixed(2)} img/s after warm-up (model loaded in ${((loaded - t0) / 1000).toFixed(2)} s, warmed up in ${warmSeconds.toFixed(2)} s while the first images decoded)`,
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

/** --frequency FILE.csv (most frequent first, ties by name) and --frequency_tags (sd-scripts' lines on stdout). */
async function reportFrequency(io: Io, argv: RunPredArgs, frequency: TagFrequency, done: number): Promise<void> {
  if (argv.frequencyTags) for (const line of sdScriptsFrequencyLines(frequency.entries())) io.out(line);
  if (!argv.frequency) return;
  await writeFileAtomic(
    path.resolve(argv.frequency),
    stringify(frequency.rows(), { header: true, columns: ['tag', 'count'] }),
  );
  io.err(`pred: tag frequencies of ${done} images in ${argv.frequency}`);
}

/** Where each image's tags go, by --format: lines on stdout (text, jsonl, csv), one JSON array, or caption files. */
function outputs(
  io: Io,
  format: (typeof FORMATS)[number],
  argv: RunPredArgs,
  captioner: Captioner,
  targets: Map<string, string>,
): {
  add(file: string, tags: TagScore[], items: CaptionItem[]): Promise<void>;
  end(): void;
  captions: Record<CaptionOutcome, number>;
} {
  const json: { file: string; tags: TagScore[] }[] = [];
  const captions: Record<CaptionOutcome, number> = { written: 0, kept: 0, empty: 0, failed: 0 };
  if (format === 'csv') io.out(stringify([['file', 'tag', 'prob', 'category']]).trimEnd());
  return {
    captions,
    async add(file, tags, items) {
      if (format === 'text') for (const s of tags) io.out(`${file} tag=${s.tag} prob=${s.prob.toFixed(4)}`);
      else if (format === 'jsonl') io.out(JSON.stringify({ file, tags }));
      else if (format === 'json') json.push({ file, tags });
      else if (format === 'csv')
        io.out(stringify(tags.map((s) => [file, s.tag, s.prob.toFixed(6), s.category])).trimEnd());
      else {
        const r = await saveCaption(targets.get(file)!, (existing) => captioner.fileText(items, existing), {
          overwrite: captioner.overwrite,
          merge: captioner.merge !== undefined,
          allowEmpty: argv.allowEmpty,
        });
        captions[r.outcome]++;
        if (r.note) io.err(`warning: ${r.note}`);
      }
    },
    end() {
      if (format === 'json') io.out(JSON.stringify(json, null, 1));
      if (format === 'caption')
        io.err(
          `pred: captions written ${captions.written}, kept ${captions.kept}, empty ${captions.empty}, failed ${captions.failed}`,
        );
    },
  };
}

async function allImages(args: readonly string[], recursive: boolean): Promise<ImageEntry[]> {
  const out: ImageEntry[] = [];
  for await (const e of listImageEntries(args, undefined, recursive)) out.push(e);
  return out;
}
