// `pred --part`: which part of the inputs this process tags. `I/N` as given, or `auto` from the job
// array that started it: a Slurm job array (SLURM_ARRAY_TASK_ID with its MIN, MAX, STEP and COUNT), or a
// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, counted from 0, with the part count from --parts or
// JOB_COMPLETIONS, which the Job's manifest sets to its `completions`).
import { UsageError } from '../util/errors.js';
import type { Part } from './tagging.js';

const whole = (env: NodeJS.ProcessEnv, name: string): number | undefined => {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text))
    throw new UsageError(`Expected a whole number in ${name} for --part auto but it holds ${JSON.stringify(text)}`);
  return Number(text);
};

/**
 * The part `text` names (undefined: all inputs), and for `auto` where it came from, in words. `parts`
 * is --parts, the count of a Kubernetes Indexed Job's parts.
 */
export function partFrom(
  text: string | undefined,
  parts?: number,
  env: NodeJS.ProcessEnv = process.env,
): { part?: Part; from?: string } {
  if (text === undefined) return {};
  if (text.trim() === 'auto') return autoPart(parts, env);
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m || Number(m[2]) < 1 || Number(m[1]) < 1 || Number(m[1]) > Number(m[2]))
    throw new UsageError(`Expected I/N with 1 ≤ I ≤ N, or auto, for --part but received ${JSON.stringify(text)}`);
  return { part: { index: Number(m[1]), count: Number(m[2]) } };
}

function autoPart(parts: number | undefined, env: NodeJS.ProcessEnv): { part: Part; from: string } {
  const task = whole(env, 'SLURM_ARRAY_TASK_ID');
  if (task !== undefined) {
    const min = whole(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const step = whole(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
    const max = whole(env, 'SLURM_ARRAY_TASK_MAX');
    const count = whole(env, 'SLURM_ARRAY_TASK_COUNT') ?? (max === undefined ? undefined : (max - min) / step + 1);
    const index = (task - min) / step + 1;
    if (count === undefined || !Number.isInteger(count) || !Number.isInteger(index) || index < 1 || index > count)
      throw new UsageError(
        `Expected a Slurm job array of evenly spaced tasks for --part auto but SLURM_ARRAY_TASK_ID=${task} with MIN ${min}, STEP ${step}, MAX ${max ?? 'unset'}, COUNT ${count ?? 'unset'} does not give one; use --part I/N`,
      );
    return { part: { index, count }, from: `Slurm job array task ${task} of ${count} (SLURM_ARRAY_TASK_ID)` };
  }
  const k8s = whole(env, 'JOB_COMPLETION_INDEX');
  if (k8s !== undefined) {
    const count = parts ?? whole(env, 'JOB_COMPLETIONS');
    if (count === undefined || count < 1)
      throw new UsageError(
        'Expected --parts N (or JOB_COMPLETIONS) for --part auto in a Kubernetes Indexed Job: JOB_COMPLETION_INDEX says which part, not how many',
      );
    if (k8s >= count)
      throw new UsageError(`Expected JOB_COMPLETION_INDEX below ${count} parts for --part auto but it is ${k8s}`);
    return {
      part: { index: k8s + 1, count },
      from: `Kubernetes Indexed Job completion ${k8s} of ${count} (JOB_COMPLETION_INDEX, counted from 0)`,
    };
  }
  throw new UsageError(
    'Expected a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) for --part auto but neither is set; use --part I/N',
  );
}
