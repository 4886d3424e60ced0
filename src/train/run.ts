// The training loop of `train`: rounds over shards (the seed's "load 15,000 pairs, fit one epoch,
// save"), the next shard read while the current one trains, holdout metrics and a checkpoint per round,
// exact resume (shard order and batch order are functions of the seed and round; dropout RNG and Adam
// state come from the checkpoint), graceful stop on request, and a NaN guard.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { categoryOf } from '../data/tags.js';
import { predictOverShards, readShard, readShardIndex, ShardSlot, type Shard, type ShardEntry, type ShardIndexJson } from '../data/shards.js';
import { evaluatePredictions } from '../metrics/metrics.js';
import type { Device } from '../runtime/providers.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { Rng } from '../../training/rng.js';
import { artifactFiles } from '../../training/artifacts.js';
import { initParams } from '../../training/model.js';
import { importBackbone } from './backbone.js';
import { bestCheckpoint, listCheckpoints, pruneCheckpoints, readCheckpoint, writeCheckpoint, type CheckpointInfo, type RoundMetrics } from './checkpoint.js';
import { curvesSvg, type CurvePoint } from './curves.js';
import { modelConfigFor, readRunConfig, RUN_FORMAT, type RunConfig } from './run-config.js';
import type { EngineChoice } from './engines.js';
import { TrainSession, type TrainState } from './train-session.js';

export interface TrainOptions {
  shards: string;
  out: string;
  backbone: string;
  rounds: number;
  batch: number;
  lr: number;
  device: Device;
  seed: number;
  resume: boolean;
  hidden: number;
  freeze?: number;
  keep: number;
  logEvery: number;
  threads: number;
  /** Training engine: native, ort or auto (default). */
  engine?: EngineChoice;
}

export interface TrainHooks {
  /** A round starts: its number, the shard it trains on and how many images. */
  roundStart?(round: number, shard: string, images: number): void;
  step?(imagesDone: number, loss: number): void;
  roundEnd?(summary: string): void;
  info?(line: string): void;
  /** Polled after every step: true to stop with a checkpoint (SIGINT/SIGTERM). */
  stopRequested?(): boolean;
}

export interface TrainResult {
  status: 'done' | 'interrupted';
  last: CheckpointInfo;
  best?: CheckpointInfo;
}

/** Permutation of the training shards for a cycle, and of a shard's images for a round: pure functions of the seed. */
function shardForRound(seed: number, round: number, shards: ShardEntry[]): ShardEntry {
  const n = shards.length;
  const cycle = Math.floor((round - 1) / n);
  const perm = new Rng((seed * 7919 + cycle * 104729 + 17) >>> 0).shuffle([...Array(n).keys()]);
  return shards[perm[(round - 1) % n]!]!;
}

function batchOrder(seed: number, round: number, count: number): number[] {
  return new Rng((seed * 2654435761 + round * 40503 + 1) >>> 0).shuffle([...Array(count).keys()]);
}

/** Evaluate on every holdout shard, one shard in memory at a time (in `slot` when given). */
export async function evaluateHoldout(session: TrainSession, dir: string, index: ShardIndexJson, slot?: ShardSlot, evalBatch = 64): Promise<RoundMetrics | undefined> {
  const holdouts = index.shards.filter((s) => s.split === 'holdout');
  let lossSum = 0;
  const { probs, labels, n } = await predictOverShards(dir, index, holdouts, evalBatch, async (images, lab, m) => {
    const r = await session.evaluate(images, lab, m);
    lossSum += r.loss * m;
    return r.probs;
  }, slot);
  if (n === 0) return undefined;
  const r = evaluatePredictions(probs, labels, n, index.tags.names, 0.5);
  return { holdoutLoss: lossSum / n, map: r.map, microF1: r.microF1, macroF1: r.macroF1, mse: r.mse };
}

/** Where training starts: the run's config, its state, and the round and batch to continue from. */
interface Opened {
  run: RunConfig;
  initial: TrainState;
  round: number;
  position: number;
  /** A new run, whose folder is written once training can start. */
  isNew?: boolean;
}

async function resumeRun(runDir: string, hooks: TrainHooks): Promise<Opened> {
  const run = await readRunConfig(runDir);
  const ckptDir = path.join(runDir, 'checkpoints');
  const last = (await listCheckpoints(ckptDir)).at(-1);
  if (!last) throw new UsageError(`Expected a checkpoint to resume from in ${JSON.stringify(ckptDir)} but there is none`);
  const { state } = await readCheckpoint(last.file, run.model);
  const [round, position] = last.position < 0 ? [last.round + 1, 0] : [last.round, last.position];
  hooks.info?.(`resuming ${runDir} from ${path.basename(last.file)} (round ${round}, batch ${position}, step ${state.step}); model, seed, batch and lr from config.json`);
  return { run, initial: state, round, position };
}

/** A new run's config and initial state; nothing is written until `writeNewRun` (after the engine started). */
async function createRun(opts: TrainOptions, index: ShardIndexJson): Promise<Opened> {
  const isFile = opts.backbone !== 'vgg16' && opts.backbone !== 'vgg16-tiny';
  const model = modelConfigFor(opts.backbone, index.tags.count, index.imageSize, opts.hidden, opts.freeze);
  const params = initParams(model, opts.seed);
  if (isFile) for (const [name, w] of await importBackbone(opts.backbone, model)) params.set(name, w);
  const run: RunConfig = {
    format: RUN_FORMAT, version: 1, model, backbone: isFile ? path.resolve(opts.backbone) : opts.backbone, seed: opts.seed, batch: opts.batch, lr: opts.lr,
    shards: path.resolve(opts.shards), pad: index.pad,
    tags: { sha256: index.tags.sha256, names: index.tags.names, categories: index.tags.categories ?? index.tags.names.map(categoryOf) },
  };
  return { run, initial: { params }, round: 1, position: 0, isNew: true };
}

async function writeNewRun(runDir: string, run: RunConfig): Promise<void> {
  await mkdir(path.join(runDir, 'checkpoints'), { recursive: true });
  const artifacts = path.join(runDir, 'artifacts');
  await mkdir(artifacts, { recursive: true });
  for (const [name, bytes] of artifactFiles(run.model)) await writeFileAtomic(path.join(artifacts, name), bytes);
  await writeFileAtomic(path.join(runDir, 'config.json'), `${JSON.stringify(run, null, 1)}\n`);
}

/** A new run or, with --resume, the existing one; checked against the shards it trains on. */
async function openRun(opts: TrainOptions, index: ShardIndexJson, runDir: string, hooks: TrainHooks): Promise<Opened> {
  const exists = existsSync(path.join(runDir, 'config.json'));
  if (exists && !opts.resume) throw new UsageError(`Expected a new run folder for --out but ${JSON.stringify(opts.out)} already holds a run; add --resume to continue it or choose another --out`);
  if (!exists && opts.resume) throw new UsageError(`Expected a run to resume in ${JSON.stringify(opts.out)} but it has no config.json`);
  const opened = exists ? await resumeRun(runDir, hooks) : await createRun(opts, index);
  const { run } = opened;
  if (run.tags.sha256 !== index.tags.sha256) {
    throw new UsageError(`Expected shards made with this run's tags.csv but ${JSON.stringify(opts.shards)} has tags sha256 ${index.tags.sha256.slice(0, 12)}…, the run ${run.tags.sha256.slice(0, 12)}…`);
  }
  if (run.model.imageSize !== index.imageSize) {
    throw new UsageError(`Expected shards of ${run.model.imageSize}px images for this run but ${JSON.stringify(opts.shards)} has ${index.imageSize}px`);
  }
  return opened;
}

/** RUN/log.jsonl (a line per logged step and per round) and the curve points of the rounds in it. */
class RunLog {
  private constructor(
    private readonly file: string,
    readonly curves: CurvePoint[],
  ) {}

  static async open(runDir: string): Promise<RunLog> {
    const file = path.join(runDir, 'log.jsonl');
    const past = existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>) : [];
    const curves = past.filter((e) => e.type === 'round').map((e) => ({ images: Number(e.imagesSeen), trainLoss: Number(e.trainLoss), holdoutLoss: Number(e.holdoutLoss), map: Number(e.map) }));
    return new RunLog(file, curves);
  }

  get imagesSeen(): number {
    return this.curves.at(-1)?.images ?? 0;
  }

  write(entry: Record<string, unknown>): Promise<void> {
    return appendFile(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  }
}

/** Everything one round needs; `last` is the newest checkpoint written. */
interface Loop {
  opts: TrainOptions;
  hooks: TrainHooks;
  run: RunConfig;
  index: ShardIndexJson;
  shardsDir: string;
  runDir: string;
  ckptDir: string;
  session: TrainSession;
  log: RunLog;
  last: CheckpointInfo;
  imagesSeen: number;
}

const checkpointAt = async (L: Loop, round: number, position: number, metrics?: RoundMetrics): Promise<CheckpointInfo> =>
  (L.last = await writeCheckpoint(L.ckptDir, L.run.model, await L.session.getState(), { round, position, metrics, tagsSha256: L.run.tags.sha256 }));

interface Epoch {
  interrupted: boolean;
  lossSum: number;
  steps: number;
  images: number;
  seconds: number;
  stepSeconds: number;
}

/** One epoch over a shard from batch `position`; stops early (with a partial checkpoint) on request. */
async function trainEpoch(L: Loop, round: number, position: number, shard: Shard): Promise<Epoch> {
  const { run, session } = L;
  const b = run.batch;
  const k = run.model.tags;
  const px = run.model.imageSize ** 2 * 3;
  const images = new Uint8Array(b * px);
  const labels = new Uint8Array(b * k);
  const order = batchOrder(run.seed, round, shard.count);
  const e: Epoch = { interrupted: false, lossSum: 0, steps: 0, images: 0, seconds: 0, stepSeconds: 0 };
  const t0 = performance.now();
  for (let pos = position; pos * b < order.length; pos++) {
    const idx = order.slice(pos * b, (pos + 1) * b);
    if (idx.length < 2) break; // batch norm needs two images
    idx.forEach((j, i) => {
      images.set(shard.images.subarray(j * px, (j + 1) * px), i * px);
      labels.set(shard.labels.subarray(j * k, (j + 1) * k), i * k);
    });
    const n = idx.length;
    const s0 = performance.now();
    const loss = await session.step(images.subarray(0, n * px), labels.subarray(0, n * k), n, run.lr);
    e.stepSeconds += (performance.now() - s0) / 1000;
    if (!Number.isFinite(loss)) {
      throw new Error(`loss became ${loss} at round ${round}, step ${session.steps}; stopped without saving the diverged state. The last good checkpoint is ${L.last.file}: resume from it with --resume after lowering the learning rate in ${path.join(L.runDir, 'config.json')}`);
    }
    e.lossSum += loss;
    e.steps++;
    e.images += n;
    L.imagesSeen += n;
    const done = position * b + e.images;
    L.hooks.step?.(done, loss);
    if (session.steps % L.opts.logEvery === 0) await L.log.write({ type: 'step', round, step: session.steps, loss, imgPerS: done / ((performance.now() - t0) / 1000), lr: run.lr });
    if (L.hooks.stopRequested?.() && (pos + 1) * b < order.length) {
      await checkpointAt(L, round, pos + 1);
      await L.log.write({ type: 'interrupted', round, position: pos + 1, step: session.steps, checkpoint: path.basename(L.last.file) });
      e.interrupted = true;
      break;
    }
  }
  e.seconds = (performance.now() - t0) / 1000;
  return e;
}

/** After an epoch: holdout metrics, the round's checkpoint, retention, log line, curves, summary. */
async function finishRound(L: Loop, round: number, entry: ShardEntry, e: Epoch, slot: ShardSlot): Promise<void> {
  const metrics = await evaluateHoldout(L.session, L.shardsDir, L.index, slot);
  await checkpointAt(L, round, -1, metrics);
  await pruneCheckpoints(L.ckptDir, L.opts.keep);
  const trainLoss = e.steps ? e.lossSum / e.steps : NaN;
  const imgPerS = e.images / e.seconds;
  // Share of the round's training time spent inside the runtime's steps (the rest: batches, logging).
  const runtimeShare = e.stepSeconds / e.seconds;
  await L.log.write({ type: 'round', round, shard: entry.file, step: L.session.steps, trainLoss, ...metrics, imgPerS, imagesSeen: L.imagesSeen, lr: L.run.lr, seconds: e.seconds, runtimeShare });
  L.log.curves.push({ images: L.imagesSeen, trainLoss, holdoutLoss: metrics?.holdoutLoss ?? NaN, map: metrics?.map ?? NaN });
  await writeFileAtomic(path.join(L.runDir, 'curves.svg'), curvesSvg(L.log.curves));
  L.hooks.roundEnd?.(
    `round ${round}/${L.opts.rounds} (${entry.file}): train loss ${trainLoss.toFixed(4)}` +
      (metrics ? `, holdout loss ${metrics.holdoutLoss.toFixed(4)}, mAP ${metrics.map.toFixed(3)}, micro-F1 ${metrics.microF1.toFixed(3)}` : ', no holdout') +
      `, ${imgPerS.toFixed(1)} img/s`,
  );
}

/** Rounds from `round` (batch `position`) to opts.rounds, the next shard read while one trains. */
async function trainRounds(L: Loop, round: number, position: number): Promise<TrainResult['status']> {
  const trainShards = L.index.shards.filter((s) => s.split === 'train');
  // Two slots of shard memory, alternating by round: the shard being trained and the next one being
  // read. Holdout shards are read into the current round's slot once its epoch is done.
  const slots = [new ShardSlot(), new ShardSlot()];
  const slotFor = (r: number): ShardSlot => slots[r % 2]!;
  const load = (r: number): Promise<Shard> => readShard(L.shardsDir, shardForRound(L.run.seed, r, trainShards), L.index, slotFor(r));
  let prefetch: { round: number; shard: Promise<Shard> } | null = null;
  for (; round <= L.opts.rounds; round++, position = 0) {
    const entry = shardForRound(L.run.seed, round, trainShards);
    const shard = await (prefetch?.round === round ? prefetch.shard : load(round));
    prefetch = round < L.opts.rounds ? { round: round + 1, shard: load(round + 1) } : null;
    prefetch?.shard.catch(() => undefined); // surfaced when awaited
    L.hooks.roundStart?.(round, entry.file, shard.count);
    const epoch = await trainEpoch(L, round, position, shard);
    if (epoch.interrupted) return 'interrupted';
    await finishRound(L, round, entry, epoch, slotFor(round));
    if (L.hooks.stopRequested?.()) return 'interrupted';
  }
  return 'done';
}

export async function trainRun(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const index = await readShardIndex(opts.shards);
  if (!index.shards.some((s) => s.split === 'train')) throw new UsageError(`Expected training shards in ${JSON.stringify(opts.shards)} but its index.json lists none`);
  const runDir = path.resolve(opts.out);
  const { run, initial, round, position, isNew } = await openRun(opts, index, runDir, hooks);
  const session = await TrainSession.create(run.model, initial, { device: opts.device, seed: run.seed, intraOpThreads: opts.threads, engine: opts.engine });
  hooks.info?.(session.engineNote);
  const ckptDir = path.join(runDir, 'checkpoints');
  try {
    if (isNew) await writeNewRun(runDir, run);
    const log = await RunLog.open(runDir);
    const L: Loop = { opts, hooks, run, index, shardsDir: path.resolve(opts.shards), runDir, ckptDir, session, log, last: undefined!, imagesSeen: log.imagesSeen };
    const newest = (await listCheckpoints(ckptDir)).at(-1);
    // A fresh run keeps its starting point, so a NaN in round 1 still leaves a good checkpoint.
    L.last = newest ?? (await checkpointAt(L, 0, -1));
    const status = await trainRounds(L, round, position);
    return { status, last: L.last, best: bestCheckpoint(await listCheckpoints(ckptDir)) };
  } finally {
    session.dispose();
  }
}
