// `npm run bench -- loop`: the real `train` loop (shard rotation and prefetch, batch assembly, dropout
// masks, logging, holdout pass, checkpoints) around a null engine whose step returns at once, on the
// full-size model (VGG16, 5000 tags, hidden 5000, 224 px; 165 M parameters, a 2 GB checkpoint).
//  - ceilingImgPerS: images per second the loop feeds when the step costs nothing (goal ≥ 10,000).
//  - checkpointBlockedSeconds: how long one full-model checkpoint stops the loop when no earlier write
//    is in flight: the snapshot into reused buffers and the hand-off (goal < 0.2 s); the hashing and
//    writing (checkpointWriteSeconds) go on beside training.
import { rm } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EngineState, StepOutcome, TrainEngine } from '../src/train/engine.js';
import { modelConfigFor } from '../src/train/run-config.js';
import { trainRun, type TrainOptions } from '../src/train/run.js';
import { numel, paramSpecs } from '../training/params.js';
import { benchTrainOptions, median, saveResult } from './common.js';
import { randomShards } from './trainloop.js';

/** A TrainEngine that holds the state and does no work: a step returns at once. */
class NullEngine implements TrainEngine {
  busy = false;
  loaded = false;
  private state: EngineState = { params: [], m: [], v: [] };
  private tags = 0;

  async load(o: { tags: number; specs: { role: string; shape: number[] }[] }, params: Float32Array[]): Promise<void> {
    this.tags = o.tags;
    const trainable = o.specs.filter((s) => s.role === 'trainable');
    const size = (s: { shape: number[] }): number => s.shape.reduce((a, b) => a * b, 1);
    this.state = {
      params: params.map((p) => p.slice()),
      m: trainable.map((s) => new Float32Array(size(s)).fill(1e-3)),
      v: trainable.map((s) => new Float32Array(size(s)).fill(1e-6)),
    };
    this.loaded = true;
  }
  async setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    this.state = { params, m: m ?? this.state.m, v: v ?? this.state.v };
  }
  async step(): Promise<StepOutcome> {
    return { loss: 0.6931, applied: true };
  }
  async evaluate(_i: Uint8Array, _l: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }> {
    return { loss: 0.6931, probs: new Float32Array(n * this.tags).fill(0.01) };
  }
  /** The copy a device → host download makes: into `into` (reused buffers) or new arrays. */
  async getState(into?: EngineState): Promise<EngineState> {
    const copy = (from: Float32Array[], to?: Float32Array[]): Float32Array[] =>
      to ? (to.forEach((a, i) => a.set(from[i]!)), to) : from.map((a) => a.slice());
    const s = this.state;
    return { params: copy(s.params, into?.params), m: copy(s.m, into?.m), v: copy(s.v, into?.v) };
  }
  dispose(): void {
    this.loaded = false;
  }
}

/** The full model's state copied out of a null engine 3 times each, alternating: into new arrays, into reused ones. */
async function snapshotCopies(): Promise<{ fresh: number[]; reused: number[] }> {
  const config = modelConfigFor('vgg16', 5000, 224, 5000, undefined);
  const specs = paramSpecs(config);
  const e = new NullEngine();
  await e.load(
    { tags: 5000, specs },
    specs.map((s) => new Float32Array(numel(s.shape)).fill(0.5)),
  );
  let into = await e.getState();
  const fresh: number[] = [];
  const reused: number[] = [];
  for (let i = 0; i < 3; i++) {
    let t0 = performance.now();
    const s = await e.getState();
    fresh.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    into = await e.getState(into);
    reused.push((performance.now() - t0) / 1000);
    void s;
  }
  return { fresh, reused };
}

interface RoundLine {
  type: string;
  round: number;
  imgPerS: number;
  checkpointBlockedSeconds: number;
  checkpointWaitSeconds: number;
}

async function runLoop(
  shards: string,
  out: string,
  rounds: number,
  checkpointEvery: number,
  batch: number,
): Promise<{ lines: RoundLine[]; writes: number[] }> {
  await rm(out, { recursive: true, force: true });
  const writes: number[] = [];
  const opts: TrainOptions = {
    ...benchTrainOptions(shards, out, rounds, batch),
    checkpointEvery,
    logEvery: 10,
    openEngine: () => ({ engine: new NullEngine(), kind: 'ort', note: 'engine: null (bench/loop.ts)' }),
  };
  await trainRun(opts, { checkpointWritten: (_info, s) => writes.push(s) });
  const lines = (await readFile(path.join(out, 'log.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RoundLine)
    .filter((e) => e.type === 'round');
  return { lines, writes };
}

export async function benchLoop(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-loop');
  const batch = 64;
  const perShard = opts.quick ? 512 : 2048;
  const shards = path.join(tmp, 'shards');
  await randomShards(shards, 2, perShard, 224, 5000, 64);

  // The feed rate: checkpoints only at the start and the end, so the rounds between measure the loop.
  const feed = await runLoop(shards, path.join(tmp, 'feed'), opts.quick ? 4 : 8, 1000, batch);
  const inner = feed.lines.slice(0, -1).map((l) => l.imgPerS);
  // Checkpoints every round: the first snapshot goes into new memory, later ones into the buffers the
  // previous write handed back; a round shorter than a write waits for it (checkpointWaitSeconds).
  const ck = await runLoop(shards, path.join(tmp, 'ckpt'), 3, 1, batch);
  await rm(tmp, { recursive: true, force: true });
  const snapshot = ck.lines.map((l) => l.checkpointBlockedSeconds - l.checkpointWaitSeconds);
  const copies = await snapshotCopies();
  const row = {
    model: 'vgg16, 5000 tags, hidden 5000, 224 px (165 M parameters, 2 GB checkpoint)',
    batch,
    imagesPerShard: perShard,
    ceilingImgPerS: median(inner),
    roundImgPerS: inner,
    checkpointBlockedSeconds: median(snapshot),
    snapshotSeconds: snapshot,
    snapshotIntoNewMemorySeconds: median(copies.fresh),
    snapshotIntoReusedBuffersSeconds: median(copies.reused),
    checkpointWaitSeconds: ck.lines.map((l) => l.checkpointWaitSeconds),
    checkpointWriteSeconds: ck.writes,
    goals: { ceilingImgPerS: 10_000, checkpointBlockedSeconds: 0.2 },
  };
  const f = await saveResult('loop', row);
  console.log(
    `| train loop, null engine, full model, batch ${batch} | ceiling ${row.ceilingImgPerS.toFixed(0)} img/s (goal ≥ 10,000) | | |`,
  );
  console.log(
    `| checkpoint, 2 GB | loop blocked ${row.checkpointBlockedSeconds.toFixed(3)} s (goal < 0.2) | hashed and written beside training in ${median(ck.writes).toFixed(1)} s | |`,
  );
  console.log(
    `| state copy for a checkpoint, 2 GB, into the buffers the last write handed back | ${row.snapshotIntoReusedBuffersSeconds.toFixed(3)} s | into new memory: ${row.snapshotIntoNewMemorySeconds.toFixed(3)} s | ${(row.snapshotIntoNewMemorySeconds / row.snapshotIntoReusedBuffersSeconds).toFixed(1)}× |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
