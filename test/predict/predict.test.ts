// pred, eval, vec and similar on a small exported model with random weights and images the test draws.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { preprocessImage } from '../../src/data/images.js';
import { evaluatePredictions } from '../../src/metrics/metrics.js';
import { readNpy } from '../../src/outputs/npy.js';
import { packBits } from '../../src/outputs/vectors.js';
import { mcutThreshold, selectTags } from '../../src/select/select.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { gradcheckConfig, randomParams } from '../../training/gradcheck.js';
import { cli, solid, tempDir } from '../helpers.js';
import { zooVgg16 } from '../graphs/zoo.js';

const dir = await tempDir();
const config = gradcheckConfig({ tags: 6, hidden: 12 });
const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'rare_tag'];
const model = path.join(dir, 'model.onnx');
await writeFile(
  model,
  encodeInferenceModel(config, randomParams(config, 3), {
    tags: TAGS,
    categories: [0, 0, 0, 0, 9, 0],
    pad: 'center',
    source: 'test',
  }),
);
const images = path.join(dir, 'images');
const colours: [number, number, number][] = [
  [220, 20, 20],
  [20, 20, 220],
  [240, 240, 240],
  [20, 200, 40],
];
await mkdir(path.join(images, 'sub'), { recursive: true });
const files: string[] = [];
for (let i = 0; i < colours.length; i++) {
  const f = path.join(images, i < 2 ? '' : 'sub', `img${i}.png`);
  await solid(40 + i * 10, 40, colours[i]!)
    .png()
    .toFile(f);
  files.push(f);
}

test("pred text output is the seed's `NAME tag=… prob=…`, top K, sorted by probability", async () => {
  const r = await cli('pred', files[0]!, '--model', model, '--top', '3');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal(r.out.length, 3);
  const probs = r.out.map((l) => {
    const m = /^(\S+) tag=(\S+) prob=(\d\.\d{4})$/.exec(l);
    assert.ok(m, l);
    assert.equal(m[1], files[0]);
    assert.ok(TAGS.includes(m[2]!));
    return Number(m[3]);
  });
  assert.deepEqual(
    probs,
    [...probs].sort((a, b) => b - a),
  );
});

test('pred probabilities equal a direct onnxruntime-node run on the same preprocessed tensor, bit for bit', async () => {
  const r = await cli('pred', files[1]!, '--model', model, '--format', 'json', '--top', '6');
  const got = JSON.parse(r.out.join('\n'))[0].tags as { tag: string; prob: number }[];
  const pixels = await preprocessImage(files[1]!, files[1]!, { size: 32, pad: 'center', maxPixels: 1e8 });
  const s = await ort.InferenceSession.create(await readFile(model));
  const out = await s.run({ image: new ort.Tensor('uint8', pixels, [1, 32, 32, 3]) });
  const direct = out.probs!.data as Float32Array;
  for (const t of got) assert.equal(t.prob, direct[TAGS.indexOf(t.tag)], t.tag);
  await s.release();
});

test('pred reads folders recursively and paths from stdin (-), in json, jsonl and csv', async () => {
  const folder = await cli('pred', images, '--model', model, '--format', 'jsonl', '--top', '2');
  assert.deepEqual(folder.out.map((l) => JSON.parse(l).file).sort(), [...files].sort());
  const csv = await cli('pred', files[0]!, files[2]!, '--model', model, '--format', 'csv', '--top', '2');
  const rows = csv.out.join('\n').split('\n');
  assert.equal(rows[0], 'file,tag,prob,category');
  assert.equal(rows.length, 5);
  assert.match(rows[1]!, /^.*img0\.png,\w[^,]*,0\.\d{6},[09]$/);
  const { Readable } = await import('node:stream');
  const { listImages } = await import('../../src/predict/inputs.js');
  const listed: string[] = [];
  for await (const f of listImages(['-'], Readable.from([`${files[3]}\n\n${files[0]}\n`]))) listed.push(f);
  assert.deepEqual(listed, [files[3], files[0]]);
});

test('threshold, MCut and exclude select tags as documented', () => {
  const probs = [0.9, 0.85, 0.3, 0.2, 0.95, 0.01];
  const cats = [0, 0, 0, 0, 9, 0];
  assert.deepEqual(
    selectTags(probs, TAGS, cats, { top: 30, threshold: 0.5 }).map((s) => s.tag),
    ['rating:general', 'red_circle', 'blue_star'],
  );
  assert.equal(mcutThreshold([0.95, 0.9, 0.85, 0.3, 0.2, 0.01]), (0.85 + 0.3) / 2);
  assert.deepEqual(
    selectTags(probs, TAGS, cats, { top: 30, mcut: 'all' }).map((s) => s.tag),
    ['rating:general', 'red_circle', 'blue_star'],
  );
  assert.deepEqual(
    selectTags(probs, TAGS, cats, { top: 2, exclude: new Set(['rating:general']) }).map((s) => s.tag),
    ['red_circle', 'blue_star'],
  );
});

test('caption writes NAME.txt next to each image, skips existing ones unless --overwrite', async () => {
  const target = files[2]!.replace(/\.png$/, '.txt');
  const first = await cli('pred', files[2]!, '--model', model, '--format', 'caption', '--top', '3');
  assert.equal(first.code, 0);
  const text = await readFile(target, 'utf8');
  assert.match(text, /^[^_\n]+(, [^_\n]+){2}\n$/, 'spaces instead of underscores');
  await writeFile(target, 'mine');
  const again = await cli('pred', files[2]!, '--model', model, '--format', 'caption');
  assert.match(again.err.join('\n'), /exists, not overwritten \(use --overwrite\)/);
  assert.equal(await readFile(target, 'utf8'), 'mine');
  await cli('pred', files[2]!, '--model', model, '--format', 'caption', '--overwrite', '--underscores', '--top', '6');
  assert.match(await readFile(target, 'utf8'), /_/);
});

test('unreadable images among good ones: a warning each, the rest tagged, exit 1', async () => {
  const bad = path.join(dir, 'broken.jpg');
  await writeFile(bad, 'not a jpeg');
  const r = await cli('pred', files[0]!, bad, files[1]!, '--model', model, '--format', 'jsonl');
  assert.equal(r.code, 1);
  assert.equal(r.out.length, 2);
  assert.ok(r.err.some((l) => l.includes(`${bad}: skipped, not-an-image`)));
  assert.match(r.err.at(-1)!, /1 of 3 images could not be read/);
  // A BMP in a folder is listed (sd-scripts tags BMP) and refused on one line, counted: never passed over.
  const folder = path.join(dir, 'with-bmp');
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'a.png'), await readFile(files[0]!));
  await writeFile(path.join(folder, 'b.bmp'), bmp(4, 3));
  const b = await cli('pred', folder, '--model', model, '--format', 'jsonl');
  assert.equal(b.code, 1);
  assert.equal(b.out.length, 1);
  assert.ok(
    b.err.some((l) => /b\.bmp: skipped, unsupported-format \(BMP is not decoded here; convert it to PNG\)/.test(l)),
    b.err.join('\n'),
  );
  assert.match(b.err.at(-1)!, /1 of 2 images could not be read/);
});

/** A w×h 24-bit BMP (BITMAPINFOHEADER), written byte by byte as the format defines it. */
function bmp(w: number, h: number): Buffer {
  const stride = Math.ceil((w * 3) / 4) * 4;
  const out = Buffer.alloc(54 + stride * h);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(w, 18);
  out.writeInt32LE(h, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * h, 34);
  return out;
}

test('a missing model and an ONNX file that is not ours are usage errors saying what is missing', async () => {
  const missing = await cli('pred', files[0]!, '--model', path.join(dir, 'nope.onnx'));
  assert.equal(missing.code, 2);
  assert.match(missing.err[0]!, /Expected a model file for --model but ".*nope\.onnx" cannot be read/);
  const foreign = path.join(dir, 'foreign.onnx');
  await writeFile(foreign, zooVgg16({ widths: config.widths }).bytes);
  const r = await cli('pred', files[0]!, '--model', foreign);
  assert.equal(r.code, 2);
  assert.match(
    r.err[0]!,
    /Expected an alt-i2v-ort model \(metadata format=alt-i2v-ort\/model\) in ".*foreign\.onnx" but its metadata has no format; export one with `alt-i2v-ort export`/,
  );
});

test('eval metrics match a hand-computed example', () => {
  // 4 images, 2 tags. Tag a: scores .9 .8 .3 .1, labels 1 0 1 0 → AP = (1/1 + 2/3)/2 = 0.8333.
  // Tag b: scores .2 .7 .6 .4, labels 0 1 0 0 → AP = 1.
  const probs = [0.9, 0.2, 0.8, 0.7, 0.3, 0.6, 0.1, 0.4];
  const labels = [1, 0, 0, 1, 1, 0, 0, 0];
  const r = evaluatePredictions(probs, labels, 4, ['a', 'b'], 0.5);
  assert.ok(Math.abs(r.map - (5 / 6 + 1) / 2) < 1e-12, `${r.map}`);
  // At 0.5: a predicts images 1,2 (tp 1, fp 1, fn 1); b predicts 2,3 (tp 1, fp 1). micro: tp 2, fp 2, fn 1.
  assert.ok(Math.abs(r.microF1 - 4 / 7) < 1e-12);
  assert.ok(Math.abs(r.macroF1 - (0.5 + 2 / 3) / 2) < 1e-12);
  // P = R per tag: a's 2nd-highest score .8 → tp 1 fp 1 fn 1 → F1 .5; b's top score .7 → F1 1.
  assert.equal(r.perTag[0]!.thresholdPR, 0.8);
  assert.ok(Math.abs(r.macroF1PR - 0.75) < 1e-12);
  // Micro P = R: 3 positives → the 3rd highest of all scores (.9 .8 .7) = .7 → tp 2, fp 1, fn 1.
  assert.equal(r.microThresholdPR, 0.7);
  assert.ok(Math.abs(r.microF1PR - 2 / 3) < 1e-12);
  assert.ok(Math.abs(r.mse - probs.reduce((s, p, i) => s + (p - labels[i]!) ** 2, 0) / 8) < 1e-12);
});

test('vec writes .npy that NumPy reads, binary = features > 0 packed; similar finds the query first', async () => {
  const feats = path.join(dir, 'feats.npy');
  const r = await cli('vec', images, '--model', model, '--kind', 'features', '--out', feats);
  assert.equal(r.code, 0, r.err.join('\n'));
  const f = await readNpy(feats);
  assert.deepEqual(f.shape, [4, 12]);
  const bin = path.join(dir, 'bin.npy');
  assert.equal((await cli('vec', images, '--model', model, '--kind', 'binary', '--out', bin)).code, 0);
  const b = await readNpy(bin);
  assert.deepEqual(b.shape, [4, 2]);
  assert.deepEqual(b.data, packBits(f.data, 4, 12));
  if (spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0) {
    const py = spawnSync(
      '/usr/bin/python3',
      ['-c', `import numpy as np; a = np.load(${JSON.stringify(feats)}); print(a.shape, a.dtype)`],
      { encoding: 'utf8' },
    );
    assert.equal(py.stdout.trim(), '(4, 12) float32');
  }
  const order = JSON.parse(await readFile(`${feats}.json`, 'utf8')).files as string[];
  for (const index of [feats, bin]) {
    const s = await cli('similar', order[2]!, '--index', index, '--k', '4');
    assert.equal(s.code, 0, s.err.join('\n'));
    assert.equal(s.out.length, 4);
    // The query itself scores best (a random tiny model may tie it with other solid-colour images).
    const self = s.out.find((l) => l.endsWith(order[2]!))!;
    assert.match(self, index === bin ? /^\d\t0 bits\t/ : /^\d\t1\.0000\t/);
    assert.equal(self.split('\t')[1], s.out[0]!.split('\t')[1]);
  }
  const jsonl = await cli('vec', files[0]!, '--model', model, '--kind', 'probs');
  assert.equal(JSON.parse(jsonl.out[0]!).vector.length, 6);
  const badOut = await cli('vec', files[0]!, '--model', model, '--out', path.join(dir, 'x.txt'));
  assert.equal(badOut.code, 2);
  assert.equal(existsSync(path.join(dir, 'x.txt')), false);
});
