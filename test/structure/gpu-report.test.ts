// The GPU run's report (bench/gpu-report.ts): its table from results shaped as bench/gpu.sh writes
// them, each figure as given, and README's block replaced between its markers and nowhere else.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { gpuReport, withTable } from '../../bench/gpu-report.js';
import { tempDir } from '../helpers.js';

test('the report tabulates each step, the demos’ mAP and writes gpu-DATE.json; README has one block, replaced in place', async () => {
  const dir = await tempDir();
  await mkdir(dir, { recursive: true });
  const row = (batch: number, precision: string, side: string, img: number, tflops: number, peak?: number) => ({
    batch,
    imgPerS: { [side]: img },
    side,
    precision,
    tflops,
    ...(peak === undefined ? {} : { peakPercent: peak }),
  });
  await writeFile(
    path.join(dir, 'native-cuda.json'),
    JSON.stringify({
      date: '2026-12-08T10:00:00.000Z',
      device: 'cuda',
      gpu: 'NVIDIA H200',
      rows: {
        'vgg16-b64': row(64, 'fp32', 'native', 622, 30.1, 44.9),
        'vgg16-b64-fp16': row(64, 'fp16', 'fp16', 2500.25, 121, 12.2),
      },
    }),
  );
  await writeFile(path.join(dir, 'loop-gpu-host.json'), JSON.stringify({ ceiling: 1 }));
  await writeFile(path.join(dir, 'demo-fp32.txt'), 'done: 60 rounds\nholdout mAP 0.377 (26 images)\n');
  await writeFile(path.join(dir, 'demo-fp16.txt'), 'holdout mAP 0.371 (26 images)\n');
  const { table } = await gpuReport(dir);
  const lines = table.split('\n');
  assert.match(lines[0]!, /^\| NVIDIA H200, `bench\/gpu.sh` 2026-12-08: /);
  assert.deepEqual(lines.slice(2), [
    '| vgg16-b64, batch 64, fp32 | 622.0 | 30.1 | 45% |',
    '| vgg16-b64, batch 64, fp16 | 2500.3 | 121.0 | 12% |',
    '| demo holdout mAP, float32 / float16 | 0.377 / 0.371 | | |',
  ]);
  const summary = JSON.parse(await readFile(path.join(dir, 'gpu-2026-12-08.json'), 'utf8'));
  assert.deepEqual(summary.demo, { fp32: 0.377, fp16: 0.371 });
  // With the coverage step's results: each graph's nodes off the GPU (counted by op and provider), copies, top ops.
  const off = { op: 'Shape', node: 'x', provider: 'CPUExecutionProvider' };
  await writeFile(
    path.join(dir, 'coverage-cuda.json'),
    JSON.stringify({
      coverage: [
        { graph: 'train step, float32', nodes: 300, offDevice: [off, off], copies: 3 },
        { graph: 'eval', nodes: 48, offDevice: [], copies: 0 },
      ],
      profile: [
        {
          graph: 'train step VGG16, float16',
          batch: 16,
          top: [
            { op: 'Conv', share: 0.7512 },
            { op: 'Gemm', share: 0.1 },
          ],
        },
      ],
    }),
  );
  const withCoverage = (await gpuReport(dir)).table.split('\n');
  assert.deepEqual(withCoverage.slice(lines.length), [
    '',
    '| graph (tiny model) | nodes | nodes off the GPU | host ↔ device copies |',
    '|---|---|---|---|',
    '| train step, float32 | 300 | 2× Shape (CPUExecutionProvider) | 3 |',
    '| eval | 48 | none | 0 |',
    '',
    '| op profile | the ten ops with the most time, share of the step |',
    '|---|---|',
    '| train step VGG16, float16, batch 16 | Conv 75.1%, Gemm 10.0% |',
  ]);
  assert.equal(JSON.parse(await readFile(path.join(dir, 'gpu-2026-12-08.json'), 'utf8')).coverage.length, 2);
  const readme = await readFile('README.md', 'utf8');
  assert.equal(readme.split('<!-- gpu-run -->').length, 2, 'one block');
  const next = withTable(readme, table);
  assert.ok(next.includes(`<!-- gpu-run -->\n${table}\n<!-- /gpu-run -->`));
  const [before, after] = [readme.split('<!-- gpu-run -->')[0], readme.split('<!-- /gpu-run -->')[1]];
  assert.ok(next.startsWith(before!) && next.endsWith(after!), 'nothing outside the block changes');
});
