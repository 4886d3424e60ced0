// `npm run bench -- torch [--with-reference]`: the full-size model (VGG16 + the seed head, random init,
// batch 8) against PyTorch CPU in the same run, alternating turns of 3 steps, medians: inference through
// onnxruntime-node, a training step through the native TrainSession. `--with-reference` installs
// Debian's python3-torch first (root, apt); without it the PyTorch side is skipped and said so.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import ort from 'onnxruntime-node';
import os from 'node:os';
import { mkdtemp, readdir, writeFile, rm } from 'node:fs/promises';
import { opShares, readProfile, type OpShare } from '../src/runtime/profile.js';
import { inferenceFlops, trainStepFlops } from '../training/flops.js';
import { buildTrainGraph } from '../training/graphs.js';
import { TrainSession } from '../src/train/train-session.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { batchFeeds, randomBatch } from '../training/gradcheck.js';
import { defaultConfig, initParams, paramSpecs, type ModelConfig } from '../training/params.js';
import { hasPython, KEEP_MEMORY, machineLimit, median, ofLimit, saveResult } from './common.js';
import { sessionThreads } from '../src/runtime/threads.js';

/**
 * The train graph's ops by time (shared with `tiny`), from ONNX Runtime's profiler: the graph and
 * kernels the native engine runs on the CPU, where Adam follows as its in-place pass (not profiled
 * here); last of 3 steps.
 */
export async function profileTrainStep(
  c: ModelConfig,
  params: Map<string, Float32Array>,
  batch: number,
): Promise<OpShare[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-profile-'));
  // The train graph as the native CPU engine loads it: frozen convs baked in, Adam left to its in-place pass.
  const frozen = new Map(
    paramSpecs(c)
      .filter((spec) => spec.role === 'frozen')
      .map((spec) => [spec.name, params.get(spec.name)!]),
  );
  const s = await ort.InferenceSession.create(buildTrainGraph(c, { frozen }).encode(), {
    intraOpNumThreads: sessionThreads(0),
    graphOptimizationLevel: 'all',
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'step'),
  });
  const data = randomBatch(c, batch, 2);
  const feeds = batchFeeds(c, data, params, true);
  for (const name of Object.keys(feeds)) if (!s.inputNames.includes(name)) delete feeds[name];
  for (let i = 0; i < 3; i++) await s.run(feeds);
  s.endProfiling();
  await s.release();
  const file = (await readdir(dir)).find((f) => f.endsWith('.json'))!;
  const shares = opShares(await readProfile(path.join(dir, file), { lastRun: true }));
  await rm(dir, { recursive: true, force: true });
  return shares;
}

export async function benchTorch(opts: { quick: boolean; withReference?: boolean }): Promise<Record<string, unknown>> {
  if (opts.withReference && !hasPython(['torch'])) {
    console.error('torch: installing python3-torch from Debian (--with-reference)');
    spawnSync(
      'bash',
      [
        '-c',
        'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread',
      ],
      { stdio: 'inherit' },
    );
  }
  const torch = hasPython(['torch']);
  if (!torch)
    console.error('torch: PyTorch reference skipped (python3-torch not installed; run with --with-reference)');
  const runs = opts.quick ? 1 : 3;
  const batch = 8;
  const threads = os.availableParallelism();
  const config = defaultConfig({ tags: 5000 });
  const params = initParams(config, 1);
  const tags = Array.from({ length: 5000 }, (_, i) => `t${i}`);
  const modelFile = path.join(os.tmpdir(), 'alt-i2v-bench-torch.onnx');
  await writeFile(
    modelFile,
    encodeInferenceModel(config, params, { tags, categories: tags.map(() => 0), pad: 'center', source: 'bench' }),
  );
  const infer = await ort.InferenceSession.create(modelFile, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: sessionThreads(),
  });
  const trainer = await TrainSession.create(config, { params });
  const data = randomBatch(config, batch, 1);
  const image = new ort.Tensor('uint8', data.images, [batch, 224, 224, 3]);
  // Two warm-up runs each: a fresh session's first runs touch new memory.
  for (let w = 0; w < 2; w++) {
    await infer.run({ image });
    await trainer.step(data.images, data.labels, batch, 0.001);
  }
  // Each side runs `steps` in a row per turn and keeps the median (steady state on both sides: on this
  // project's VM, memory left idle while the other side runs comes back slowly on the next touch).
  const steps = 3;
  const timed = async (f: () => Promise<unknown>): Promise<number> => {
    const xs: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await f();
      xs.push((performance.now() - t) / 1000);
    }
    return median(xs);
  };
  const ours = { infer: [] as number[], train: [] as number[] };
  const ref = { infer: [] as number[], train: [] as number[] };
  let version = '';
  for (let r = 0; r < runs; r++) {
    ours.infer.push(await timed(() => infer.run({ image })));
    ours.train.push(await timed(() => trainer.step(data.images, data.labels, batch, 0.001)));
    if (torch) {
      const args = [
        String(threads),
        String(batch),
        '5000',
        '5000',
        config.widths.join(','),
        '224',
        String(config.freeze),
        String(steps),
      ];
      const p = spawnSync('/usr/bin/python3', [path.resolve('bench', 'torch_ref.py'), ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...KEEP_MEMORY },
      });
      if (p.status !== 0) throw new Error(`PyTorch reference failed: ${p.stderr}`);
      const j = JSON.parse(p.stdout.trim().split('\n').at(-1)!);
      ref.infer.push(j.infer_s);
      ref.train.push(j.train_s);
      version = j.torch;
    }
  }
  trainer.dispose();
  await infer.release();
  await rm(modelFile, { force: true });
  const limit = await machineLimit();
  const rate = (xs: number[]): number => batch / median(xs);
  const flop = { infer: inferenceFlops(config), train: trainStepFlops(config) };
  // The profile takes a minute more (a fresh session's first steps): the full run only.
  if (!opts.quick) console.error('torch: profiling the train graph (3 steps through onnxruntime-node)');
  const profile = opts.quick ? [] : await profileTrainStep(config, params, batch);
  const row = {
    batch,
    threads,
    limit,
    gflopPerImage: { infer: flop.infer / 1e9, train: flop.train / 1e9 },
    torch: version || null,
    inferImgPerS: rate(ours.infer),
    trainImgPerS: rate(ours.train),
    torchInferImgPerS: torch ? rate(ref.infer) : null,
    torchTrainImgPerS: torch ? rate(ref.train) : null,
    profile,
    runs: { ours, ref },
  };
  const f = await saveResult('torch', row);
  const vs = (a: number, b: number | null): string => (b ? `${(a / b).toFixed(2)}×` : 'skipped');
  console.log(
    `| inference, full VGG16 + head, batch 8, CPU (${(flop.infer / 1e9).toFixed(1)} GFLOP/img) | ours ${row.inferImgPerS.toFixed(2)} img/s | PyTorch ${version || '-'} ${row.torchInferImgPerS?.toFixed(2) ?? 'skipped'} img/s | ${vs(row.inferImgPerS, row.torchInferImgPerS)} | ${ofLimit(row.inferImgPerS, flop.infer, limit)} |`,
  );
  console.log(
    `| train step, full VGG16 + head, 8 convs frozen, batch 8, CPU (${(flop.train / 1e9).toFixed(1)} GFLOP/img) | ours ${row.trainImgPerS.toFixed(2)} img/s | PyTorch ${version || '-'} ${row.torchTrainImgPerS?.toFixed(2) ?? 'skipped'} img/s | ${vs(row.trainImgPerS, row.torchTrainImgPerS)} | ${ofLimit(row.trainImgPerS, flop.train, limit)} |`,
  );
  const total = profile.reduce((a, p) => a + p.ms, 0);
  if (profile.length)
    console.log(
      `  train graph profile (${total.toFixed(0)} ms in ops; Adam runs after it, in place): ${profile
        .slice(0, 8)
        .map(
          (p) =>
            `${p.op} ${(100 * p.share).toFixed(0)}%${p.gflop > 0 ? ` (${(p.gflop / (p.ms / 1000)).toFixed(0)} GFLOP/s)` : ''}`,
        )
        .join(', ')}`,
    );
  console.log(`  results in ${f}`);
  return row;
}
