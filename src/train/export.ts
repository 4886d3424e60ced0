// `export`: the self-contained inference model of a run, from its best checkpoint (by holdout mAP) or
// a named one, written atomically; with `int8`, quantized and calibrated on the run's training shards.
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { encodeInferenceModel, type InferenceMetadata } from '../../training/artifacts.js';
import { calibrate } from './export-ranges.js';
import { bestCheckpoint, listCheckpoints, nonFinite, readCheckpoint, type CheckpointInfo } from './checkpoint.js';
import { readRunConfig, type RunConfig } from './run-config.js';

export interface ExportOptions {
  checkpoint?: string;
  /** Write the int8 model, calibrated on `calibrate` images of `shards` (default: the run's). */
  int8?: boolean;
  /** Write the float16 model (GPU inference). */
  fp16?: boolean;
  calibrate?: number;
  shards?: string;
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_CALIBRATION_IMAGES = 256;

/** The state to export: the best checkpoint by holdout mAP (else the newest) or a named one, checked. */
export async function exportState(
  runDir: string,
  run: RunConfig,
  checkpoint?: string,
): Promise<{ state: Awaited<ReturnType<typeof readCheckpoint>>['state']; info: CheckpointInfo }> {
  let chosen: CheckpointInfo | undefined;
  if (checkpoint) chosen = { file: checkpoint, round: -1, position: -1, step: -1 };
  else {
    const list = await listCheckpoints(path.join(runDir, 'checkpoints'));
    chosen = bestCheckpoint(list, run.best ?? 'map') ?? list.at(-1);
    if (!chosen)
      throw new UsageError(
        `Expected checkpoints in ${JSON.stringify(path.join(runDir, 'checkpoints'))} but there are none: train first`,
      );
  }
  const { state, info, tagsSha256 } = await readCheckpoint(chosen.file, run.model);
  if (tagsSha256 !== run.tags.sha256) {
    throw new UsageError(
      `Expected a checkpoint of this run's tags in ${JSON.stringify(chosen.file)} but it was trained with another tags.csv (sha256 ${tagsSha256.slice(0, 12) || 'none'}…, the run's ${run.tags.sha256.slice(0, 12)}…): its outputs would get the wrong tag names`,
    );
  }
  const broken = nonFinite(state.params);
  if (broken)
    throw new UsageError(
      `Expected finite weights in ${JSON.stringify(chosen.file)} but ${broken} holds NaN or infinite values (a diverged run); export another checkpoint with --checkpoint`,
    );
  return { state, info };
}

export async function exportModel(
  runDir: string,
  out: string,
  opts: ExportOptions = {},
): Promise<{ checkpoint: CheckpointInfo; bytes: number; calibrated?: number }> {
  const run = await readRunConfig(runDir);
  if (run.base)
    throw new UsageError(
      `Expected a run of the VGG16 model for this export but ${JSON.stringify(runDir)} is a head taught over ${run.base.model}`,
    );
  const { state, info } = await exportState(runDir, run, opts.checkpoint);
  const mapText = info.metrics ? `, holdout mAP ${info.metrics.map.toFixed(4)}` : '';
  const meta: InferenceMetadata = {
    tags: run.tags.names,
    categories: run.tags.categories,
    pad: run.pad as 'center' | 'topleft',
    source: `${path.resolve(runDir)} ${path.basename(info.file)} (round ${info.round}, step ${info.step}${mapText}), backbone ${run.backbone}`,
    ...(opts.fp16 ? { fp16: true } : {}),
  };
  if (opts.int8) {
    const images = opts.calibrate ?? DEFAULT_CALIBRATION_IMAGES;
    const shards = path.resolve(opts.shards ?? run.shards);
    const cal = await calibrate(run.model, state.params, shards, images, opts.onProgress);
    meta.int8 = { ranges: cal.ranges, images: cal.images, from: shards };
  }
  const bytes = encodeInferenceModel(run.model, state.params, meta);
  await writeFileAtomic(out, bytes);
  return { checkpoint: info, bytes: bytes.length, calibrated: meta.int8?.images };
}
