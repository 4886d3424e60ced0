// pred --frames N on animated images: N evenly spaced frames tagged and merged (max per tag, or mean),
// on an animated lossless WebP and an APNG whose frames are solid colours and a model whose scores
// follow the colour, against a float64 computation of each frame's scores; serve --frames the same.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { readFile, writeFile } from 'node:fs/promises';
import UPNG from 'upng-js';
import { ImageError, preprocessFrames } from '../../src/data/images.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { buildServer } from '../../src/serve/app.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { cli, tempDir } from '../helpers.js';

const S = 8;
const dir = await tempDir();
const COLOURS: [number, number, number][] = [
  [250, 10, 10],
  [10, 250, 10],
  [10, 10, 250],
  [120, 120, 120],
];
{
  // scores = sigmoid((mean BGR − 128) / 40): tag 0 follows blue, 1 green, 2 red
  const g = new Graph('wd');
  const x = g.input('input', 'float32', ['N', S, S, 3]);
  const mean = g.op('ReduceMean', [x], { axes: A.ints([1, 2]), keepdims: A.i(0) });
  const z = g.op('Div', [g.op('Sub', [mean, g.const(128, 'float32')]), g.const(40, 'float32')]);
  g.output(g.op('Sigmoid', [z]), 'output', 'float32', ['N', 3]);
  await writeFile(path.join(dir, 'model.onnx'), g.encode());
  await writeFile(
    path.join(dir, 'selected_tags.csv'),
    'tag_id,name,category,count\n0,blue,0,1\n1,green,0,1\n2,red,0,1\n',
  );
}
const anim = path.join(dir, 'anim.webp');
{
  const raw = Buffer.alloc(S * S * 3 * COLOURS.length);
  COLOURS.forEach((c, f) => {
    for (let i = 0; i < S * S; i++) raw.set(c, (f * S * S + i) * 3);
  });
  await sharp(raw, { raw: { width: S, height: S * COLOURS.length, channels: 3, pageHeight: S } })
    .webp({ lossless: true, loop: 0, delay: COLOURS.map(() => 100) })
    .toFile(anim);
}

// The same frames as an APNG (UPNG.js stores each frame after the first as the rectangle that changed,
// so reading it back composes frames over their predecessors).
const apng = path.join(dir, 'anim.png');
await writeFile(
  apng,
  Buffer.from(
    UPNG.encode(
      COLOURS.map((c) => Uint8Array.from({ length: S * S * 4 }, (_, i) => (i % 4 === 3 ? 255 : c[i % 4]!)).buffer),
      S,
      S,
      0,
      COLOURS.map(() => 100),
    ),
  ),
);

const score = ([r, g, b]: [number, number, number]): number[] =>
  [b, g, r].map((v) => 1 / (1 + Math.exp(-(v - 128) / 40)));

async function scores(...args: string[]): Promise<number[]> {
  return scoresOf(anim, ...args);
}

async function scoresOf(file: string, ...args: string[]): Promise<number[]> {
  const r = await cli(
    'pred',
    file,
    '--model',
    path.join(dir, 'model.onnx'),
    '--format',
    'json',
    '--threshold',
    '0',
    ...args,
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const tags = (JSON.parse(r.out.join('\n')) as { tags: { tag: string; prob: number }[] }[])[0]!.tags;
  return ['blue', 'green', 'red'].map((t) => tags.find((x) => x.tag === t)!.prob);
}

const near = (got: number[], want: number[]): void =>
  assert.ok(
    got.every((v, i) => Math.abs(v - want[i]!) < 1e-5),
    `${got} vs float64 ${want}`,
  );

test('--frames N tags N evenly spaced frames and keeps each tag’s largest score; --frames-merge mean averages them', async () => {
  near(await scores(), score(COLOURS[0]!));
  // 2 of 4 frames: frames 0 and 2
  const two = [COLOURS[0]!, COLOURS[2]!].map(score);
  near(
    await scores('--frames', '2'),
    [0, 1, 2].map((j) => Math.max(two[0]![j]!, two[1]![j]!)),
  );
  const all = COLOURS.map(score);
  near(
    await scores('--frames', '4', '--frames-merge', 'mean'),
    [0, 1, 2].map((j) => all.reduce((s, f) => s + f[j]!, 0) / 4),
  );
  // more frames than the image has: each frame once
  near(
    await scores('--frames', '9', '--frames-merge', 'mean'),
    [0, 1, 2].map((j) => all.reduce((s, f) => s + f[j]!, 0) / 4),
  );
  const bad = await cli('pred', anim, '--model', path.join(dir, 'model.onnx'), '--frames', '0');
  assert.equal(bad.code, 2);
  assert.match(bad.err.at(-1)!, /--frames/);
});

test('APNG: --frames reads its animation frames (libvips alone gives the first)', async () => {
  near(await scoresOf(apng), score(COLOURS[0]!));
  const two = [COLOURS[0]!, COLOURS[2]!].map(score);
  near(
    await scoresOf(apng, '--frames', '2'),
    [0, 1, 2].map((j) => Math.max(two[0]![j]!, two[1]![j]!)),
  );
  const all = COLOURS.map(score);
  near(
    await scoresOf(apng, '--frames', '4', '--frames-merge', 'mean'),
    [0, 1, 2].map((j) => all.reduce((s, f) => s + f[j]!, 0) / 4),
  );
});

test('an APNG whose frames hold more than the pixel limit in all is refused as too large, before composing', async () => {
  const frames = Array.from({ length: 8 }, (_, f) => new Uint8Array(S * S * 4).fill(f * 30).buffer);
  const bytes = Buffer.from(
    UPNG.encode(
      frames,
      S,
      S,
      0,
      frames.map(() => 100),
    ),
  );
  const opts = { size: S, pad: 'center', padColor: [255, 255, 255], maxPixels: S * S } as const;
  await assert.rejects(
    preprocessFrames(bytes, 'big.png', opts, 2),
    (err: ImageError) => err.reason === 'too-large' && /8 frames of 8×8, beyond 64 pixels in all/.test(err.detail),
  );
  assert.equal((await preprocessFrames(bytes, 'big.png', { ...opts, maxPixels: 8 * S * S }, 2)).frames, 2);
});

test('serve --frames merges frames as pred does', async () => {
  const model = await TaggerModel.load(path.join(dir, 'model.onnx'));
  const app = await buildServer(model, {
    name: 'm',
    batch: 4,
    maxWaitMs: 5,
    queue: 8,
    timeoutMs: 10_000,
    bodyLimit: 2 ** 20,
    maxPixels: 1_000_000,
    frames: 4,
    framesMerge: 'mean',
  });
  try {
    for (const file of [anim, apng]) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/tag?threshold=0',
        headers: { 'content-type': file.endsWith('.webp') ? 'image/webp' : 'image/apng' },
        payload: await readFile(file),
      });
      assert.equal(r.statusCode, 200, r.body);
      const tags = Object.values(r.json().images[0].tags as Record<string, { tag: string; prob: number }[]>).flat();
      const all = COLOURS.map(score);
      near(
        ['blue', 'green', 'red'].map((t) => tags.find((x) => x.tag === t)!.prob),
        [0, 1, 2].map((j) => all.reduce((s, f) => s + f[j]!, 0) / 4),
      );
    }
  } finally {
    await app.close();
    await model.release();
  }
});
