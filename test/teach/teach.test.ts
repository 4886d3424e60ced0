// `teach`: the common case in one command. Captions (the tags the base lacks chosen, a base tag it
// scores poorly taught again and replacing its output), a folder per tag with --negatives (a held-back
// image then tagged with its folder's tag by the merged model), a re-run that embeds nothing again, and
// a dataset with nothing to teach refused in one line.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { TaggerModel } from '../../src/model/tagger.js';
import { decodeBatches, listImages } from '../../src/predict/inputs.js';
import { Rng } from '../../training/rng.js';
import { cli, cliSteps, tempDir } from '../helpers.js';
import { writeBaseTagger } from './base-tagger.js';

const root = await tempDir();
const data = path.join(root, 'data');
await cliSteps(['synth', '--out', data, '--count', '60', '--seed', '31']);
const wd = await writeBaseTagger(path.join(root, 'wd'));
const joy = await writeBaseTagger(path.join(root, 'joy'), { family: 'joytag' });

test('teach with captions: the tags the base lacks are taught, a table of holdout AP and F1, a merged model; a re-run embeds nothing', async () => {
  const out = path.join(root, 'taught.onnx');
  const r = await cli('teach', data, '--model', wd.file, '--out', out, '--min-count', '8');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(
    r.err.join('\n'),
    /teach: \d+ tags to teach \(\d+ in the captions, \d+ on fewer than 8 images left out\)/,
  );
  assert.match(r.out[0]!, /^taught \d+ tags; holdout of \d+ images/);
  assert.match(
    r.err.join('\n'),
    /teach: \d+ training positives per tag at the median: (positives weighted by negatives \/ positives \(below 20\)|plain binary cross-entropy)/,
  );
  assert.match(r.out.join('\n'), /^circle +\d+ +\d+ +[\d.–]+ +[\d.–]+ +[\d.]+$/m);
  assert.match(
    r.out.at(-1)!,
    /^next: alt-i2v-ort pred IMAGES_OR_FOLDER --model .*taught\.onnx --thresholds .*taught\.thresholds\.csv$/,
  );
  const m = await TaggerModel.load(out);
  assert.ok(m.meta.tags.includes('circle') && m.meta.tags.includes('1girl'));
  await m.release();
  const again = await cli('teach', data, '--model', wd.file, '--out', out, '--min-count', '8');
  assert.equal(again.code, 0, again.err.join('\n'));
  assert.match(again.err.join('\n'), /teach: 60 images, 60 embeddings cached, 0 to embed/);
});

test('teach: a base tag the base scores poorly on the dataset is taught again and replaces its output', async () => {
  const out = path.join(root, 'joy-taught.onnx');
  const r = await cli('teach', data, '--model', joy.file, '--out', out, '--min-count', '8', '--relearn-below', '1');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(
    r.err.join('\n'),
    /teach: circle is the base's tag, but its AP on these images is [\d.]+: taught again \(its output replaced\)/,
  );
  assert.match(r.err.join('\n'), /the taught tag circle replaces the base model's output/);
  const m = await TaggerModel.load(out);
  assert.equal(m.meta.tags.filter((t) => t === 'circle').length, 1);
  await m.release();
});

/** n images of one colour with random darker squares, into dir. */
async function colourImages(dir: string, rgb: [number, number, number], n: number, seed: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) {
    const overlays = Array.from({ length: 3 }, () => ({
      input: {
        create: {
          width: 8,
          height: 8,
          channels: 3 as const,
          background: { r: rng.int(0, 80), g: rng.int(0, 80), b: rng.int(0, 80) },
        },
      },
      left: rng.int(0, 24),
      top: rng.int(0, 24),
    }));
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
      .composite(overlays)
      .png()
      .toFile(path.join(dir, `${i}.png`));
  }
}

test('teach with a folder per tag and --negatives: the merged model tags a held-back image with its folder', async () => {
  const folders = path.join(root, 'folders');
  await colourImages(path.join(folders, 'red_thing'), [220, 30, 30], 12, 1);
  await colourImages(path.join(folders, 'blue_thing'), [30, 40, 220], 12, 2);
  await colourImages(path.join(root, 'negatives'), [30, 200, 40], 12, 3);
  await colourImages(path.join(root, 'held'), [210, 40, 35], 1, 4);
  const out = path.join(root, 'folders.onnx');
  const r = await cli('teach', folders, '--model', wd.file, '--out', out, '--negatives', path.join(root, 'negatives'));
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.err.join('\n'), /holds a folder per tag \(no captions\)/);
  assert.match(r.err.join('\n'), /teach: 36 images, 0 embeddings cached, 36 to embed/);
  const m = await TaggerModel.load(out);
  for await (const b of decodeBatches(listImages([path.join(root, 'held')]), { ...m.preprocess, batch: 1 })) {
    const p = (await m.run(b.images, 1)).probs;
    const [red, blue] = ['red_thing', 'blue_thing'].map((t) => p[m.meta.tags.indexOf(t)]!);
    assert.ok(red! > 0.5 && red! > blue!, `red_thing ${red}, blue_thing ${blue}`);
  }
  await m.release();
});

test('teach refuses a dataset with nothing to teach, in one line', async () => {
  const r = await cli(
    'teach',
    data,
    '--model',
    wd.file,
    '--out',
    path.join(root, 'none.onnx'),
    '--min-count',
    '100000',
  );
  assert.equal(r.code, 2);
  assert.match(
    r.err.at(-1)!,
    /^alt-i2v-ort: Expected tags to teach in .* \(caption tags on 100000 or more images that the base lacks or scores poorly\) but there are none; lower --min-count, or name them with --tags$/,
  );
});

test('teach over a base with external data refuses an --out away from it at once, before embedding anything', async () => {
  const ext = await writeBaseTagger(path.join(root, 'ext'), { external: true });
  const out = path.join(root, 'away', 'ext-taught.onnx');
  const r = await cli('teach', data, '--model', ext.file, '--out', out, '--min-count', '8');
  assert.equal(r.code, 2);
  assert.match(r.err.at(-1)!, /Expected --out in the folder of .*model\.onnx": its weights are in external data files/);
  assert.doesNotMatch(r.err.join('\n'), /embed/);
  assert.equal(existsSync(`${out.replace(/\.onnx$/, '')}.teach`), false);
});

test('teach refuses an --out that would write over the base model, at once', async () => {
  const r = await cli('teach', data, '--model', wd.file, '--out', wd.file, '--min-count', '8');
  assert.equal(r.code, 2);
  assert.match(r.err.at(-1)!, /Expected --out to name new files, but .* a file of the base model/);
  assert.doesNotMatch(r.err.join('\n'), /embed/);
});
