// Video through ffmpeg: `pred clip --frames N` on an MP4 and a WebM of four solid colours, a second
// each, against a float64 computation of each colour's scores (N frames at the middles of N equal
// spans); serve takes the same upload; a truncated video, or no ffmpeg on PATH, is one line for the
// file. Runs where ffmpeg is on PATH, and always in CI (.ci/run installs Debian's ffmpeg).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ffmpegVersion } from '../../src/data/video.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { buildServer } from '../../src/serve/app.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { cli, tempDir } from '../helpers.js';

const available = ffmpegVersion() !== undefined;
const skip = !available && !process.env.CI ? 'ffmpeg is not on PATH (CI installs it)' : false;
const S = 8;
const COLOURS: [number, number, number][] = [
  [250, 10, 10],
  [10, 250, 10],
  [10, 10, 250],
  [120, 120, 120],
];
const dir = await tempDir();
const model = path.join(dir, 'model.onnx');
{
  // scores = sigmoid((mean BGR − 128) / 40): tag 0 follows blue, 1 green, 2 red
  const g = new Graph('wd');
  const x = g.input('input', 'float32', ['N', S, S, 3]);
  const mean = g.op('ReduceMean', [x], { axes: A.ints([1, 2]), keepdims: A.i(0) });
  const z = g.op('Div', [g.op('Sub', [mean, g.const(128, 'float32')]), g.const(40, 'float32')]);
  g.output(g.op('Sigmoid', [z]), 'output', 'float32', ['N', 3]);
  await writeFile(model, g.encode());
  await writeFile(
    path.join(dir, 'selected_tags.csv'),
    'tag_id,name,category,count\n0,blue,0,1\n1,green,0,1\n2,red,0,1\n',
  );
}
const score = ([r, g, b]: [number, number, number]): number[] =>
  [b, g, r].map((v) => 1 / (1 + Math.exp(-(v - 128) / 40)));
const all = COLOURS.map(score);
const mean = [0, 1, 2].map((j) => all.reduce((s, f) => s + f[j]!, 0) / 4);
const max = [0, 1, 2].map((j) => Math.max(...all.map((f) => f[j]!)));
// Lossy video (4:2:0 chroma, quantized): a few grey levels per colour, well under 0.03 in a score.
const near = (got: number[], want: number[]): void =>
  assert.ok(got.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 0.03), `${got} vs ${want}`);

function makeVideo(file: string, codec: string[]): void {
  const inputs = COLOURS.flatMap(([r, g, b]) => [
    '-f',
    'lavfi',
    '-i',
    `color=c=0x${[r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('')}:s=16x16:d=1:r=10`,
  ]);
  const r = spawnSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    ...inputs,
    '-filter_complex',
    'concat=n=4:v=1:a=0',
    ...codec,
    file,
  ]);
  assert.equal(r.status, 0, r.stderr?.toString());
}

const scoresOf = async (file: string, ...args: string[]): Promise<{ probs: number[]; code: number; err: string[] }> => {
  const r = await cli('pred', file, '--model', model, '--format', 'jsonl', '--threshold', '0', ...args);
  if (r.code !== 0) return { probs: [], code: r.code, err: r.err };
  const tags = (JSON.parse(r.out[0]!) as { tags: { tag: string; prob: number }[] }).tags;
  return { probs: ['blue', 'green', 'red'].map((t) => tags.find((x) => x.tag === t)!.prob), code: 0, err: r.err };
};

test(
  'MP4 and WebM: --frames 4 takes one frame of each colour, merged by max or mean; serve takes the upload',
  { skip },
  async () => {
    const mp4 = path.join(dir, 'clip.mp4');
    const webm = path.join(dir, 'clip.webm');
    makeVideo(mp4, ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']);
    makeVideo(webm, ['-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p']);
    for (const file of [mp4, webm]) {
      near((await scoresOf(file, '--frames', '4')).probs, max);
      near((await scoresOf(file, '--frames', '4', '--frames-merge', 'mean')).probs, mean);
      near((await scoresOf(file, '--frames', '8', '--frames-merge', 'mean')).probs, mean);
    }
    const tagger = await TaggerModel.load(model);
    const app = await buildServer(tagger, {
      name: 'm',
      batch: 4,
      maxWaitMs: 5,
      queue: 16,
      timeoutMs: 20_000,
      bodyLimit: 2 ** 22,
      maxPixels: 1e6,
      frames: 4,
      framesMerge: 'mean',
    });
    try {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/tag?threshold=0',
        headers: { 'content-type': 'video/mp4' },
        payload: await readFile(mp4),
      });
      assert.equal(r.statusCode, 200, r.body);
      const tags = (r.json() as { images: { tags: { general: { tag: string; prob: number }[] } }[] }).images[0]!.tags
        .general;
      near(
        ['blue', 'green', 'red'].map((t) => tags.find((x) => x.tag === t)!.prob),
        mean,
      );
    } finally {
      await app.close();
      await tagger.release();
    }
  },
);

test(
  'a file named like a protocol is read as a file; a truncated video, and no ffmpeg on PATH, are one line for that file',
  { skip },
  async () => {
    const mp4 = path.join(dir, 'clip.mp4');
    const cut = path.join(dir, 'cut.mp4');
    await writeFile(cut, (await readFile(mp4)).subarray(0, 300));
    // A relative name ffmpeg would take for a protocol URL (data:…) is read as the file it is.
    await writeFile(path.join(dir, 'data:clip.mp4'), await readFile(mp4));
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      near((await scoresOf('data:clip.mp4', '--frames', '4', '--frames-merge', 'mean')).probs, mean);
    } finally {
      process.chdir(cwd);
    }
    const broken = await scoresOf(cut, '--frames', '4');
    assert.equal(broken.code, 1);
    assert.ok(
      broken.err.some((l) => /^warning: .*cut\.mp4: skipped, unreadable \(ffprobe: /.test(l)),
      broken.err.join('\n'),
    );
    const path0 = process.env.PATH;
    try {
      process.env.PATH = '/nonexistent';
      const none = await scoresOf(mp4, '--frames', '4');
      assert.equal(none.code, 1);
      assert.ok(
        none.err.some((l) =>
          /clip\.mp4: skipped, unreadable \(reading video needs ffmpeg on PATH \(Debian\/Ubuntu: apt install ffmpeg/.test(
            l,
          ),
        ),
        none.err.join('\n'),
      );
    } finally {
      process.env.PATH = path0;
    }
  },
);
