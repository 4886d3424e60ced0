// `npm run bench -- wd`: `pred` with a stand-in WD tagger (float32 NHWC BGR 448×448 input, 10,861 tags as
// wd-v3, a conv stack of ≈ 9.4 GFLOP per image) on a folder of 850×1200 JPEGs, against the bare
// InferenceSession on ready float32 tensors, alternating, medians of runs.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { runCli } from '../src/cli/index.js';
import { preprocessImage } from '../src/data/images.js';
import { inputTensor, type InputContract } from '../src/contracts/contract.js';
import { A, Graph } from '../src/onnx/graph.js';
import { Rng } from '../training/rng.js';
import { median, saveResult } from './common.js';
import { makeJpegs } from './pairs.js';
import { sessionThreads } from '../src/runtime/threads.js';

const S = 448;
const TAGS = 10861;
// (out channels, stride) of the stand-in's convs, 3×3 each.
export type Convs = readonly (readonly [number, number])[];
const CONVS: Convs = [
  [64, 2],
  [128, 2],
  [256, 2],
  [512, 2],
  [512, 1],
];

/** 2 × multiply-adds per image of the stand-in. */
export function standInGflop(convs: Convs = CONVS): number {
  let side = S;
  let cin = 3;
  let macs = 0;
  for (const [co, stride] of convs) {
    side /= stride;
    macs += side * side * co * cin * 9;
    cin = co;
  }
  return (2 * (macs + cin * TAGS)) / 1e9;
}

/** A WD-shaped stand-in (NHWC float32 448² in, 10,861 sigmoid scores out) with `convs` as its body. */
export function standInModel(convs: Convs = CONVS): Uint8Array {
  const rng = new Rng(3);
  const g = new Graph('wd_stand_in');
  let x = g.op('Transpose', [g.input('input', 'float32', ['N', S, S, 3])], { perm: A.ints([0, 3, 1, 2]) });
  let cin = 3;
  for (const [co, stride] of convs) {
    const w = g.initializer(
      'w',
      'float32',
      [co, cin, 3, 3],
      Float32Array.from({ length: co * cin * 9 }, () => (rng.next() - 0.5) * Math.sqrt(6 / (cin * 9)) * 0.05),
    );
    x = g.op('Relu', [g.op('Conv', [x, w], { pads: A.ints([1, 1, 1, 1]), strides: A.ints([stride, stride]) })]);
    cin = co;
  }
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [x])], { axis: A.i(1) });
  const fc = g.initializer(
    'fc',
    'float32',
    [cin, TAGS],
    Float32Array.from({ length: cin * TAGS }, () => (rng.next() - 0.5) * 0.1),
  );
  // Biases that leave most tags improbable and a few dozen likely, as a real tagger's output is.
  const bias = g.initializer(
    'bias',
    'float32',
    [TAGS],
    Float32Array.from({ length: TAGS }, (_, j) => (j % 300 === 0 ? 1 : -6)),
  );
  g.output(g.op('Sigmoid', [g.op('Add', [g.op('MatMul', [pooled, fc]), bias])]), 'output', 'float32', ['N', TAGS]);
  return g.encode();
}

/** The stand-in's selected_tags.csv. */
export const standInTags = (): string =>
  `tag_id,name,category,count\n${Array.from({ length: TAGS }, (_, i) => `${i},tag_${i},${i < 4 ? 9 : i % 10 === 0 ? 4 : 0},1`).join('\n')}\n`;

export async function benchWd(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const count = opts.quick ? 48 : 144;
  const runs = opts.quick ? 2 : 5;
  const data = path.resolve('bench', 'data', `jpeg-850x1200-${count}`);
  await makeJpegs(data, count);
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-wd');
  await mkdir(tmp, { recursive: true });
  const modelFile = path.join(tmp, 'model.onnx');
  const tagsFile = path.join(tmp, 'selected_tags.csv');
  await writeFile(modelFile, standInModel());
  await writeFile(tagsFile, standInTags());

  const contract: InputContract = {
    kind: 'wd',
    inputName: 'input',
    probsName: 'output',
    size: S,
    dtype: 'float32',
    channels: 'bgr',
    scale: 255,
    padColor: 'white',
    pad: 'center',
    kernel: 'cubic',
    fit: 'pad-first',
    layout: 'NHWC',
    mean: [0, 0, 0],
    std: [1, 1, 1],
    logits: false,
    thresholds: null,
    fixedBatch: null,
  };
  const session = await ort.InferenceSession.create(modelFile, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: sessionThreads(),
  });
  const px = S * S * 3;
  const tensors: ort.Tensor[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = new Uint8Array(8 * px);
    for (let j = 0; j < 8; j++)
      batch.set(
        await preprocessImage(path.join(data, `${i + j}.jpg`), 'x', {
          size: S,
          pad: 'center',
          padColor: 'white',
          kernel: 'cubic',
          maxPixels: 1e8,
        }),
        j * px,
      );
    tensors.push(inputTensor(contract, batch, 8));
  }
  for (let w = 0; w < 2; w++) await session.run({ input: tensors[0]! });

  const bare: number[] = [];
  const ours: number[] = [];
  let summary = '';
  const quiet = { out: () => undefined, err: (l: string) => void (summary = l), tty: false };
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    for (const b of tensors) await session.run({ input: b });
    bare.push(count / ((performance.now() - t) / 1000));
    const code = await runCli(
      ['pred', data, '--model', modelFile, '--tags', tagsFile, '--batch', '8', '--format', 'jsonl'],
      quiet,
    );
    if (code !== 0) throw new Error(`pred exited ${code}`);
    const m = /^pred: (\d+) images in [\d.]+ s, ([\d.]+) img\/s/.exec(summary);
    if (!m || Number(m[1]) !== count) throw new Error(`unexpected pred summary: ${summary}`);
    ours.push(Number(m[2]));
  }
  await session.release();
  await rm(tmp, { recursive: true, force: true });
  const gflop = standInGflop();
  const row = {
    images: count,
    batch: 8,
    size: S,
    tags: TAGS,
    gflopPerImage: gflop,
    predImgPerS: median(ours),
    bareImgPerS: median(bare),
    ratio: median(ours) / median(bare),
    runs: { ours, bare },
  };
  const f = await saveResult('wd', row);
  console.log(
    `| pred with a stand-in WD tagger (448², BGR float32, ${gflop.toFixed(1)} GFLOP/img), 850×1200 JPEG folder, batch 8 | ${row.predImgPerS.toFixed(2)} img/s | bare InferenceSession on ready tensors ${row.bareImgPerS.toFixed(2)} img/s | ${row.ratio.toFixed(2)}× |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
