import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { int8Line, int8Support } from '../../src/runtime/cpu.js';
import { runtimeReport } from '../../src/runtime/providers.js';
import { cli } from '../helpers.js';
import { placementLine, placementOf } from '../../src/train/placement.js';

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

// Flags lines as Linux prints them (trimmed): Sapphire Rapids (AMX + AVX-512 VNNI), Alder Lake (AVX-VNNI
// without AVX-512), Zen 2 (AVX2 only).
const SPR = 'flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n';
const ADL = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 avx_vnni\n';
const ZEN2 = 'flags\t\t: fpu sse2 avx2 sha_ni\n';

test('int8 support is read from the cpuinfo flags, and doctor says it for this CPU', async () => {
  assert.deepEqual(int8Support(SPR), { flags: ['amx_int8', 'avx512_vnni', 'avx512bw', 'avx2'], vnni: true, amx: true });
  assert.deepEqual(int8Support(ADL), { flags: ['avx_vnni', 'avx2'], vnni: true, amx: false });
  assert.deepEqual(int8Support(ZEN2), { flags: ['avx2'], vnni: false, amx: false });
  assert.deepEqual(int8Support(undefined), { vnni: false, amx: false });
  assert.match(int8Line(int8Support(SPR)), /AMX kernels$/);
  assert.match(int8Line(int8Support(ADL)), /: avx_vnni avx2: .*VNNI kernels$/);
  assert.match(int8Line(int8Support(ZEN2)), /^int8 instructions: avx2: no VNNI or AMX/);
  assert.match(int8Line(int8Support(undefined)), /unknown/);
  // This machine, read independently of the parser: does any line of /proc/cpuinfo name a VNNI flag?
  const r = await cli('doctor');
  const line = r.out.find((l) => l.startsWith('int8 instructions: '));
  if (!existsSync('/proc/cpuinfo')) return assert.match(line ?? '', /unknown/);
  const vnni = /\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  assert.match(line ?? '', vnni ? /(VNNI|AMX) kernels$/ : /no VNNI or AMX/);
});

test('doctor --plan runs every training and export graph once on the device: on the CPU every node is its own', async () => {
  const r = await cli('doctor', '--plan');
  assert.equal(r.code, 0, r.err.join('\n'));
  const plan = r.out.filter((l) => l.startsWith('plan on cpu: '));
  assert.deepEqual(
    plan.map((l) => l.slice('plan on cpu: '.length).split(':')[0]),
    [
      'train step, float32',
      'train step, float16',
      'eval',
      'int8 calibration',
      'inference export, float32',
      'inference export, float16',
    ],
  );
  for (const l of plan) assert.match(l, /: [1-9]\d* nodes, off the device: none; host ↔ device copies: 0$/);
});

test('a placement names the nodes another provider ran, by op, and counts the copies apart', () => {
  const run = (op: string, provider: string) => ({
    node: `${op}_${provider}`,
    op,
    provider,
    us: 10,
    inputs: [],
    outputs: [],
  });
  const g = placementOf(
    'g',
    [
      run('Conv', 'CUDAExecutionProvider'),
      run('Shape', 'CPUExecutionProvider'),
      run('Shape', 'CPUExecutionProvider'),
      run('NonZero', 'CPUExecutionProvider'),
      run('MemcpyToHost', 'CUDAExecutionProvider'),
      run('MemcpyFromHost', 'CUDAExecutionProvider'),
    ],
    'cuda',
  );
  assert.deepEqual(g.providers, { CUDAExecutionProvider: 3, CPUExecutionProvider: 3 });
  assert.equal(g.copies, 2);
  assert.equal(
    placementLine(g),
    'g: 6 nodes, off the device: 2× Shape (CPUExecutionProvider), NonZero (CPUExecutionProvider); host ↔ device copies: 2',
  );
  assert.equal(placementOf('g', [run('Conv', 'CPUExecutionProvider')], 'cpu').offDevice.length, 0);
});
