// `export`: the self-contained inference model of a run, from its best checkpoint (by holdout mAP) or
// a named one, written atomically.
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { bestCheckpoint, listCheckpoints, nonFinite, readCheckpoint, type CheckpointInfo } from './checkpoint.js';
import { readRunConfig } from './run-config.js';

export async function exportModel(runDir: string, out: string, checkpoint?: string): Promise<{ checkpoint: CheckpointInfo; bytes: number }> {
  const run = await readRunConfig(runDir);
  let chosen: CheckpointInfo | undefined;
  if (checkpoint) chosen = { file: checkpoint, round: -1, position: -1, step: -1 };
  else {
    const list = await listCheckpoints(path.join(runDir, 'checkpoints'));
    chosen = bestCheckpoint(list) ?? list.at(-1);
    if (!chosen) throw new UsageError(`Expected checkpoints in ${JSON.stringify(path.join(runDir, 'checkpoints'))} but there are none: train first`);
  }
  const { state, info, tagsSha256 } = await readCheckpoint(chosen.file, run.model);
  if (tagsSha256 !== run.tags.sha256) {
    throw new UsageError(`Expected a checkpoint of this run's tags in ${JSON.stringify(chosen.file)} but it was trained with another tags.csv (sha256 ${tagsSha256.slice(0, 12) || 'none'}…, the run's ${run.tags.sha256.slice(0, 12)}…): its outputs would get the wrong tag names`);
  }
  const broken = nonFinite(state.params);
  if (broken) throw new UsageError(`Expected finite weights in ${JSON.stringify(chosen.file)} but ${broken} holds NaN or infinite values (a diverged run); export another checkpoint with --checkpoint`);
  const mapText = info.metrics ? `, holdout mAP ${info.metrics.map.toFixed(4)}` : '';
  const bytes = encodeInferenceModel(run.model, state.params, {
    tags: run.tags.names,
    categories: run.tags.categories,
    pad: run.pad as 'center' | 'topleft',
    source: `${path.resolve(runDir)} ${path.basename(info.file)} (round ${info.round}, step ${info.step}${mapText}), backbone ${run.backbone}`,
  });
  await writeFileAtomic(out, bytes);
  return { checkpoint: info, bytes: bytes.length };
}
