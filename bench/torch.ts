// `npm run bench -- torch [--with-reference]`: the full-size model (VGG16 + the seed head, random init,
// batch 8) against PyTorch CPU in the same run, alternating, median of runs: inference through
// onnxruntime-node, a training step through the native TrainSession. `--with-reference` installs
// Debian's python3-torch first (root, apt); without it the PyTorch side is skipped and said so.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import ort from 'onnxruntime-node';
import os from 'node:os';
import { writeFile, rm } from 'node:fs/promises';
import { TrainSession } from '../src/train/train-session.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { randomBatch } from '../training/gradcheck.js';
import { defaultConfig, initParams } from '../training/model.js';
import { hasPython, median, saveResult, sgemmGflops } from './common.js';

const INFER_GFLOP = 15.8;
const TRAIN_GFLOP = 37;

export async function benchTorch(opts: { quick: boolean; withReference?: boolean }): Promise<Record<string, unknown>> {
  if (opts.withReference && !hasPython(['torch', 'torchvision'])) {
    console.error('torch: installing python3-torch python3-torchvision from Debian (--with-reference)');
    spawnSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision libopenblas0-pthread'], { stdio: 'inherit' });
  }
  const torch = hasPython(['torch', 'torchvision']);
  if (!torch) console.error('torch: PyTorch reference skipped (python3-torch not installed; run with --with-reference)');
  const runs = opts.quick ? 2 : 5;
  const batch = 8;
  const threads = os.availableParallelism();
  const config = defaultConfig({ tags: 5000 });
  const params = initParams(config, 1);
  const tags = Array.from({ length: 5000 }, (_, i) => `t${i}`);
  const modelFile = path.join(os.tmpdir(), 'alt-i2v-bench-torch.onnx');
  await writeFile(modelFile, encodeInferenceModel(config, params, { tags, categories: tags.map(() => 0), pad: 'center', source: 'bench' }));
  const infer = await ort.InferenceSession.create(modelFile, { graphOptimizationLevel: 'all' });
  const trainer = await TrainSession.create(config, { params });
  const data = randomBatch(config, batch, 1);
  const image = new ort.Tensor('uint8', data.images, [batch, 224, 224, 3]);
  // Two warm-up runs each: ONNX Runtime finishes its allocations over the first two.
  for (let w = 0; w < 2; w++) {
    await infer.run({ image });
    await trainer.step(data.images, data.labels, batch, 0.001);
  }
  const ours = { infer: [] as number[], train: [] as number[] };
  const ref = { infer: [] as number[], train: [] as number[] };
  let version = '';
  for (let r = 0; r < runs; r++) {
    let t = performance.now();
    await infer.run({ image });
    ours.infer.push((performance.now() - t) / 1000);
    t = performance.now();
    await trainer.step(data.images, data.labels, batch, 0.001);
    ours.train.push((performance.now() - t) / 1000);
    if (torch) {
      const p = spawnSync('/usr/bin/python3', [path.resolve('bench', 'torch_ref.py'), String(threads), String(batch), '5000', '5000'], { encoding: 'utf8' });
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
  const gflops = await sgemmGflops();
  const rate = (xs: number[]): number => batch / median(xs);
  const row = {
    batch, threads, sgemmGflops: gflops, torch: version || null,
    inferImgPerS: rate(ours.infer), trainImgPerS: rate(ours.train),
    torchInferImgPerS: torch ? rate(ref.infer) : null, torchTrainImgPerS: torch ? rate(ref.train) : null,
    inferOfLimit: (rate(ours.infer) * INFER_GFLOP) / gflops, trainOfLimit: (rate(ours.train) * TRAIN_GFLOP) / gflops,
    runs: { ours, ref },
  };
  const f = await saveResult('torch', row);
  const vs = (a: number, b: number | null): string => (b ? `${(a / b).toFixed(2)}×` : 'skipped');
  console.log(`| inference, full VGG16 + head, batch 8, CPU | ours ${row.inferImgPerS.toFixed(2)} img/s | PyTorch ${version || '-'} ${row.torchInferImgPerS?.toFixed(2) ?? 'skipped'} img/s | ${vs(row.inferImgPerS, row.torchInferImgPerS)} | ${(100 * row.inferOfLimit).toFixed(0)}% of ${gflops.toFixed(0)} GFLOP/s sgemm |`);
  console.log(`| train step, full VGG16 + head, 8 convs frozen, batch 8, CPU | ours ${row.trainImgPerS.toFixed(2)} img/s | PyTorch ${version || '-'} ${row.torchTrainImgPerS?.toFixed(2) ?? 'skipped'} img/s | ${vs(row.trainImgPerS, row.torchTrainImgPerS)} | ${(100 * row.trainOfLimit).toFixed(0)}% of ${gflops.toFixed(0)} GFLOP/s sgemm |`);
  console.log(`  results in ${f}`);
  return row;
}
