// The training loop of `train`: rounds over shards (the seed's "load 15,000 pairs, fit one epoch,
// save"), the next shard read while the current one trains, holdout metrics and a checkpoint per round,
// exact resume (shard order and batch order are functions of the seed and round; dropout RNG and Adam
// state come from the checkpoint), graceful stop on request, and a NaN guard.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { categoryOf } from '../data/tags.js';
import { readShard, readShardIndex, ShardSlot, type Shard, type ShardEntry, type ShardIndexJson } from '../data/shards.js';
import type { Device } from '../runtime/providers.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { Rng } from '../util/rng.js';
import { importBackbone } from '../../training/backbone.js';
import { writeArtifacts } from '../../training/artifacts.js';
import { checkConfig, defaultConfig, initParams, VGG16_TINY_WIDTHS, VGG16_WIDTHS, type ModelConfig } from '../../training/model.js';
import { bestCheckpoint, listCheckpoints, pruneCheckpoints, readCheckpoint, writeCheckpoint, type CheckpointInfo, type RoundMetrics } from './checkpoint.js';
import { curvesSvg, type CurvePoint } from './curves.js';
import { evaluatePredictions, predictOverShards } from '../predict/evaluate.js';
import { TrainSession, type TrainState } from './train-session.js';

export const RUN_FORMAT = 'alt-i2v-ort/run';

export interface RunConfig {
  format: typeof RUN_FORMAT;
  version: 1;
  model: ModelConfig;
  backbone: string;
  seed: number;
  batch: number;
  lr: number;
  shards: string;
  pad: string;
  tags: { sha256: string; names: string[]; categories: number[] };
}

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

/** Model config for a backbone name (or ONNX file) and the model flags. */
export function modelConfigFor(backbone: string, tags: number, imageSize: number, hidden: number, freeze: number | undefined): ModelConfig {
  const tiny = backbone === 'vgg16-tiny';
  const config = defaultConfig({
    tags, imageSize, hidden,
    widths: [...(tiny ? VGG16_TINY_WIDTHS : VGG16_WIDTHS)],
    // The seed froze 8 pretrained convs; a tiny backbone has nothing pretrained to keep.
    freeze: freeze ?? (tiny ? 0 : 8),
  });
  try {
    checkConfig(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return config;
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

/** RUN/config.json, checked to be a run's. */
export async function readRunConfig(runDir: string): Promise<RunConfig> {
  const file = path.join(runDir, 'config.json');
  let run: RunConfig;
  try {
    run = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new UsageError(`Expected a training run with config.json in ${JSON.stringify(runDir)} but ${JSON.stringify(file)} cannot be read`);
  }
  if (run.format !== RUN_FORMAT) throw new UsageError(`Expected ${RUN_FORMAT} in ${JSON.stringify(file)} but found ${JSON.stringify(run.format)}`);
  return run;
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

export async function trainRun(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const index = await readShardIndex(opts.shards);
  const shardsDir = path.resolve(opts.shards);
  const runDir = path.resolve(opts.out);
  const ckptDir = path.join(runDir, 'checkpoints');
  const configFile = path.join(runDir, 'config.json');
  const trainShards = index.shards.filter((s) => s.split === 'train');
  if (trainShards.length === 0) throw new UsageError(`Expected training shards in ${JSON.stringify(opts.shards)} but its index.json lists none`);

  let run: RunConfig;
  let initial: TrainState;
  let round = 1;
  let position = 0;
  if (existsSync(configFile)) {
    if (!opts.resume) throw new UsageError(`Expected a new run folder for --out but ${JSON.stringify(opts.out)} already holds a run; add --resume to continue it or choose another --out`);
    run = await readRunConfig(runDir);
    const last = (await listCheckpoints(ckptDir)).at(-1);
    if (!last) throw new UsageError(`Expected a checkpoint to resume from in ${JSON.stringify(ckptDir)} but there is none`);
    const loaded = await readCheckpoint(last.file, run.model);
    initial = loaded.state;
    if (last.position < 0) round = last.round + 1;
    else {
      round = last.round;
      position = last.position;
    }
    hooks.info?.(`resuming ${runDir} from ${path.basename(last.file)} (round ${round}, batch ${position}, step ${initial.step}); model, seed, batch and lr from config.json`);
  } else {
    if (opts.resume) throw new UsageError(`Expected a run to resume in ${JSON.stringify(opts.out)} but it has no config.json`);
    const isFile = opts.backbone !== 'vgg16' && opts.backbone !== 'vgg16-tiny';
    const model = modelConfigFor(opts.backbone, index.tags.count, index.imageSize, opts.hidden, opts.freeze);
    const params = initParams(model, opts.seed);
    if (isFile) for (const [name, w] of await importBackbone(opts.backbone, model)) params.set(name, w);
    run = {
      format: RUN_FORMAT, version: 1, model, backbone: isFile ? path.resolve(opts.backbone) : opts.backbone, seed: opts.seed, batch: opts.batch, lr: opts.lr,
      shards: shardsDir, pad: index.pad,
      tags: { sha256: index.tags.sha256, names: index.tags.names, categories: index.tags.categories ?? index.tags.names.map(categoryOf) },
    };
    initial = { params };
    await mkdir(ckptDir, { recursive: true });
    await writeArtifacts(path.join(runDir, 'artifacts'), model);
    await writeFileAtomic(configFile, `${JSON.stringify(run, null, 1)}\n`);
  }
  if (run.tags.sha256 !== index.tags.sha256) {
    throw new UsageError(`Expected shards made with this run's tags.csv but ${JSON.stringify(opts.shards)} has tags sha256 ${index.tags.sha256.slice(0, 12)}…, the run ${run.tags.sha256.slice(0, 12)}…`);
  }
  if (run.model.imageSize !== index.imageSize) {
    throw new UsageError(`Expected shards of ${run.model.imageSize}px images for this run but ${JSON.stringify(opts.shards)} has ${index.imageSize}px`);
  }

  const session = await TrainSession.create(run.model, initial, { device: opts.device, seed: run.seed, intraOpThreads: opts.threads });
  const logFile = path.join(runDir, 'log.jsonl');
  const log = (entry: Record<string, unknown>): Promise<void> => appendFile(logFile, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  const curves: CurvePoint[] = [];
  const past = existsSync(logFile) ? (await readFile(logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>) : [];
  for (const e of past) if (e.type === 'round') curves.push({ images: Number(e.imagesSeen), trainLoss: Number(e.trainLoss), holdoutLoss: Number(e.holdoutLoss), map: Number(e.map) });
  let imagesSeen = curves.at(-1)?.images ?? 0;

  try {
    let last = (await listCheckpoints(ckptDir)).at(-1);
    if (!last) {
      // A fresh run keeps its starting point, so a NaN in round 1 still leaves a good checkpoint.
      last = await writeCheckpoint(ckptDir, run.model, await session.getState(), { round: 0, position: -1, tagsSha256: run.tags.sha256 });
    }
    const b = run.batch;
    const k = run.model.tags;
    const px = run.model.imageSize ** 2 * 3;
    const images = new Uint8Array(b * px);
    const labels = new Uint8Array(b * k);
    // Two slots of shard memory, alternating by round: the shard being trained and the next one being
    // read. Holdout shards are read into the current round's slot once its epoch is done.
    const slots = [new ShardSlot(), new ShardSlot()];
    const slotFor = (r: number): ShardSlot => slots[r % 2]!;
    let prefetch: { round: number; shard: Promise<Shard> } | null = null;
    const load = (r: number): Promise<Shard> => readShard(shardsDir, shardForRound(run.seed, r, trainShards), index, slotFor(r));
    for (; round <= opts.rounds; round++, position = 0) {
      const entry = shardForRound(run.seed, round, trainShards);
      const shard = await (prefetch?.round === round ? prefetch.shard : load(round));
      // Read the next shard while this one trains.
      prefetch = round < opts.rounds ? { round: round + 1, shard: load(round + 1) } : null;
      prefetch?.shard.catch(() => undefined); // surfaced when awaited
      const order = batchOrder(run.seed, round, shard.count);
      hooks.roundStart?.(round, entry.file, shard.count);
      const t0 = performance.now();
      let lossSum = 0;
      let steps = 0;
      let stepMs = 0;
      let done = position * b;
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
        stepMs += performance.now() - s0;
        if (!Number.isFinite(loss)) {
          throw new Error(`loss became ${loss} at round ${round}, step ${session.steps}; stopped without saving the diverged state. The last good checkpoint is ${last.file}: resume from it with --resume after lowering the learning rate in ${configFile}`);
        }
        lossSum += loss;
        steps++;
        done += n;
        imagesSeen += n;
        hooks.step?.(done, loss);
        if (session.steps % opts.logEvery === 0) await log({ type: 'step', round, step: session.steps, loss, imgPerS: done / ((performance.now() - t0) / 1000), lr: run.lr });
        if (hooks.stopRequested?.() && (pos + 1) * b < order.length) {
          last = await writeCheckpoint(ckptDir, run.model, await session.getState(), { round, position: pos + 1, tagsSha256: run.tags.sha256 });
          await log({ type: 'interrupted', round, position: pos + 1, step: session.steps, checkpoint: path.basename(last.file) });
          return { status: 'interrupted', last, best: bestCheckpoint(await listCheckpoints(ckptDir)) };
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      // Share of the round's training time spent inside the runtime's steps (the rest: batches, logging).
      const runtimeShare = stepMs / 1000 / seconds;
      const metrics = await evaluateHoldout(session, shardsDir, index, slotFor(round));
      last = await writeCheckpoint(ckptDir, run.model, await session.getState(), { round, position: -1, metrics, tagsSha256: run.tags.sha256 });
      await pruneCheckpoints(ckptDir, opts.keep);
      const trainLoss = steps ? lossSum / steps : NaN;
      const imgPerS = (done - position * b) / seconds;
      await log({ type: 'round', round, shard: entry.file, step: session.steps, trainLoss, ...metrics, imgPerS, imagesSeen, lr: run.lr, seconds, runtimeShare });
      curves.push({ images: imagesSeen, trainLoss, holdoutLoss: metrics?.holdoutLoss ?? NaN, map: metrics?.map ?? NaN });
      await writeFile(path.join(runDir, 'curves.svg'), curvesSvg(curves));
      hooks.roundEnd?.(
        `round ${round}/${opts.rounds} (${entry.file}): train loss ${trainLoss.toFixed(4)}` +
          (metrics ? `, holdout loss ${metrics.holdoutLoss.toFixed(4)}, mAP ${metrics.map.toFixed(3)}, micro-F1 ${metrics.microF1.toFixed(3)}` : ', no holdout') +
          `, ${imgPerS.toFixed(1)} img/s`,
      );
      if (hooks.stopRequested?.()) {
        return { status: 'interrupted', last, best: bestCheckpoint(await listCheckpoints(ckptDir)) };
      }
    }
    return { status: 'done', last, best: bestCheckpoint(await listCheckpoints(ckptDir)) };
  } finally {
    session.dispose();
  }
}
