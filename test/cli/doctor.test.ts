import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runtimeReport } from '../../src/runtime/providers.js';
import { cli } from '../helpers.js';

test('doctor reports the runtime version and providers', async () => {
  const r = await cli('doctor');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.out[0]!, /^onnxruntime: 1\.29\.0 /);
  assert.match(r.out.join('\n'), /backends: cpu/);
});

test('doctor --gradcheck checks every trainable tensor and passes on cpu', async () => {
  const r = await cli('doctor', '--gradcheck');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.ok(r.out.filter((l) => /max rel error/.test(l)).length >= 20);
  assert.match(r.out.at(-1)!, /^gradcheck: worst \S+, tolerance 0\.002: ok$/);
});

test(
  'doctor --device cuda names the missing provider libraries and the fix',
  { skip: runtimeReport().cudaMissing.length === 0 ? 'CUDA provider libraries installed' : false },
  async () => {
    const r = await cli('doctor', '--device', 'cuda');
    assert.equal(r.code, 1);
    assert.equal(r.err.length, 1);
    assert.match(
      r.err[0]!,
      /CUDA execution provider unavailable: missing .*libonnxruntime_providers_shared\.so.*npm run setup:cuda/,
    );
  },
);

test('doctor --gradcheck exits 1 naming the worst error when a gradient is wrong (one scaled by 1.5 on purpose)', async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['dist/src/cli/main.js', 'doctor', '--gradcheck'], {
    encoding: 'utf8',
    env: { ...process.env, ALT_I2V_GRADCHECK_PERTURB: 'fc1.weight' },
  });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /fc1\.weight +max rel error (\d\.\d+e-1|[1-9]\.\d+e\+0)/);
  assert.match(r.stdout, /gradcheck: worst \S+, tolerance 0\.002: FAILED/);
  assert.match(r.stderr.trim(), /^alt-i2v-ort: gradcheck failed on cpu: worst relative error \S+ exceeds 0\.002$/);
});
