// Training checkpoints: RUN/checkpoints/round-NNNNNN.safetensors (a finished round) or
// round-NNNNNN-partial.safetensors (interrupted mid-round), holding every parameter (`param/NAME`), Adam
// moments (`adam_m/NAME`, `adam_v/NAME`) and, in metadata, the step, round, position and RNG state.
// Written to a temp name and renamed; loadable by Python's `safetensors`.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  integrityCheck,
  readSafetensors,
  readSafetensorsHeader,
  sha256Hex,
  writeSafetensors,
  type TensorSpec,
} from '../data/safetensors.js';
import { messageOf, UsageError } from '../util/errors.js';
import type { ModelConfig } from '../../training/params.js';
import { paramSpecs } from '../../training/params.js';
import type { TrainState } from './train-session.js';
import { LossScaler, type LossScaleState } from './loss-scaler.js';

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
  /** Dynamic loss scaling's state (float16 training): metadata loss_scale. */
  lossScale?: LossScaleState;
}

export function checkpointName(round: number, partial: boolean): string {
  return `round-${String(round).padStart(6, '0')}${partial ? '-partial' : ''}.safetensors`;
}

const f32 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A checkpoint ready to be written: its file, tensors (views of the state's arrays) and metadata. */
export interface CheckpointPayload {
  file: string;
  tensors: Record<string, TensorSpec>;
  /** Every metadata field but `sha256`, which writeCheckpointFile adds. */
  metadata: Record<string, string>;
  info: CheckpointInfo;
}

const PARAM = 'param/';
const ADAM_M = 'adam_m/';
const ADAM_V = 'adam_v/';

export function checkpointPayload(
  dir: string,
  config: ModelConfig,
  state: Required<TrainState>,
  at: { round: number; position: number; metrics?: RoundMetrics; tagsSha256: string; lossScale?: LossScaleState },
): CheckpointPayload {
  const tensors: Record<string, TensorSpec> = {};
  const specs = paramSpecs(config);
  for (const s of specs)
    tensors[`${PARAM}${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.params.get(s.name)!)] };
  for (const s of specs.filter((x) => x.role === 'trainable')) {
    tensors[`${ADAM_M}${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.m.get(s.name)!)] };
    tensors[`${ADAM_V}${s.name}`] = { dtype: 'F32', shape: s.shape, chunks: [f32(state.v.get(s.name)!)] };
  }
  const file = path.join(dir, checkpointName(at.round, at.position >= 0));
  const metadata = {
    format: CHECKPOINT_FORMAT,
    version: '1',
    step: String(state.step),
    round: String(at.round),
    position: String(at.position),
    rng: JSON.stringify(state.rng),
    config: JSON.stringify(config),
    tags_sha256: at.tagsSha256,
    ...(at.metrics ? { metrics: JSON.stringify(at.metrics) } : {}),
    ...(at.lossScale ? { loss_scale: JSON.stringify(at.lossScale) } : {}),
  };
  const { round, position, metrics, lossScale } = at;
  const info = { file, round, position, step: state.step, metrics, ...(lossScale ? { lossScale } : {}) };
  return { file, tensors, metadata, info };
}

/** Hash the payload's tensors and write the file (atomically: temp name, fsync, rename). */
export async function writeCheckpointFile(p: Pick<CheckpointPayload, 'file' | 'tensors' | 'metadata'>): Promise<void> {
  const sha256 = sha256Hex(Object.values(p.tensors).flatMap((t) => t.chunks));
  await writeSafetensors(p.file, p.tensors, { sha256, ...p.metadata });
}

/** The state arrays a payload's tensors view (after a round trip through the writer thread). */
export function stateOfTensors(tensors: Record<string, TensorSpec>): Required<TrainState> {
  const state: Required<TrainState> = { params: new Map(), m: new Map(), v: new Map(), step: 0, rng: [] };
  for (const [name, t] of Object.entries(tensors)) {
    const c = t.chunks[0]!;
    const a = new Float32Array(c.buffer, c.byteOffset, c.byteLength / 4);
    for (const [prefix, map] of [
      [PARAM, state.params],
      [ADAM_M, state.m],
      [ADAM_V, state.v],
    ] as const)
      if (name.startsWith(prefix)) map.set(name.slice(prefix.length), a);
  }
  return state;
}

/** Write a checkpoint here and now (the training loop hands them to CheckpointWriter instead). */
export async function writeCheckpoint(
  dir: string,
  config: ModelConfig,
  state: Required<TrainState>,
  at: { round: number; position: number; metrics?: RoundMetrics; tagsSha256: string; lossScale?: LossScaleState },
): Promise<CheckpointInfo> {
  const p = checkpointPayload(dir, config, state, at);
  await writeCheckpointFile(p);
  return p.info;
}

/** The typed metadata fields of a checkpoint; the error names the file and the field. */
function parseInfo(file: string, m: Record<string, string>): CheckpointInfo & { rng: number[] } {
  const where = JSON.stringify(file);
  const int = (field: string, min: number): number => {
    const v = Number(m[field]);
    if (m[field] === undefined || !Number.isSafeInteger(v) || v < min)
      throw new UsageError(
        `Expected an integer ≥ ${min} as metadata ${field} of ${where} but it is ${JSON.stringify(m[field])}`,
      );
    return v;
  };
  const json = <T>(field: string, check: (v: unknown) => boolean, what: string): T => {
    let v: unknown;
    try {
      v = JSON.parse(m[field] ?? 'null');
    } catch {
      v = undefined;
    }
    if (!check(v))
      throw new UsageError(
        `Expected ${what} as metadata ${field} of ${where} but it is ${JSON.stringify(m[field])?.slice(0, 60)}`,
      );
    return v as T;
  };
  const rng = json<number[]>(
    'rng',
    (v) => Array.isArray(v) && v.length === 4 && v.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32),
    'an RNG state of 4 uint32 values',
  );
  const metrics =
    m.metrics === undefined
      ? undefined
      : json<RoundMetrics>(
          'metrics',
          (v) => typeof (v as RoundMetrics)?.map === 'number',
          'holdout metrics with a map',
        );
  const lossScale = m.loss_scale === undefined ? undefined : LossScaler.parse(m.loss_scale, file);
  return {
    file,
    round: int('round', 0),
    position: int('position', -1),
    step: int('step', 0),
    metrics,
    rng,
    ...(lossScale ? { lossScale } : {}),
  };
}

/** A checkpoint file that cannot be used, and why: resume passes over it, listing keeps it out. */
export interface BadCheckpoint {
  file: string;
  reason: string;
}

/**
 * Every usable checkpoint of a run, oldest first (by round, then position; finished rounds last within
 * a round), and those whose header or metadata is unusable (a truncated or damaged file).
 */
export async function scanCheckpoints(dir: string): Promise<{ list: CheckpointInfo[]; bad: BadCheckpoint[] }> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /^round-\d{6}(-partial)?\.safetensors$/.test(f));
  } catch {
    return { list: [], bad: [] };
  }
  const list: CheckpointInfo[] = [];
  const bad: BadCheckpoint[] = [];
  for (const f of files) {
    const file = path.join(dir, f);
    try {
      const { rng: _rng, ...info } = parseInfo(file, (await readSafetensorsHeader(file)).metadata);
      list.push(info);
    } catch (err) {
      bad.push({ file, reason: messageOf(err) });
    }
  }
  const order = (c: CheckpointInfo): number => c.round * 1e9 + (c.position < 0 ? 1e9 - 1 : c.position);
  return { list: list.sort((a, b) => order(a) - order(b)), bad };
}

export async function listCheckpoints(dir: string): Promise<CheckpointInfo[]> {
  return (await scanCheckpoints(dir)).list;
}

export async function readCheckpoint(
  file: string,
  config: ModelConfig,
): Promise<{ state: Required<TrainState>; info: CheckpointInfo; tagsSha256: string }> {
  const { header, data } = await readSafetensors(file);
  const m = header.metadata;
  const where = JSON.stringify(file);
  if (m.format !== CHECKPOINT_FORMAT)
    throw new UsageError(
      `Expected an alt-i2v-ort checkpoint in ${where} but its metadata says format ${JSON.stringify(m.format)}`,
    );
  if (m.sha256 && integrityCheck()) {
    const got = sha256Hex([...header.tensors].sort((a, b) => a[1].begin - b[1].begin).map(([name]) => data.get(name)!));
    if (got !== m.sha256)
      throw new UsageError(
        `Expected ${where} to have the SHA-256 its metadata records (${m.sha256.slice(0, 12)}…) but its data hashes to ${got.slice(0, 12)}…: the file is damaged`,
      );
  }
  const { rng, ...info } = parseInfo(file, m);
  let theirs: ModelConfig;
  try {
    theirs = JSON.parse(m.config ?? '{}') as ModelConfig;
  } catch {
    throw new UsageError(`Expected a JSON model config as metadata config of ${where} but it does not parse`);
  }
  for (const k of ['widths', 'imageSize', 'hidden', 'tags', 'freeze', 'dropout'] as const) {
    if (JSON.stringify(theirs[k]) !== JSON.stringify(config[k])) {
      throw new UsageError(
        `Expected a checkpoint of this run's model in ${where} but its ${k} is ${JSON.stringify(theirs[k])}, not ${JSON.stringify(config[k])}`,
      );
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
    step: info.step,
    rng,
  };
  return { state, info, tagsSha256: m.tags_sha256 ?? '' };
}

/** The first parameter holding NaN or ±Infinity, or null when every value is finite. */
export function nonFinite(params: ReadonlyMap<string, Float32Array>): string | null {
  for (const [name, a] of params) for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return name;
  return null;
}

/** The finished-round checkpoint with the best holdout mAP (ties: the later one). */
/** Which holdout metric picks a run's best round: the highest mAP (default), or the lowest loss. */
export type BestBy = 'map' | 'loss';
export const BEST_BY: readonly BestBy[] = ['map', 'loss'];

/** Whether metrics `a` are at least as good as `b` by `by` (a later round wins a tie). */
export const atLeastAsGood = (
  a: Pick<RoundMetrics, 'map' | 'holdoutLoss'>,
  b: Pick<RoundMetrics, 'map' | 'holdoutLoss'>,
  by: BestBy,
): boolean => (by === 'loss' ? a.holdoutLoss <= b.holdoutLoss : a.map >= b.map);

export function bestCheckpoint(list: CheckpointInfo[], by: BestBy = 'map'): CheckpointInfo | undefined {
  let best: CheckpointInfo | undefined;
  for (const c of list)
    if (c.position < 0 && c.metrics && (!best || atLeastAsGood(c.metrics, best.metrics!, by))) best = c;
  return best;
}

/** Keep the last `keep` finished rounds, the best, and a partial newer than all of them; delete the rest. */
export async function pruneCheckpoints(dir: string, keep: number, by: BestBy = 'map'): Promise<void> {
  const list = await listCheckpoints(dir);
  const finished = list.filter((c) => c.position < 0);
  const kept = new Set(finished.slice(-keep).map((c) => c.file));
  const best = bestCheckpoint(list, by);
  if (best) kept.add(best.file);
  const last = list.at(-1);
  if (last) kept.add(last.file);
  for (const c of list) if (!kept.has(c.file)) await rm(c.file, { force: true });
}
