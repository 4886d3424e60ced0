// `npm run bench -- pred`: end-to-end `pred` on a folder of 850×1200 JPEGs with the full-size model
// (VGG16 + the seed head, random init, batch 8), fp32 and int8 (`export --int8`'s graph, calibrated
// on the same images), each against a bare InferenceSession on ready tensors; all four alternate in
// one loop, medians of runs (PyTorch's inference is the `torch` bench's row).
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { runCli } from '../src/cli/index.js';
import { preprocessImage } from '../src/data/images.js';
import { emptyRanges, widenRanges } from '../src/train/export-ranges.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { inferenceFlops } from '../training/flops.js';
import { buildCalibrationGraph } from '../training/graphs.js';
import { defaultConfig, initParams } from '../training/params.js';
import { sessionThreads } from '../src/runtime/threads.js';
import { intFeatures, machineLimit, median, ofLimit, saveResult } from './common.js';
import { makeJpegs } from './pairs.js';

const quiet = (sink: (l: string) => void) => ({ out: () => undefined, err: sink, tty: false });

/** One `pred` run over `data`: its rate after warm-up, model load and warm-up seconds. */
export async function predOnce(
  data: string,
  model: string,
  count: number,
  batch = 8,
): Promise<{ rate: number; load: number; warm: number }> {
  let summary = '';
  const code = await runCli(
    ['pred', data, '--model', model, '--batch', String(batch), '--format', 'jsonl'],
    quiet((l) => void (summary = l)),
  );
  if (code !== 0) throw new Error(`pred exited ${code}`);
  const m =
    /^pred: (\d+) images in [\d.]+ s, ([\d.]+) img\/s after warm-up \(model loaded in ([\d.]+) s, warmed up in ([\d.]+) s/.exec(
      summary,
    );
  if (!m || Number(m[1]) !== count) throw new Error(`unexpected pred summary: ${summary}`);
  return { rate: Number(m[2]), load: Number(m[3]), warm: Number(m[4]) };
}

async function bareOnce(session: ort.InferenceSession, tensors: Uint8Array[], count: number): Promise<number> {
  const t = performance.now();
  for (const b of tensors) await session.run({ image: new ort.Tensor('uint8', b, [8, 224, 224, 3]) });
  return count / ((performance.now() - t) / 1000);
}

export async function benchPred(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const count = opts.quick ? 32 : 48;
  const runs = opts.quick ? 2 : 5;
  const data = path.resolve('bench', 'data', `jpeg-850x1200-${count}`);
  await makeJpegs(data, count);
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-pred');
  await mkdir(tmp, { recursive: true });
  const config = defaultConfig({ tags: 5000 });
  const params = initParams(config, 1);
  const tags = Array.from({ length: 5000 }, (_, i) => `tag_${i}`);
  const meta = { tags, categories: tags.map(() => 0), pad: 'center' as const, source: 'bench' };
  const files = { fp32: path.join(tmp, 'vgg16.onnx'), int8: path.join(tmp, 'vgg16-int8.onnx') };
  await writeFile(files.fp32, encodeInferenceModel(config, params, meta));

  const px = 224 * 224 * 3;
  const tensors: Uint8Array[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = new Uint8Array(8 * px);
    for (let j = 0; j < 8; j++)
      batch.set(
        await preprocessImage(path.join(data, `${i + j}.jpg`), 'x', { size: 224, pad: 'center', maxPixels: 1e8 }),
        j * px,
      );
    tensors.push(batch);
  }
  // Calibrate as `export --int8` does (min-max over the fp32 graph's ranges), on these images.
  const cal = await ort.InferenceSession.create(buildCalibrationGraph(config, params).encode(), {
    intraOpNumThreads: sessionThreads(),
  });
  const ranges = emptyRanges();
  for (const b of tensors) widenRanges(ranges, await cal.run({ image: new ort.Tensor('uint8', b, [8, 224, 224, 3]) }));
  await cal.release();
  await writeFile(
    files.int8,
    encodeInferenceModel(config, params, { ...meta, int8: { ranges, images: count, from: data } }),
  );
  const sizes = { fp32: (await stat(files.fp32)).size, int8: (await stat(files.int8)).size };

  // Bare sessions get the thread count `pred` gives its own (one per core).
  const bare: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: sessionThreads(),
  };
  const sessions = {
    fp32: await ort.InferenceSession.create(files.fp32, bare),
    int8: await ort.InferenceSession.create(files.int8, bare),
  };
  for (const s of Object.values(sessions))
    for (let w = 0; w < 2; w++) await s.run({ image: new ort.Tensor('uint8', tensors[0]!, [8, 224, 224, 3]) });
  const r = {
    bare: [] as number[],
    pred: [] as number[],
    bare8: [] as number[],
    pred8: [] as number[],
    load: [] as number[],
    warm: [] as number[],
  };
  for (let i = 0; i < runs; i++) {
    r.bare.push(await bareOnce(sessions.fp32, tensors, count));
    const p = await predOnce(data, files.fp32, count);
    r.pred.push(p.rate);
    r.load.push(p.load);
    r.warm.push(p.warm);
    r.bare8.push(await bareOnce(sessions.int8, tensors, count));
    r.pred8.push((await predOnce(data, files.int8, count)).rate);
  }
  for (const s of Object.values(sessions)) await s.release();
  await rm(tmp, { recursive: true, force: true });
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
  const limit = await machineLimit();
  const flop = inferenceFlops(config);
  const row = {
    images: count,
    batch: 8,
    gflopPerImage: flop / 1e9,
    limit,
    intFeatures: intFeatures(),
    sizes,
    predImgPerS: m.pred,
    bareImgPerS: m.bare,
    ratio: m.pred / m.bare,
    modelLoadSeconds: m.load,
    warmUpSeconds: m.warm,
    int8: {
      predImgPerS: m.pred8,
      bareImgPerS: m.bare8,
      bareVsFp32: m.bare8 / m.bare,
      predVsFp32: m.pred8 / m.pred,
      predVsBare: m.pred8 / m.bare8,
      smaller: sizes.fp32 / sizes.int8,
    },
    runs: r,
  };
  const f = await saveResult('pred', row);
  console.log(
    `| pred, full VGG16, 850×1200 JPEG folder, batch 8, CPU (rate after load and warm-up) | ${m.pred.toFixed(2)} img/s (+${m.load.toFixed(1)} s model load, ${m.warm.toFixed(1)} s warm-up while decoding) | bare InferenceSession on ready tensors ${m.bare.toFixed(2)} img/s | ${row.ratio.toFixed(2)}× | ${ofLimit(m.pred, flop, limit)} |`,
  );
  console.log(
    `| int8 model on ready tensors, full VGG16, batch 8 (CPU: ${row.intFeatures}) | ${m.bare8.toFixed(2)} img/s | fp32 model on ready tensors ${m.bare.toFixed(2)} img/s | ${row.int8.bareVsFp32.toFixed(2)}× | ${((m.bare8 * flop) / 1e9).toFixed(0)} G int8-op/s |`,
  );
  console.log(
    `| int8 pred end to end, 850×1200 JPEG folder, batch 8 | ${m.pred8.toFixed(2)} img/s | fp32 pred ${m.pred.toFixed(2)} img/s | ${row.int8.predVsFp32.toFixed(2)}× (${row.int8.predVsBare.toFixed(2)}× of its bare session) | |`,
  );
  console.log(
    `| int8 model file, full VGG16 + 5000-tag head | ${(sizes.int8 / 2 ** 20).toFixed(0)} MiB | fp32 ${(sizes.fp32 / 2 ** 20).toFixed(0)} MiB | ${row.int8.smaller.toFixed(2)}× smaller | |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
