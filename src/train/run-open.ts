// Opening a run folder for `train`: a new run (its files written only once training can start, and
// config.json last, so a run exists whole or not at all), or an existing one resumed from its newest
// usable checkpoint (damaged or non-finite ones are passed over with a warning), and RUN/log.jsonl
// repaired (a torn last line dropped) and cut back to the checkpoint resumed from.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { categoryOf } from '../data/tags.js';
import { shardPositives, type ShardIndexJson } from '../data/shards.js';
import { messageOf, UsageError } from '../util/errors.js';
import { WriteError, writeFileAtomic } from '../util/fsx.js';
import { artifactFiles } from '../../training/artifacts.js';
import { initParams } from '../../training/params.js';
import { importBackbone } from './backbone.js';
import { nonFinite, readCheckpoint, scanCheckpoints, type BestBy, type CheckpointInfo } from './checkpoint.js';
import type { CurvePoint } from './curves.js';
import {
  headConfigFor,
  modelConfigFor,
  readRunConfig,
  RUN_FORMAT,
  type RunConfig,
  type TrainPrecision,
} from './run-config.js';
import type { TrainState } from './train-session.js';

/** Where training starts: the run's config, its state, and the round and batch to continue from. */
export interface Opened {
  run: RunConfig;
  initial: TrainState;
  round: number;
  position: number;
  /** The checkpoint resumed from; absent for a new run. */
  from?: CheckpointInfo;
  /** The run's precision: a new run's from --precision (fp32 without it), a resumed run's its own. */
  precision: TrainPrecision;
}

export interface OpenOptions {
  shards: string;
  out: string;
  backbone: string;
  seed: number;
  batch: number;
  lr: number;
  resume: boolean;
  hidden: number;
  freeze?: number;
  /** auto: weight each tag's positives by its negatives / positives in the training shards. */
  posWeight?: 'none' | 'auto';
  /** The holdout metric that picks the best round (default map); a resumed run keeps its own. */
  best?: BestBy;
  /** --precision as given (undefined: not given). */
  precision?: TrainPrecision;
}

/** The newest checkpoint that reads, verifies and holds finite weights; each one passed over is a warning. */
async function newestGood(
  run: RunConfig,
  ckptDir: string,
  warn: (l: string) => void,
): Promise<{ info: CheckpointInfo; state: Required<TrainState> }> {
  const { list, bad } = await scanCheckpoints(ckptDir);
  for (const b of bad) warn(`warning: ${b.file}: passed over, ${b.reason}`);
  for (const c of [...list].reverse()) {
    try {
      const { state, info } = await readCheckpoint(c.file, run.model);
      const broken = nonFinite(state.params);
      if (run.precision === 'fp16' && !info.lossScale)
        warn(
          `warning: ${c.file}: passed over, it holds no loss-scaler state (every checkpoint of an fp16 run keeps it)`,
        );
      else if (!broken) return { info, state };
      else warn(`warning: ${c.file}: passed over, ${broken} holds NaN or infinite values`);
    } catch (err) {
      warn(`warning: ${c.file}: passed over, ${messageOf(err)}`);
    }
  }
  throw new UsageError(
    `Expected a usable checkpoint to resume from in ${JSON.stringify(ckptDir)} but ${list.length + bad.length === 0 ? 'there is none' : 'none reads with finite weights (warnings above)'}`,
  );
}

/** Temp files our own checkpoint writes leave when killed mid-write. */
const OWN_TEMP = /^\.round-\d{6}(-partial)?\.safetensors\.\d+\.\w+\.tmp$/;

async function resumeRun(
  runDir: string,
  asked: TrainPrecision | undefined,
  warn: (l: string) => void,
  info: (l: string) => void,
): Promise<Opened> {
  const run = await readRunConfig(runDir);
  const ckptDir = path.join(runDir, 'checkpoints');
  for (const f of await readdir(ckptDir).catch(() => []))
    if (OWN_TEMP.test(f)) await rm(path.join(ckptDir, f), { force: true });
  const { info: from, state } = await newestGood(run, path.join(runDir, 'checkpoints'), warn);
  const [round, position] = from.position < 0 ? [from.round + 1, 0] : [from.round, from.position];
  // A run written before its precision was recorded: its checkpoints' loss-scaler state says fp16.
  const own = run.precision ?? (from.lossScale ? 'fp16' : undefined);
  if (asked !== undefined && own !== undefined && asked !== own)
    throw new UsageError(
      `Expected --precision ${own} (the run's own) or none with --resume but received --precision ${asked}: a run keeps its precision; start a new run (another --out) to train in ${asked}`,
    );
  const precision = own ?? asked ?? 'fp32';
  info(
    `resuming ${runDir} from ${path.basename(from.file)} (round ${round}, batch ${position}, step ${state.step}); model, seed, batch, lr and precision (${precision}) from config.json`,
  );
  return { run, initial: state, round, position, from, precision };
}

/** Each tag's negatives / positives in the training shards, between 1 and MAX_POS_WEIGHT (1 without positives). */
async function positiveWeights(dir: string, index: ShardIndexJson): Promise<number[]> {
  const { counts, images } = await shardPositives(dir, index, 'train');
  return counts.map((p) => (p === 0 ? 1 : Math.min(MAX_POS_WEIGHT, Math.max(1, (images - p) / p))));
}

export const MAX_POS_WEIGHT = 100;

/** A new run's config and initial state; nothing is written yet. */
async function createRun(opts: OpenOptions, index: ShardIndexJson, info: (l: string) => void): Promise<Opened> {
  const isFile = opts.backbone !== 'vgg16' && opts.backbone !== 'vgg16-tiny';
  const base = index.embedding;
  if (base && (opts.backbone !== 'vgg16' || opts.freeze !== undefined))
    throw new UsageError(
      `Expected no --backbone or --freeze for ${JSON.stringify(opts.shards)}: its shards hold the embeddings of ${base.model}, the frozen backbone, and train a head over them`,
    );
  const model = base
    ? headConfigFor(base.width, index.tags.count, opts.hidden)
    : modelConfigFor(opts.backbone, index.tags.count, index.imageSize, opts.hidden, opts.freeze);
  if (opts.posWeight === 'auto') model.posWeight = await positiveWeights(opts.shards, index);
  const params = initParams(model, opts.seed);
  if (base)
    info(
      `train: a head (hidden ${model.hidden || 'none: one linear layer'}) over the ${base.width}-wide embedding of ${base.model}`,
    );
  else if (opts.backbone === 'vgg16') {
    info(
      'train: --backbone vgg16 starts from random weights (training from scratch); to start from ImageNet weights as the seed did, pass --backbone with vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras), a torchvision VGG16 state dict as .safetensors, or an ONNX VGG16',
    );
  }
  if (isFile) for (const [name, w] of await importBackbone(opts.backbone, model)) params.set(name, w);
  const run: RunConfig = {
    format: RUN_FORMAT,
    version: 1,
    model,
    backbone: base ? base.model : isFile ? path.resolve(opts.backbone) : opts.backbone,
    ...(base ? { base } : {}),
    seed: opts.seed,
    batch: opts.batch,
    lr: opts.lr,
    shards: path.resolve(opts.shards),
    pad: index.pad,
    tags: {
      sha256: index.tags.sha256,
      names: index.tags.names,
      categories: index.tags.categories ?? index.tags.names.map(categoryOf),
    },
    precision: opts.precision ?? 'fp32',
    ...(opts.best && opts.best !== 'map' ? { best: opts.best } : {}),
  };
  return { run, initial: { params }, round: 1, position: 0, precision: run.precision! };
}

/**
 * Write a new run's files: artifacts, the round-0 checkpoint (by `writeStart`), then config.json, the
 * file that makes the folder a run. A failure removes what was written, so a failed start leaves
 * nothing behind; a kill before config.json leaves a folder that a new `train` simply starts again.
 */
export async function writeNewRun(
  runDir: string,
  run: RunConfig,
  writeStart: () => Promise<CheckpointInfo>,
): Promise<CheckpointInfo> {
  const made: string[] = [];
  try {
    for (const sub of ['artifacts', 'checkpoints']) {
      const dir = path.join(runDir, sub);
      if (!existsSync(dir)) made.push(dir);
      await mkdir(dir, { recursive: true });
    }
    for (const [name, bytes] of artifactFiles(run.model)) {
      await writeFileAtomic(path.join(runDir, 'artifacts', name), bytes);
      made.push(path.join(runDir, 'artifacts', name));
    }
    const start = await writeStart();
    made.push(start.file);
    await writeFileAtomic(path.join(runDir, 'config.json'), `${JSON.stringify(run, null, 1)}\n`);
    return start;
  } catch (err) {
    for (const f of made.reverse())
      await (f.endsWith('artifacts') || f.endsWith('checkpoints') ? rmdir(f) : rm(f, { force: true })).catch(
        () => undefined,
      );
    throw err;
  }
}

/** A new run or, with --resume, the existing one; checked against the shards it trains on. */
export async function openRun(
  opts: OpenOptions,
  index: ShardIndexJson,
  runDir: string,
  warn: (l: string) => void,
  info: (l: string) => void,
): Promise<Opened> {
  const exists = existsSync(path.join(runDir, 'config.json'));
  if (exists && !opts.resume)
    throw new UsageError(
      `Expected a new run folder for --out but ${JSON.stringify(opts.out)} already holds a run; add --resume to continue it or choose another --out`,
    );
  if (!exists && opts.resume) {
    const started = existsSync(path.join(runDir, 'checkpoints'));
    throw new UsageError(
      `Expected a run to resume in ${JSON.stringify(opts.out)} but it has no config.json${started ? ' (its start was interrupted before it was complete: run the same command without --resume to start it again)' : ''}`,
    );
  }
  const opened = exists ? await resumeRun(runDir, opts.precision, warn, info) : await createRun(opts, index, info);
  const { run } = opened;
  if (run.tags.sha256 !== index.tags.sha256) {
    throw new UsageError(
      `Expected shards made with this run's tags.csv but ${JSON.stringify(opts.shards)} has tags sha256 ${index.tags.sha256.slice(0, 12)}…, the run ${run.tags.sha256.slice(0, 12)}…`,
    );
  }
  if ((run.base?.sha256 ?? null) !== (index.embedding?.sha256 ?? null)) {
    const what = (sha?: string): string =>
      sha ? `embeddings of the base model with SHA-256 ${sha.slice(0, 12)}…` : 'images';
    throw new UsageError(
      `Expected shards of ${what(run.base?.sha256)} for this run but ${JSON.stringify(opts.shards)} holds ${what(index.embedding?.sha256)}`,
    );
  }
  if (!run.base && run.model.imageSize !== index.imageSize) {
    throw new UsageError(
      `Expected shards of ${run.model.imageSize}px images for this run but ${JSON.stringify(opts.shards)} has ${index.imageSize}px`,
    );
  }
  return opened;
}

/** RUN/log.jsonl (a line per logged step and per round) and the curve points of the rounds in it. */
export class RunLog {
  private constructor(
    private readonly file: string,
    readonly curves: CurvePoint[],
  ) {}

  /**
   * Open the log: a torn last line (a kill mid-write) is dropped with a warning, and on resume every
   * line after the checkpoint's step is dropped, so the continued run does not log those steps twice.
   */
  static async open(runDir: string, fromStep: number | undefined, warn: (l: string) => void): Promise<RunLog> {
    const file = path.join(runDir, 'log.jsonl');
    const text = existsSync(file) ? await readFile(file, 'utf8') : '';
    const lines = text.split('\n').filter(Boolean);
    const entries: Record<string, number | string>[] = [];
    let dropped = 0;
    for (const [i, line] of lines.entries()) {
      try {
        entries.push(JSON.parse(line));
      } catch {
        if (i < lines.length - 1)
          throw new UsageError(
            `Expected one JSON object per line in ${JSON.stringify(file)} but line ${i + 1} is not one`,
          );
        warn(`warning: ${file}: dropped a torn last line (a write was cut off)`);
        dropped++;
      }
    }
    const kept = fromStep === undefined ? entries : entries.filter((e) => !(Number(e.step) > fromStep));
    dropped += entries.length - kept.length;
    if (dropped > 0) await writeFileAtomic(file, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
    const curves = kept
      .filter((e) => e.type === 'round')
      .map((e) => ({
        round: Number(e.round),
        images: Number(e.imagesSeen),
        trainLoss: Number(e.trainLoss),
        holdoutLoss: Number(e.holdoutLoss),
        map: Number(e.map),
      }));
    return new RunLog(file, curves);
  }

  get imagesSeen(): number {
    return this.curves.at(-1)?.images ?? 0;
  }

  async write(entry: Record<string, unknown>): Promise<void> {
    try {
      await appendFile(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    } catch (err) {
      throw new WriteError(this.file, err);
    }
  }
}
