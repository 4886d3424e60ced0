// The training loop of `train`: rounds over shards (the seed's "load 15,000 pairs, fit one epoch,
// save"), the next shard read while the current one trains, holdout metrics and a checkpoint per round,
// exact resume (shard order and batch order are functions of the seed and round; dropout RNG and Adam
// state come from the checkpoint), graceful stop on request, and a NaN guard.
import { existsSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import {
  readShard,
  readShardIndex,
  ShardSlot,
  type Shard,
  type ShardEntry,
  type ShardIndexJson,
} from '../data/shards.js';
import type { Device } from '../runtime/providers.js';
import { UsageError } from '../util/errors.js';
import { makeFolder, writeFileAtomic } from '../util/fsx.js';
import { lockFolder, type FolderLock } from '../util/lock.js';
import { Rng } from '../../training/rng.js';
import { inputOf } from '../../training/params.js';
import {
  bestCheckpoint,
  type BestBy,
  checkpointPayload,
  listCheckpoints,
  pruneCheckpoints,
  type CheckpointInfo,
  type RoundMetrics,
} from './checkpoint.js';
import { CheckpointWriter } from './checkpoint-writer.js';
import { curvesSvg, type CurveContext } from './curves.js';
import type { RunConfig, TrainPrecision } from './run-config.js';
import type { EngineChoice } from './engines.js';
import { openRun, RunLog, writeNewRun } from './run-open.js';
import { earlyStop, evaluateHoldout } from './holdout.js';
import { checkHeadTags } from './head-tags.js';
import { TrainSession, type TrainSessionOptions } from './train-session.js';

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
  /** Stop when the holdout metric (`best`) has not improved for this many rounds (0 or absent: never). */
  patience?: number;
  /** The holdout metric that picks the best round (default map). */
  best?: BestBy;
  /** Weight each tag's positive term by its negatives / positives in the training shards (1–100). */
  posWeight?: 'none' | 'auto';
  /** Float precision of the step: fp32 (default) or tf32 (CUDA tensor cores; see trainPrecision). */
  precision?: TrainPrecision;
  /** Finished rounds between checkpoints (default 1); the last round and a stop always write one. */
  checkpointEvery?: number;
  logEvery: number;
  threads: number;
  /** Training engine: native, ort or auto (default). */
  engine?: EngineChoice;
  /** Benches only: the engine to train with instead of `engine` (bench/loop.ts: one that does no work). */
  openEngine?: TrainSessionOptions['openEngine'];
}

export interface TrainHooks {
  /** A round starts: its number, the shard it trains on and how many images. */
  roundStart?(round: number, shard: string, images: number): void;
  step?(imagesDone: number, loss: number): void;
  roundEnd?(summary: string): void;
  info?(line: string): void;
  /** A warning line (a damaged checkpoint passed over, a stale lock taken over); defaults to info. */
  warn?(line: string): void;
  /** A checkpoint is in place, `seconds` after the loop handed it to the writer thread. */
  checkpointWritten?(info: CheckpointInfo, seconds: number): void;
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
  writer: CheckpointWriter;
  /** Seconds the loop waited for the last checkpoint: in all, and for a previous write still in flight. */
  blocked: number;
  waited: number;
  /** curves.svg: when it was last drawn, with what holdout, and whether rounds since are not in it. */
  curves: { at: number; context: CurveContext; pending: boolean };
}

/** curves.svg is redrawn at most this often (a head's rounds take milliseconds) and after the last round. */
const CURVES_EVERY_MS = 2000;

async function drawCurves(L: Loop, now: boolean): Promise<void> {
  if (!L.curves.pending || (!now && performance.now() - L.curves.at < CURVES_EVERY_MS)) return;
  await writeFileAtomic(path.join(L.runDir, 'curves.svg'), curvesSvg(L.log.curves, L.curves.context));
  L.curves = { ...L.curves, at: performance.now(), pending: false };
}

/**
 * Snapshot the state and hand it to the writer thread: the loop goes on while the file is written and
 * hashed. L.last moves to it (and older ones are pruned) once it is in place.
 */
async function checkpointAt(L: Loop, round: number, position: number, metrics?: RoundMetrics): Promise<void> {
  const t0 = performance.now();
  await L.writer.flush();
  L.waited = (performance.now() - t0) / 1000;
  const state = await L.session.getState(L.writer.takeSpare());
  const at = { round, position, metrics, tagsSha256: L.run.tags.sha256, lossScale: L.session.lossScale };
  await L.writer.start(checkpointPayload(L.ckptDir, L.run.model, state, at));
  L.blocked = (performance.now() - t0) / 1000;
}

/** Whether the round that just finished writes a checkpoint (--checkpoint-every; always the last, and on a stop). */
const checkpointDue = (L: Loop, round: number): boolean =>
  round % (L.opts.checkpointEvery ?? 1) === 0 || round >= L.opts.rounds || L.hooks.stopRequested?.() === true;

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
  const px = inputOf(run.model).bytes;
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
      await L.writer.flush(); // a checkpoint still being written holds finite weights: name it
      throw new Error(
        `loss became ${loss} at round ${round}, step ${session.steps}; stopped without saving the diverged state. The newest checkpoint, ${L.last.file}, holds finite weights: lower the learning rate (lr in ${path.join(L.runDir, 'config.json')}) or check the data, then --resume from it`,
      );
    }
    e.lossSum += loss;
    e.steps++;
    e.images += n;
    L.imagesSeen += n;
    const done = position * b + e.images;
    L.hooks.step?.(done, loss);
    if (session.steps % L.opts.logEvery === 0)
      await L.log.write({
        type: 'step',
        round,
        step: session.steps,
        loss,
        imgPerS: done / ((performance.now() - t0) / 1000),
        lr: run.lr,
      });
    if (L.hooks.stopRequested?.() && (pos + 1) * b < order.length) {
      await checkpointAt(L, round, pos + 1);
      await L.writer.flush();
      await L.log.write({
        type: 'interrupted',
        round,
        position: pos + 1,
        step: session.steps,
        checkpoint: path.basename(L.last.file),
      });
      e.interrupted = true;
      break;
    }
  }
  // The partial batch left at the end (fewer than the batch size) is dropped, as Keras's fit does not:
  // count it as done so the round's progress reaches 100%.
  if (!e.interrupted) L.hooks.step?.(shard.count, e.steps ? e.lossSum / e.steps : NaN);
  e.seconds = (performance.now() - t0) / 1000;
  return e;
}

/** After an epoch: holdout metrics, the round's checkpoint, retention, log line, curves, summary. */
async function finishRound(L: Loop, round: number, entry: ShardEntry, e: Epoch, slot: ShardSlot): Promise<void> {
  const held = await evaluateHoldout(L.session, L.shardsDir, L.index, slot);
  const metrics = held?.metrics;
  const due = checkpointDue(L, round);
  if (due) await checkpointAt(L, round, -1, metrics);
  const trainLoss = e.steps ? e.lossSum / e.steps : NaN;
  const imgPerS = e.images / e.seconds;
  // Share of the round's training time spent inside the runtime's steps (the rest: batches, logging).
  const runtimeShare = e.stepSeconds / e.seconds;
  await L.log.write({
    type: 'round',
    round,
    shard: entry.file,
    step: L.session.steps,
    trainLoss,
    ...metrics,
    imgPerS,
    imagesSeen: L.imagesSeen,
    lr: L.run.lr,
    seconds: e.seconds,
    runtimeShare,
    checkpointBlockedSeconds: due ? L.blocked : 0,
    checkpointWaitSeconds: due ? L.waited : 0,
    ...(L.session.lossScale ? { lossScale: L.session.lossScale.scale, skippedSteps: L.session.lossScale.skipped } : {}),
  });
  L.log.curves.push({
    round,
    images: L.imagesSeen,
    trainLoss,
    holdoutLoss: metrics?.holdoutLoss ?? NaN,
    map: metrics?.map ?? NaN,
  });
  L.curves = { ...L.curves, context: { holdout: held?.images ?? 0, baseMap: held?.baseMap }, pending: true };
  await drawCurves(L, round >= L.opts.rounds);
  L.hooks.roundEnd?.(
    `round ${round}/${L.opts.rounds} (${entry.file}): train loss ${trainLoss.toFixed(4)}` +
      (metrics
        ? `, holdout loss ${metrics.holdoutLoss.toFixed(4)}, mAP ${metrics.map.toFixed(3)}, micro-F1 ${metrics.microF1.toFixed(3)}`
        : ', no holdout') +
      `, ${imgPerS.toFixed(1)} img/s`,
  );
}

/** Rounds from `round` (batch `position`) to opts.rounds; curves.svg drawn with the last of them. */
async function trainRounds(L: Loop, round: number, position: number): Promise<TrainResult['status']> {
  const status = await roundsFrom(L, round, position);
  await drawCurves(L, true);
  return status;
}

/** The rounds, the next shard read while one trains. */
async function roundsFrom(L: Loop, round: number, position: number): Promise<TrainResult['status']> {
  const trainShards = L.index.shards.filter((s) => s.split === 'train');
  // Two slots of shard memory, alternating by round: the shard being trained and the next one being
  // read. Holdout shards are read into the current round's slot once its epoch is done.
  const slots = [new ShardSlot(), new ShardSlot()];
  const slotFor = (r: number): ShardSlot => slots[r % 2]!;
  const load = (r: number): Promise<Shard> =>
    readShard(L.shardsDir, shardForRound(L.run.seed, r, trainShards), L.index, slotFor(r));
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
    const stop = earlyStop(L.log.curves, round, L.opts.patience ?? 0, L.run.best ?? 'map');
    if (stop) return (L.hooks.info?.(stop), 'done');
  }
  return 'done';
}

/** Create the run folder if needed (remembering whether we made it) and take its lock. */
async function lockRunFolder(runDir: string, warn: (l: string) => void): Promise<{ lock: FolderLock; made: boolean }> {
  const made = !existsSync(runDir);
  await makeFolder(runDir, '--out');
  try {
    return { lock: await lockFolder(runDir, `alt-i2v-ort train (pid ${process.pid})`, warn), made };
  } catch (err) {
    if (made) await rmdir(runDir).catch(() => undefined);
    throw err;
  }
}

export async function trainRun(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const index = await readShardIndex(opts.shards);
  if (!index.shards.some((s) => s.split === 'train'))
    throw new UsageError(`Expected training shards in ${JSON.stringify(opts.shards)} but its index.json lists none`);
  if (index.embedding) await checkHeadTags(opts.shards, index, (l) => (hooks.warn ?? hooks.info)?.(l));
  const runDir = path.resolve(opts.out);
  const warn = (l: string): void => (hooks.warn ?? hooks.info)?.(l);
  const { lock, made } = await lockRunFolder(runDir, warn);
  let session: TrainSession | undefined;
  let started = false;
  let L: Loop | undefined;
  const writer = new CheckpointWriter(async (info, seconds) => {
    L!.last = info;
    hooks.checkpointWritten?.(info, seconds);
    await pruneCheckpoints(path.join(runDir, 'checkpoints'), opts.keep, L?.run.best ?? 'map');
  });
  try {
    const opened = await openRun(opts, index, runDir, warn, (l) => hooks.info?.(l));
    const { run, initial, round, position, from, precision } = opened;
    if (precision === 'tf32' && opts.device !== 'cuda')
      throw new UsageError(
        'Expected --device cuda to resume this run: it trains in tf32, a mode of NVIDIA tensor cores',
      );
    session = await TrainSession.create(run.model, initial, {
      device: opts.device,
      seed: run.seed,
      intraOpThreads: opts.threads,
      engine: opts.engine,
      tf32: precision === 'tf32',
      fp16: precision === 'fp16',
      lossScale: from?.lossScale,
      openEngine: opts.openEngine,
    });
    hooks.info?.(session.engineNote);
    if (precision === 'fp16' && opts.device === 'cpu')
      hooks.info?.(
        'precision fp16 on the CPU: ONNX Runtime runs the float16 nodes through float32 kernels, so it is slower than fp32; use it to check a run, and train with it on CUDA',
      );
    const ckptDir = path.join(runDir, 'checkpoints');
    const log = await RunLog.open(runDir, from?.step, warn);
    L = {
      opts,
      hooks,
      run,
      index,
      shardsDir: path.resolve(opts.shards),
      runDir,
      ckptDir,
      session,
      log,
      last: from!,
      imagesSeen: log.imagesSeen,
      writer,
      blocked: 0,
      waited: 0,
      curves: { at: 0, context: { holdout: 0 }, pending: false },
    };
    const loop = L;
    // A new run keeps its starting point, so a NaN in round 1 still leaves a good checkpoint.
    if (!from)
      await writeNewRun(runDir, run, async () => {
        await checkpointAt(loop, 0, -1);
        await writer.flush();
        return loop.last;
      });
    started = true;
    const status = await trainRounds(loop, round, position);
    await writer.flush();
    return { status, last: loop.last, best: bestCheckpoint(await listCheckpoints(ckptDir), run.best ?? 'map') };
  } finally {
    await writer.close().catch(() => undefined); // a failure not thrown yet was thrown by flush() above
    session?.dispose();
    await lock.release();
    // A run that never started leaves no folder behind (rmdir only removes it when empty).
    if (made && !started) await rmdir(runDir).catch(() => undefined);
  }
}
