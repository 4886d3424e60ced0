// Foreign taggers (WD, DeepDanbooru) in pred/vec/eval: stand-in models with exactly their input
// contracts and known weights, checked against an independent float64 computation of the preprocessing
// (alpha onto white, centred white padding, BGR or RGB, 0–255 or 0–1) and of the model.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';

const S = 32;
const dir = await tempDir();

/** probs = sigmoid(x·W + b) over the flattened float32 NHWC input; batch dim symbolic or fixed. */
function standIn(
  w: Float64Array,
  b: Float64Array,
  k: number,
  opts: { inputName: string; outputName: string; fixedBatch?: number },
): Uint8Array {
  const g = new Graph('stand_in');
  const x = g.input(opts.inputName, 'float32', [opts.fixedBatch ?? 'N', S, S, 3]);
  const flat = g.op('Reshape', [x, g.const([-1, S * S * 3])]);
  const W = g.initializer('w', 'float32', [S * S * 3, k], Float32Array.from(w));
  const B = g.initializer('b', 'float32', [k], Float32Array.from(b));
  g.output(g.op('Sigmoid', [g.op('Add', [g.op('MatMul', [flat, W]), B])]), opts.outputName, 'float32', [
    opts.fixedBatch ?? 'N',
    k,
  ]);
  return g.encode();
}

/** An RGBA image w×h with random colours and alpha 0 or 255, as PNG, and its raw pixels. */
async function rgbaImage(file: string, w: number, h: number, seed: number): Promise<Uint8Array> {
  const rng = new Rng(seed);
  const raw = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    raw.set([rng.int(0, 255), rng.int(0, 255), rng.int(0, 255), rng.next() < 0.3 ? 0 : 255], i * 4);
  }
  await sharp(Buffer.from(raw), { raw: { width: w, height: h, channels: 4 } })
    .png()
    .toFile(file);
  return raw;
}

/**
 * The reference: composite onto white, pad to a centred square with white (top/left get the smaller
 * half, as sd-scripts' pad_t = pad_y // 2), channel order, scale, then sigmoid(x·W + b), all float64.
 */
function reference(
  raw: Uint8Array,
  w: number,
  h: number,
  W: Float64Array,
  b: Float64Array,
  k: number,
  bgr: boolean,
  scale: number,
): number[] {
  const side = Math.max(w, h);
  assert.equal(side, S, 'the reference needs no resize: the long side is S');
  const top = Math.floor((side - h) / 2);
  const left = Math.floor((side - w) / 2);
  const x = new Float64Array(S * S * 3).fill(255);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const p = (r * w + c) * 4;
      const a = raw[p + 3]! / 255;
      for (let ch = 0; ch < 3; ch++) x[((r + top) * S + (c + left)) * 3 + ch] = raw[p + ch]! * a + 255 * (1 - a);
    }
  }
  if (bgr) for (let i = 0; i < x.length; i += 3) [x[i], x[i + 2]] = [x[i + 2]!, x[i]!];
  for (let i = 0; i < x.length; i++) x[i] = (x[i]! / 255) * scale;
  return Array.from({ length: k }, (_, j) => {
    let z = b[j]!;
    for (let i = 0; i < x.length; i++) z += x[i]! * W[i * k + j]!;
    return 1 / (1 + Math.exp(-z));
  });
}

const K = 5;
const rng = new Rng(11);
const W = Float64Array.from({ length: S * S * 3 * K }, () => (rng.next() - 0.5) * 0.0008);
const B = Float64Array.from({ length: K }, () => rng.next() - 0.5);
const WD_TAGS = ['general', 'sensitive', '1girl', 'long_hair', 'hatsune_miku'];
const wdTags = path.join(dir, 'selected_tags.csv');
await writeFile(
  wdTags,
  `tag_id,name,category,count\n${WD_TAGS.map((t, i) => `${i},${t},${i < 2 ? 9 : i === 4 ? 4 : 0},${100 - i}`).join('\n')}\n`,
);
const wdModel = path.join(dir, 'wd', 'model.onnx');
const wdFixed = path.join(dir, 'wd-fixed.onnx');
const ddModel = path.join(dir, 'dd.onnx');
const ddTags = path.join(dir, 'tags.txt');
await mkdir(path.dirname(wdModel), { recursive: true });
await writeFile(wdModel, standIn(W, B, K, { inputName: 'input', outputName: 'output' }));
await writeFile(
  wdFixed,
  standIn(W, B, K, { inputName: 'input_1:0', outputName: 'predictions_sigmoid', fixedBatch: 1 }),
);
await writeFile(ddModel, standIn(W, B, K, { inputName: 'input_1', outputName: 'activation_172' }));
await writeFile(ddTags, ['1girl', 'long_hair', 'solo', 'rating:safe', 'rating:explicit'].join('\n') + '\n');
const shapes: [number, number][] = [
  [32, 17],
  [21, 32],
  [32, 32],
];
const images: { file: string; raw: Uint8Array; w: number; h: number }[] = [];
for (const [i, [w, h]] of shapes.entries()) {
  const file = path.join(dir, 'img', `a${i}.png`);
  await mkdir(path.dirname(file), { recursive: true });
  images.push({ file, raw: await rgbaImage(file, w, h, 20 + i), w, h });
}

async function predProbs(args: string[]): Promise<{ probs: Map<string, number[]>; err: string[] }> {
  const r = await cli(
    'pred',
    ...images.map((i) => i.file),
    '--format',
    'json',
    '--threshold',
    '0',
    '--rating',
    'all',
    ...args,
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const rows = JSON.parse(r.out.join('\n')) as { file: string; tags: { tag: string; prob: number }[] }[];
  return { probs: new Map(rows.map((row) => [row.file, row.tags.map((t) => t.prob)])), err: r.err };
}

function assertClose(got: { tag: string; prob: number }[] | number[], want: number[], tol = 2e-6): void {
  const g = (got as number[]).map((v) => (typeof v === 'number' ? v : (v as { prob: number }).prob));
  assert.equal(g.length, want.length);
  g.forEach((v, i) =>
    assert.ok(
      Math.abs(v - want[i]!) <= tol,
      `prob ${i}: ${v} vs float64 reference ${want[i]} (|Δ| ${Math.abs(v - want[i]!)})`,
    ),
  );
}

for (const [name, model, tags, bgr, scale, extra] of [
  ['WD (auto preset from selected_tags.csv, symbolic batch)', wdModel, wdTags, true, 255, []],
  ['WD with its batch fixed at 1, run with --batch 4', wdFixed, wdTags, true, 255, ['--batch', '4', '--preset', 'wd']],
  ['DeepDanbooru (auto preset from tags.txt)', ddModel, ddTags, false, 1, []],
] as const) {
  test(`${name}: probabilities equal a float64 computation of white padding, alpha on white, channel order and scale`, async () => {
    const r = await cli(
      'pred',
      ...images.map((i) => i.file),
      '--model',
      model,
      '--tags',
      tags,
      '--format',
      'json',
      '--threshold',
      '0',
      '--rating',
      'all',
      ...extra,
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(
      r.err.join('\n'),
      bgr
        ? /preset wd.*: NHWC BGR, 0–255, white square padding, then cubic resize/
        : /preset deepdanbooru \(auto: NHWC input, tags file tags\.txt\): NHWC RGB, 0–1, cubic resize, then white padding/,
    );
    const rows = JSON.parse(r.out.join('\n')) as { file: string; tags: { tag: string; prob: number }[] }[];
    const names = bgr ? WD_TAGS : ['1girl', 'long_hair', 'solo', 'rating:safe', 'rating:explicit'];
    for (const img of images) {
      const row = rows.find((x) => x.file === img.file)!;
      const byTag = new Map(row.tags.map((t) => [t.tag, t.prob]));
      assertClose(
        names.map((t) => byTag.get(t)!),
        reference(img.raw, img.w, img.h, W, B, K, bgr, scale),
      );
    }
  });
}

test('overrides change the contract: --channels rgb --scale 1 on a WD model', async () => {
  const { probs } = await predProbs(['--model', wdModel, '--tags', wdTags, '--channels', 'rgb', '--scale', '1']);
  const img = images[2]!; // square, so only alpha shows the pad colour
  const got = probs.get(img.file)!;
  const rgb = reference(img.raw, img.w, img.h, W, B, K, false, 1);
  const sorted = [...rgb].sort((a, b) => b - a);
  assertClose(got, sorted);
});

test("vec gives a foreign model's probabilities, and its embedding as features; eval scores it on shards made with its tags", async () => {
  const v = await cli('vec', images[0]!.file, '--model', wdModel, '--tags', wdTags, '--kind', 'probs');
  assert.equal(v.code, 0, v.err.join('\n'));
  assertClose(JSON.parse(v.out[0]!).vector, reference(images[0]!.raw, images[0]!.w, images[0]!.h, W, B, K, true, 255));
  // Features: the input of its scoring MatMul (the flattened pixels as the model sees them), from which
  // the stand-in's own W and b give the probabilities above.
  const f = await cli('vec', images[0]!.file, '--model', wdModel, '--tags', wdTags, '--kind', 'features');
  assert.equal(f.code, 0, f.err.join('\n'));
  const embedding = JSON.parse(f.out[0]!).vector as number[];
  assert.equal(embedding.length, S * S * 3);
  const probs = Array.from({ length: K }, (_, k) => {
    let z = B[k]!;
    for (let d = 0; d < embedding.length; d++) z += embedding[d]! * W[d * K + k]!;
    return 1 / (1 + Math.exp(-z));
  });
  assertClose(JSON.parse(v.out[0]!).vector, probs);
  const data = path.join(dir, 'data');
  await mkdir(data);
  for (const [i, tags] of ['1girl long_hair', 'general 1girl', 'sensitive hatsune_miku'].entries()) {
    await sharp({ create: { width: 20, height: 12, channels: 3, background: { r: 40 * i, g: 90, b: 200 } } })
      .png()
      .toFile(path.join(data, `${i}.png`));
    await writeFile(path.join(data, `${i}.txt`), tags);
  }
  assert.equal(
    (
      await cli(
        'pairs',
        data,
        '--tags',
        wdTags,
        '--out',
        path.join(dir, 'shards'),
        '--size',
        String(S),
        '--holdout',
        '0',
      )
    ).code,
    0,
  );
  const e = await cli(
    'eval',
    path.join(dir, 'shards'),
    '--model',
    wdModel,
    '--tags',
    wdTags,
    '--split',
    'all',
    '--format',
    'json',
  );
  assert.equal(e.code, 0, e.err.join('\n'));
  const report = JSON.parse(e.out.join('\n'));
  assert.equal(report.images, 3);
  assert.equal(report.tags, K);
  assert.match(
    e.err.join('\n'),
    /the model expects its own preprocessing \(NHWC BGR, 0–255, white square padding.*\) but shards are letterboxed on black/,
  );
  const noTags = await cli('pred', images[0]!.file, '--model', wdModel);
  assert.equal(noTags.code, 2);
  assert.match(
    noTags.err.at(-1)!,
    /its metadata has no format; export one with `alt-i2v-ort export`, or give --tags for a foreign tagger \(or put its tags file beside it: .*selected_tags\.csv/,
  );
  const short = path.join(dir, 'short.txt');
  await writeFile(short, 'a\nb\n');
  const wrongCount = await cli('pred', images[0]!.file, '--model', wdModel, '--tags', short);
  assert.equal(wrongCount.code, 2);
  assert.match(wrongCount.err.at(-1)!, /Expected 5 tags in ".*short\.txt" for the model's 5 scores but it has 2/);
});
