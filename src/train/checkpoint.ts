// Training checkpoints: RUN/checkpoints/round-NNNNNN.safetensors (a finished round) or
// round-NNNNNN-partial.safetensors (interrupted mid-round), holding every parameter (`param/NAME`), Adam
// moments (`adam_m/NAME`, `adam_v/NAME`) and, in metadata, the step, round, position and RNG state.
// Written to a temp name and renamed; loadable by Python's `safetensors`.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, type TensorSpec } from '../data/safetensors.js';
import { UsageError } from '../util/errors.js';
import type { ModelConfig } from '../../training/model.js';
import { paramSpecs } from '../../training/model.js';
import type { TrainState } from './train-session.js';

export const CHECKPOINT_FORMAT = 'alt-i2v-ort/checkpoint';

export interface RoundMetrics {
  holdoutLoss: number;
  map: number;
  microF1: number;
  macroF1: number;
  mse: number;
}

export interface CheckpointInfo {
  file: string;
  round: number;
  /** Batches done within `round`; -1 when the round finished. */
  position: number;
  step: number;
  metrics?: RoundMetrics;
}

export function checkpointName(round: number, partial: boolean): string {
  return `round-${String(round).padStart(6, '0')}${partial ? '-partial' : ''}.safetensors`;
}

const f32 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export async function writeCheckpoint(
  dir: string,
  config: ModelConfig,
  state: Required<TrainState>,
  at: { round: number; position: number; metrics?: RoundMetrics; tagsSha256: string },
): Promise<CheckpointInfo> {
  const tensors: Record<string, TensorSpec> = {};
  const specs = paramSpecs(config);
  for (const s of specs) tensors[`param/${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.params.get(s.name)!)] };
  for (const s of specs.filter((x) => x.role === 'trainable')) {
    tensors[`adam_m/${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.m.get(s.name)!)] };
    tensors[`adam_v/${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.v.get(s.name)!)] };
  }
  const file = path.join(dir, checkpointName(at.round, at.position >= 0));
  await writeSafetensors(file, tensors, {
    format: CHECKPOINT_FORMAT,
    version: '1',
    step: String(state.step),
    round: String(at.round),
    position: String(at.position),
    rng: JSON.stringify(state.rng),
    config: JSON.stringify(config),
    tags_sha256: at.tagsSha256,
    ...(at.metrics ? { metrics: JSON.stringify(at.metrics) } : {}),
  });
  return { file, round: at.round, position: at.position, step: state.step, metrics: at.metrics };
}

/** Every checkpoint of a run, oldest first (by round, then position; finished rounds last within a round). */
export async function listCheckpoints(dir: string): Promise<CheckpointInfo[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /^round-\d{6}(-partial)?\.safetensors$/.test(f));
  } catch {
    return [];
  }
  const out: CheckpointInfo[] = [];
  for (const f of files) {
    const h = await readSafetensorsHeader(path.join(dir, f));
    const m = h.metadata;
    out.push({ file: path.join(dir, f), round: Number(m.round), position: Number(m.position), step: Number(m.step), metrics: m.metrics ? JSON.parse(m.metrics) : undefined });
  }
  const order = (c: CheckpointInfo): number => c.round * 1e9 + (c.position < 0 ? 1e9 - 1 : c.position);
  return out.sort((a, b) => order(a) - order(b));
}

export async function readCheckpoint(file: string, config: ModelConfig): Promise<{ state: Required<TrainState>; info: CheckpointInfo; tagsSha256: string }> {
  const { header, data } = await readSafetensors(file);
  const m = header.metadata;
  const where = JSON.stringify(file);
  if (m.format !== CHECKPOINT_FORMAT) throw new UsageError(`Expected an alt-i2v-ort checkpoint in ${where} but its metadata says format ${JSON.stringify(m.format)}`);
  const theirs = JSON.parse(m.config ?? '{}') as ModelConfig;
  for (const k of ['widths', 'imageSize', 'hidden', 'tags', 'freeze', 'dropout'] as const) {
    if (JSON.stringify(theirs[k]) !== JSON.stringify(config[k])) {
      throw new UsageError(`Expected a checkpoint of this run's model in ${where} but its ${k} is ${JSON.stringify(theirs[k])}, not ${JSON.stringify(config[k])}`);
    }
  }
  const take = (name: string): Float32Array => {
    const b = data.get(name);
    if (!b) throw new UsageError(`Expected tensor ${name} in ${where} but it is missing`);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  const specs = paramSpecs(config);
  const state: Required<TrainState> = {
    params: new Map(specs.map((s) => [s.name, take(`param/${s.name}`)])),
    m: new Map(specs.filter((s) => s.role === 'trainable').map((s) => [s.name, take(`adam_m/${s.name}`)])),
    v: new Map(specs.filter((s) => s.role === 'trainable').map((s) => [s.name, take(`adam_v/${s.name}`)])),
    step: Number(m.step),
    rng: JSON.parse(m.rng ?? '[]'),
  };
  const info: CheckpointInfo = { file, round: Number(m.round), position: Number(m.position), step: Number(m.step), metrics: m.metrics ? JSON.parse(m.metrics) : undefined };
  return { state, info, tagsSha256: m.tags_sha256 ?? '' };
}

/** The finished-round checkpoint with the best holdout mAP (ties: the later one). */
export function bestCheckpoint(list: CheckpointInfo[]): CheckpointInfo | undefined {
  let best: CheckpointInfo | undefined;
  for (const c of list) if (c.position < 0 && c.metrics && (!best || c.metrics.map >= best.metrics!.map)) best = c;
  return best;
}

/** Keep the last `keep` finished rounds, the best, and a partial newer than all of them; delete the rest. */
export async function pruneCheckpoints(dir: string, keep: number): Promise<void> {
  const list = await listCheckpoints(dir);
  const finished = list.filter((c) => c.position < 0);
  const kept = new Set(finished.slice(-keep).map((c) => c.file));
  const best = bestCheckpoint(list);
  if (best) kept.add(best.file);
  const last = list.at(-1);
  if (last) kept.add(last.file);
  for (const c of list) if (!kept.has(c.file)) await rm(c.file, { force: true });
}
