// --part auto: the part from the job array that runs pred, as Slurm and Kubernetes set their variables
// (Slurm's sbatch --array, contiguous or stepped, from 0 or 1; a Kubernetes Indexed Job's 0-based
// JOB_COMPLETION_INDEX with the count given), said in one line; anything else one usage line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { partFrom } from '../../src/predict/part.js';
import { cli } from '../helpers.js';

test('Slurm arrays: --array=1-16, 0-15 and 0-30:2 give parts 1..16 of 16 for their tasks', () => {
  // What sbatch sets for each task of those arrays (sbatch(1), "OUTPUT ENVIRONMENT VARIABLES").
  const slurm = (id: number, min: number, max: number, step: number, count: number): NodeJS.ProcessEnv => ({
    SLURM_ARRAY_TASK_ID: String(id),
    SLURM_ARRAY_TASK_MIN: String(min),
    SLURM_ARRAY_TASK_MAX: String(max),
    SLURM_ARRAY_TASK_STEP: String(step),
    SLURM_ARRAY_TASK_COUNT: String(count),
  });
  for (const [min, max, step] of [
    [1, 16, 1],
    [0, 15, 1],
    [0, 30, 2],
  ] as const) {
    const seen = [];
    for (let id = min; id <= max; id += step) {
      const r = partFrom('auto', undefined, slurm(id, min, max, step, 16));
      assert.equal(r.part!.count, 16);
      assert.match(r.from!, new RegExp(`^Slurm job array task ${id} of 16`));
      seen.push(r.part!.index);
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 16 }, (_, i) => i + 1),
    );
  }
  // Without COUNT (older Slurm): from MIN, MAX and STEP.
  assert.deepEqual(
    partFrom('auto', undefined, { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '8' })
      .part,
    {
      index: 7,
      count: 8,
    },
  );
  // An array with gaps (--array=1,5,9) has no even split: said, with --part I/N as the way out.
  assert.throws(
    () =>
      partFrom('auto', undefined, {
        SLURM_ARRAY_TASK_ID: '5',
        SLURM_ARRAY_TASK_MIN: '1',
        SLURM_ARRAY_TASK_MAX: '9',
        SLURM_ARRAY_TASK_COUNT: '3',
      }),
    /^UsageError: Expected a Slurm job array of evenly spaced tasks for --part auto .*; use --part I\/N$/,
  );
});

test('Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX 0..N−1 with --parts N or JOB_COMPLETIONS; none of either is one line', () => {
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(partFrom('auto', 4, { JOB_COMPLETION_INDEX: String(i) }).part, { index: i + 1, count: 4 });
    assert.deepEqual(partFrom('auto', undefined, { JOB_COMPLETION_INDEX: String(i), JOB_COMPLETIONS: '4' }).part, {
      index: i + 1,
      count: 4,
    });
  }
  assert.throws(
    () => partFrom('auto', undefined, { JOB_COMPLETION_INDEX: '0' }),
    /Expected --parts N \(or JOB_COMPLETIONS\)/,
  );
  assert.throws(
    () => partFrom('auto', 4, { JOB_COMPLETION_INDEX: '4' }),
    /Expected JOB_COMPLETION_INDEX below 4 parts/,
  );
  assert.throws(
    () => partFrom('auto', 4, { JOB_COMPLETION_INDEX: 'x' }),
    /Expected a whole number in JOB_COMPLETION_INDEX/,
  );
  assert.throws(() => partFrom('auto', 4, {}), /neither is set; use --part I\/N$/);
  assert.deepEqual(partFrom('2/5', undefined, {}).part, { index: 2, count: 5 });
  assert.throws(() => partFrom('6/5', undefined, {}), /Expected I\/N with 1 ≤ I ≤ N, or auto, for --part/);
});

test('pred --part auto says which part it tags and why; --parts out of range is one line', async () => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { JOB_COMPLETION_INDEX: '1' });
    const r = await cli('pred', '/nonexistent-dir', '--model', '/nonexistent/m.onnx', '--part', 'auto', '--parts', '3');
    assert.ok(
      r.err.includes('pred: part 2/3: Kubernetes Indexed Job completion 1 of 3 (JOB_COMPLETION_INDEX, counted from 0)'),
      r.err.join('\n'),
    );
    const bad = await cli(
      'pred',
      '/nonexistent-dir',
      '--model',
      '/nonexistent/m.onnx',
      '--part',
      'auto',
      '--parts',
      '0',
    );
    assert.equal(bad.code, 2);
    assert.match(bad.err.at(-1)!, /--parts/);
  } finally {
    delete process.env.JOB_COMPLETION_INDEX;
    Object.assign(process.env, saved);
  }
});
