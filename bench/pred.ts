// `npm run bench -- pred`: end-to-end `pred` on a folder of 850×1200 JPEGs with the full-size model
// (VGG16 + the seed head, random init, batch 8) against the bare InferenceSession on ready tensors,
// alternating, median of runs (PyTorch's inference is the `torch` bench's row).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { runCli } from '../src/cli/index.js';
import { preprocessImage } from '../src/data/images.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { defaultConfig, initParams } from '../training/model.js';
import { median, saveResult, sgemmGflops } from './common.js';
import { makeJpegs } from './pairs.js';

const INFER_GFLOP = 15.8;

export async function benchPred(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const count = opts.quick ? 32 : 48;
  const runs = opts.quick ? 2 : 5;
  const data = path.resolve('bench', 'data', `jpeg-850x1200-${count}`);
  await makeJpegs(data, count);
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-pred');
  await mkdir(tmp, { recursive: true });
  const modelFile = path.join(tmp, 'vgg16.onnx');
  const config = defaultConfig({ tags: 5000 });
  const tags = Array.from({ length: 5000 }, (_, i) => `tag_${i}`);
  await writeFile(modelFile, encodeInferenceModel(config, initParams(config, 1), { tags, categories: tags.map(() => 0), pad: 'center', source: 'bench' }));

  // Bare: the same model on pre-made tensors, batches of 8.
  const session = await ort.InferenceSession.create(modelFile, { graphOptimizationLevel: 'all' });
  const px = 224 * 224 * 3;
  const tensors: Uint8Array[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = new Uint8Array(8 * px);
    for (let j = 0; j < 8; j++) batch.set(await preprocessImage(path.join(data, `${i + j}.jpg`), 'x', { size: 224, pad: 'center', maxPixels: 1e8 }), j * px);
    tensors.push(batch);
  }
  for (let w = 0; w < 2; w++) await session.run({ image: new ort.Tensor('uint8', tensors[0]!, [8, 224, 224, 3]) });

  const bare: number[] = [];
  const ours: number[] = [];
  // pred reports its own rate after the model has loaded (loading is paid once per invocation).
  const loads: number[] = [];
  let summary = '';
  const quiet = { out: () => undefined, err: (l: string) => void (summary = l), tty: false };
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    for (const b of tensors) await session.run({ image: new ort.Tensor('uint8', b, [8, 224, 224, 3]) });
    bare.push(count / ((performance.now() - t) / 1000));
    const code = await runCli(['pred', data, '--model', modelFile, '--batch', '8', '--format', 'jsonl'], quiet);
    if (code !== 0) throw new Error(`pred exited ${code}`);
    const m = /^pred: (\d+) images in [\d.]+ s, ([\d.]+) img\/s \(model loaded in ([\d.]+) s\)$/.exec(summary);
    if (!m || Number(m[1]) !== count) throw new Error(`unexpected pred summary: ${summary}`);
    ours.push(Number(m[2]));
    loads.push(Number(m[3]));
  }
  const loadSeconds = median(loads);
  await session.release();
  await rm(tmp, { recursive: true, force: true });
  const gflops = await sgemmGflops();
  const row = { images: count, batch: 8, sgemmGflops: gflops, ofLimit: (median(ours) * INFER_GFLOP) / gflops, predImgPerS: median(ours), bareImgPerS: median(bare), ratio: median(ours) / median(bare), modelLoadSeconds: loadSeconds, runs: { ours, bare } };
  const f = await saveResult('pred', row);
  console.log(`| pred, full VGG16, 850×1200 JPEG folder, batch 8, CPU | ${row.predImgPerS.toFixed(2)} img/s (+${loadSeconds.toFixed(1)} s model load) | bare InferenceSession on ready tensors ${row.bareImgPerS.toFixed(2)} img/s | ${row.ratio.toFixed(2)}× | ${(100 * row.ofLimit).toFixed(0)}% of ${gflops.toFixed(0)} GFLOP/s sgemm |`);
  console.log(`  results in ${f}`);
  return row;
}
