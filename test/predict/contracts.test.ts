// Model contracts as data: stand-ins with the input contracts of JoyTag (NCHW, CLIP mean/std, logits)
// and Camie v2 (NCHW, ImageNet mean/std, resize then pad with (124, 116, 104), several outputs, JSON
// tags with categories), their probabilities against a float64 computation written here, each seen
// to fail with one contract field changed; the tags files of every family against hand-written
// files, malformed ones included; contract documents checked field by field.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { parseContractDoc, presetDocs, PRESET_NAMES } from '../../src/contracts/contract-doc.js';
import { preprocessImage } from '../../src/data/images.js';
import { CATEGORY } from '../../src/data/tags.js';
import { readForeignTags } from '../../src/contracts/tag-files.js';
import { cli, tempDir } from '../helpers.js';
import { close, image, predProbs, reference, S, standIn, type Family } from './stand-ins.js';

const dir = await tempDir();

const docs = await presetDocs();
const joy = docs.get('joytag')!;
const camie = docs.get('camie-v2')!;
const JOY: Family = { mean: joy.input.mean, std: joy.input.std, pad: [255, 255, 255] };
const CAMIE: Family = { mean: camie.input.mean, std: camie.input.std, pad: [124, 116, 104] };

const joyDir = path.join(dir, 'joytag');
const camieDir = path.join(dir, 'camie');
await mkdir(joyDir);
await mkdir(camieDir);
await writeFile(path.join(joyDir, 'model.onnx'), standIn());
await writeFile(path.join(joyDir, 'top_tags.txt'), '1girl\nsolo\nlong hair\nrating:general\n');
await writeFile(path.join(camieDir, 'model.onnx'), standIn({ outputs: 3, index: 1 }));
await writeFile(
  path.join(camieDir, 'camie-tagger-v2-metadata.json'),
  JSON.stringify({
    dataset_info: {
      tag_mapping: {
        idx_to_tag: { 0: '1girl', 1: 'year_2020', 2: 'hatsune_miku', 3: 'general' },
        tag_to_category: { '1girl': 'general', year_2020: 'year', hatsune_miku: 'character', general: 'rating' },
      },
    },
  }),
);
const img = path.join(dir, 'img.png');
const raw = await image(img, S, 9);

const ORDER = ['1girl', 'solo', 'long hair', 'rating:general', 'year_2020', 'hatsune_miku', 'general'];
const probs = (args: string[]): ReturnType<typeof predProbs> => predProbs(img, args, ORDER);

test('JoyTag contract (auto from top_tags.txt beside an NCHW model): white pad, RGB 0–1, CLIP mean/std, logits → sigmoid', async () => {
  const r = await probs(['--model', path.join(joyDir, 'model.onnx')]);
  assert.match(
    r.err,
    /preset joytag \(auto: NCHW input, tags file top_tags\.txt\): NCHW RGB, 0–1, mean .* white square padding.*\(logits, sigmoid applied\)/,
  );
  const want = reference(raw, S, 9, JOY);
  assert.ok(close(r.probs, want), `${r.probs} vs float64 ${want}`);
});

test('Camie v2 contract: resize then pad with (124, 116, 104), ImageNet mean/std, the second of 3 outputs, JSON tags with categories', async () => {
  const r = await probs(['--model', path.join(camieDir, 'model.onnx')]);
  assert.match(r.err, /preset camie-v2 .*rgb\(124,116,104\) padding, scores from "out1" \(logits/);
  assert.ok(close(r.probs, reference(raw, S, 9, CAMIE)), `${r.probs}`);
  assert.deepEqual(
    r.tags.map((t) => t.category),
    [CATEGORY.general, CATEGORY.year, CATEGORY.character, CATEGORY.rating],
  );
});

test('each contract field matters: one changed in a --contract file moves the probabilities off the float64 computation', async () => {
  const base = JSON.parse(await readFile(path.join('src', 'contracts', 'presets', 'joytag.json'), 'utf8'));
  const want = reference(raw, S, 9, JOY);
  const changes: [string, (d: typeof base) => void][] = [
    ['channels', (d) => (d.input.channels = 'bgr')],
    ['mean', (d) => (d.input.mean = [0.5, 0.5, 0.5])],
    ['std', (d) => (d.input.std = [0.5, 0.5, 0.5])],
    ['scale', (d) => (d.input.scale = 255)],
    ['padColor', (d) => (d.input.padColor = [0, 0, 0])],
    ['scores', (d) => (d.output.scores = 'probabilities')],
    ['resize', (d) => (d.input.resize = 'stretch')],
  ];
  const same = path.join(dir, 'same.json');
  await writeFile(same, JSON.stringify(base));
  assert.ok(close((await probs(['--model', path.join(joyDir, 'model.onnx'), '--contract', same])).probs, want));
  for (const [field, change] of changes) {
    const d = structuredClone(base);
    change(d);
    const file = path.join(dir, `${field}.json`);
    await writeFile(file, JSON.stringify(d));
    const got = (await probs(['--model', path.join(joyDir, 'model.onnx'), '--contract', file])).probs;
    assert.ok(!close(got, want), `${field} changed, yet the probabilities still equal the reference`);
  }
});

test('stretch fills the square without padding', async () => {
  const f = path.join(dir, 'solid.png');
  await sharp({ create: { width: 24, height: 8, channels: 3, background: { r: 10, g: 200, b: 30 } } })
    .png()
    .toFile(f);
  const px = await preprocessImage(f, f, {
    size: S,
    pad: 'center',
    fit: 'stretch',
    padColor: [255, 0, 255],
    kernel: 'cubic',
    maxPixels: 1e8,
  });
  for (let i = 0; i < px.length; i += 3) assert.deepEqual([px[i], px[i + 1], px[i + 2]], [10, 200, 30]);
});

test('tags files of the new families: txt, Camie, PixAI and cl_tagger JSON; malformed ones named with the key at fault', async () => {
  const write = async (name: string, body: unknown): Promise<string> => {
    const f = path.join(dir, 'tags', name);
    await mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, typeof body === 'string' ? body : JSON.stringify(body));
    return f;
  };
  const pixai = await readForeignTags(
    await write('tags_v0.9_13k.json', {
      tag_map: { solo: 1, '1girl': 0, hatsune_miku: 2 },
      tag_split: { gen_tag_count: 2, character_tag_count: 1 },
    }),
  );
  assert.deepEqual(pixai.tags, ['1girl', 'solo', 'hatsune_miku']);
  assert.deepEqual(pixai.categories, [CATEGORY.general, CATEGORY.general, CATEGORY.character]);
  assert.equal(pixai.format, 'pixai-json');
  const cl = await readForeignTags(
    await write('tag_mapping.json', {
      1: { tag: 'best_quality', category: 'Quality' },
      0: { tag: 'general', category: 'Rating' },
      2: { tag: 'artist_x', category: 'Artist' },
    }),
  );
  assert.deepEqual(cl.tags, ['general', 'best_quality', 'artist_x']);
  assert.deepEqual(cl.categories, [CATEGORY.rating, CATEGORY.quality, CATEGORY.artist]);
  const txt = await readForeignTags(await write('top_tags.txt', '\uFEFF1girl\r\nrating:safe\n\n'));
  assert.deepEqual(
    [txt.tags, txt.categories],
    [
      ['1girl', 'rating:safe'],
      [CATEGORY.general, CATEGORY.rating],
    ],
  );
  const bad: [string, unknown, RegExp][] = [
    [
      'pixai-gap.json',
      { tag_map: { a: 0, b: 2 }, tag_split: { gen_tag_count: 2, character_tag_count: 0 } },
      /tag_map values indexed 0 to 1, each once, in ".*pixai-gap\.json" but found the index "2"/,
    ],
    [
      'pixai-split.json',
      { tag_map: { a: 0, b: 1 }, tag_split: { gen_tag_count: 1, character_tag_count: 0 } },
      /gen_tag_count \+ character_tag_count = 2 .* but received 1 \+ 0/,
    ],
    [
      'cl-cat.json',
      { 0: { tag: 'a', category: 'Colour' } },
      /Expected a category .* at "0"\.category of ".*cl-cat\.json" but received "Colour"/,
    ],
    [
      'camie-none.json',
      { dataset_info: { tag_mapping: { idx_to_tag: { 0: 'a' } } } },
      /Expected dataset_info\.tag_mapping\.idx_to_tag and \.tag_to_category in ".*camie-none\.json"/,
    ],
    [
      'camie-cat.json',
      { dataset_info: { tag_mapping: { idx_to_tag: { 0: 'a' }, tag_to_category: {} } } },
      /at tag_to_category\["a"\] of ".*camie-cat\.json" but received undefined/,
    ],
    ['broken.json', '{"tag_map": ', /Expected JSON in ".*broken\.json" but it does not parse/],
    ['control.txt', 'a\nb\u0007c\n', /without control characters in ".*control\.txt" but row 2 holds U\+0007/],
  ];
  for (const [name, body, message] of bad)
    await assert.rejects(readForeignTags(await write(name, body)), message, name);
});

test('contract documents: every preset parses and is named as its file; a field of the wrong kind or unknown is one line naming it', async () => {
  assert.deepEqual([...docs.keys()].sort(), [...PRESET_NAMES]);
  const good = JSON.parse(await readFile(path.join('src', 'contracts', 'presets', 'wd.json'), 'utf8'));
  const cases: [(d: typeof good) => void, RegExp][] = [
    [(d) => (d.input.layout = 'CHW'), /Expected one of NHWC, NCHW for input\.layout in x\.json but received "CHW"/],
    [(d) => (d.input.std = [1, 0, 1]), /Expected 3 numbers in \[0\.000001, 1000\], none 0 for input\.std/],
    [(d) => (d.input.colour = [1, 1, 1]), /Expected one of the fields .* for input\.colour/],
    [(d) => (d.output.index = -1), /Expected an integer in \[0, 64\] for output\.index/],
    [(d) => (d.tags.format = 'yaml'), /for tags\.format in x\.json but received "yaml"/],
    [(d) => (d.format = 'contract 2'), /Expected "alt-i2v-ort contract 1" for format/],
    [(d) => (d.thresholds.default = 2), /Expected a number in \[0, 1\] for thresholds\.default/],
  ];
  for (const [change, message] of cases) {
    const d = structuredClone(good);
    change(d);
    assert.throws(() => parseContractDoc(d, 'x.json'), message);
  }
});

test('auto refuses a model whose input and tags fit no preset, naming both and the way out', async () => {
  const cl = path.join(dir, 'tags', 'cl4', 'mapping.json');
  await mkdir(path.dirname(cl), { recursive: true });
  await writeFile(
    cl,
    JSON.stringify(Object.fromEntries(['a', 'b', 'c', 'd'].map((t, i) => [i, { tag: t, category: 'General' }]))),
  );
  const r = await cli('pred', img, '--model', path.join(joyDir, 'model.onnx'), '--tags', cl, '--format', 'json');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.err[0]!, /preset cl-tagger \(auto: NCHW input, a cl-tagger-json tags file\)/);
  const csv = path.join(dir, 'tags', 'selected_tags.csv');
  await writeFile(csv, 'tag_id,name,category,count\n0,a,0,1\n1,b,0,1\n2,c,0,1\n3,d,0,1\n');
  const bad = await cli('pred', img, '--model', path.join(joyDir, 'model.onnx'), '--tags', csv);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err.at(-1)!,
    /Expected a model whose input and tags file match a preset .* has a NCHW input and "selected_tags\.csv" \(wd-csv\) fits none: pass --preset NAME or --contract FILE\.json/,
  );
});
