// The families beside JoyTag and Camie: stand-ins with the input contracts of PixAI v0.9 (NCHW,
// stretch, mean = std = 0.5, probabilities in the third output), cl_tagger (NCHW, white pad, mean =
// std = 0.5, logits) and Z3D-E621 (the WD form: NHWC, BGR, 0–255, white pad) against the float64
// computation of stand-ins.ts, each picked by --preset auto from its tags file; e621's tags-selected.csv
// with its own category ids, malformed ones named with the row.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { presetDocs } from '../../src/contracts/contract-doc.js';
import { CATEGORY } from '../../src/data/tags.js';
import { E621_CATEGORY, readForeignTags } from '../../src/contracts/tag-files.js';
import { tempDir } from '../helpers.js';
import { close, image, predProbs, reference, S, standIn, type StandIn } from './stand-ins.js';

const dir = await tempDir();
const img = path.join(dir, 'img.png');
const raw = await image(img, S, 9);
const docs = await presetDocs();

async function family(name: string, model: StandIn, tagsFile: string, tags: unknown): Promise<string> {
  const d = path.join(dir, name);
  await mkdir(d);
  await writeFile(path.join(d, 'model.onnx'), standIn(model));
  await writeFile(path.join(d, tagsFile), typeof tags === 'string' ? tags : JSON.stringify(tags));
  return path.join(d, 'model.onnx');
}

const ORDER = ['a', 'b', 'c', 'd'];

test('PixAI v0.9 contract (auto from tags_v0.9_13k.json): stretch, RGB 0–1, mean = std = 0.5, probabilities of the third output', async () => {
  const model = await family('pixai', { outputs: 3, index: 2, probabilities: true }, 'tags_v0.9_13k.json', {
    tag_map: { a: 0, b: 1, c: 2, d: 3 },
    tag_split: { gen_tag_count: 3, character_tag_count: 1 },
  });
  const r = await predProbs(img, ['--model', model], ORDER);
  assert.match(r.err, /preset pixai-v0\.9 \(auto: NCHW input, tags file tags_v0\.9_13k\.json\)/);
  const want = reference(raw, S, 9, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], pad: [0, 0, 0], stretch: true });
  assert.ok(close(r.probs, want), `${r.probs} vs float64 ${want}`);
  assert.deepEqual(
    r.tags.map((t) => t.category),
    [CATEGORY.general, CATEGORY.general, CATEGORY.general, CATEGORY.character],
  );
});

test('cl_tagger contract (auto from tag_mapping.json): white pad, RGB 0–1, mean = std = 0.5, logits → sigmoid', async () => {
  const cats = ['General', 'Quality', 'Model', 'Rating'];
  const model = await family(
    'cl',
    {},
    'tag_mapping.json',
    Object.fromEntries(ORDER.map((t, i) => [i, { tag: t, category: cats[i] }])),
  );
  const r = await predProbs(img, ['--model', model], ORDER);
  assert.match(r.err, /preset cl-tagger \(auto: NCHW input, tags file tag_mapping\.json\)/);
  const want = reference(raw, S, 9, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], pad: [255, 255, 255] });
  assert.ok(close(r.probs, want), `${r.probs} vs float64 ${want}`);
  assert.deepEqual(
    r.tags.map((t) => t.category),
    [CATEGORY.general, CATEGORY.quality, CATEGORY.model, CATEGORY.rating],
  );
});

test('Z3D-E621 contract (auto from tags-selected.csv): NHWC, BGR 0–255, white pad, probabilities; e621 categories', async () => {
  const csv = 'id,name,category,post_count\n0,a,0,10\n1,b,5,9\n2,c,7,8\n3,d,8,7\n';
  const model = await family('z3d', { layout: 'NHWC', probabilities: true, weight: 1 / 255 }, 'tags-selected.csv', csv);
  const r = await predProbs(img, ['--model', model], ORDER);
  assert.match(r.err, /preset z3d-e621 \(auto: NHWC input, tags file tags-selected\.csv\)/);
  const want = reference(raw, S, 9, {
    mean: [0, 0, 0],
    std: [1, 1, 1],
    pad: [255, 255, 255],
    scale: 255,
    bgr: true,
    layout: 'NHWC',
    weight: 1 / 255,
  });
  assert.ok(
    want.every((p) => p > 0.01 && p < 0.99),
    `${want}: saturated, so blind to the contract`,
  );
  assert.ok(close(r.probs, want), `${r.probs} vs float64 ${want}`);
  assert.deepEqual(
    r.tags.map((t) => t.category),
    [CATEGORY.general, CATEGORY.species, CATEGORY.meta, CATEGORY.lore],
  );
  assert.equal(docs.get('z3d-e621')!.thresholds?.default, 0.35);
});

test("e621 tags-selected.csv: columns by header name, e621's category ids; malformed files named with the row", async () => {
  // e621's tag categories by name, as its API documents them (https://e621.net/wiki_pages/help:tags).
  const e621 = { general: 0, artist: 1, copyright: 3, character: 4, species: 5, invalid: 6, meta: 7, lore: 8 };
  assert.equal(E621_CATEGORY.size, Object.keys(e621).length);
  for (const [name, id] of Object.entries(e621))
    assert.equal(E621_CATEGORY.get(id), CATEGORY[name as keyof typeof CATEGORY], name);
  const write = async (name: string, body: string): Promise<string> => {
    const f = path.join(dir, 'e621', name, 'tags-selected.csv');
    await mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, body);
    return f;
  };
  const t = await readForeignTags(await write('ok', '\uFEFFcategory,name\r\n1,some_artist\r\n4,renamon\r\n'));
  assert.deepEqual([t.tags, t.categories, t.format], [['some_artist', 'renamon'], [1, 4], 'e621-csv']);
  const bad: [string, string, RegExp][] = [
    ['header', 'tag,cat\na,0\n', /Expected a header with "name" and "category" columns in ".*header.*" \(E621 tags\)/],
    [
      'cat',
      'name,category\na,0\nb,2\n',
      /Expected an e621 category \(0, 1, 3, 4, 5, 6, 7, 8\) in ".*" row 3 but received "2"/,
    ],
    ['empty', 'name,category\na,\n', /row 2 but received ""/],
    ['ragged', 'name,category\na,0,1\n', /Expected CSV in ".*ragged.*" but it does not parse/],
    ['dup', 'name,category\na,0\na,1\n', /"a"/],
  ];
  for (const [name, body, message] of bad)
    await assert.rejects(readForeignTags(await write(name, body)), message, name);
});
