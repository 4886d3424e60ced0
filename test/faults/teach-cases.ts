// Files of teaching and reviewing that come back from disk (issue 41/42): a merged model whose
// alt_i2v_taught metadata lies, embedding shards whose index.json names a base that is not one, and a
// review state file that is not ours. Each is refused in one line naming the file and what was
// expected, and nothing is written over it.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TAUGHT_KEY } from '../../src/model/taught.js';
import { readMetadataProps } from '../../src/onnx/proto.js';
import { withMetadataProps } from '../../src/onnx/wire.js';
import { REVIEW_STATE } from '../../src/review/review-set.js';
import { tinyModel } from '../helpers.js';
import { writeBaseTagger } from '../teach/base-tagger.js';
import { assertOneLine, data, fault, root, run, tagsCsv } from './harness.js';

const work = await mkdtemp(path.join(root, 'teach-cases-'));
const base = await writeBaseTagger(path.join(work, 'wd'));
const merged = path.join(work, 'taught.onnx');
const taught = run(['teach', data, '--model', base.file, '--out', merged, '--min-count', '5']);
assert.equal(taught.code, 0, taught.err);
const image = path.join(
  data,
  '000',
  (await readdir(path.join(data, '000'))).find((f) => /\.(png|jpg)$/.test(f))!,
);

export function registerTeach(): void {
  fault('a merged model whose alt_i2v_taught metadata lies is refused naming the model', async () => {
    const bytes = new Uint8Array(await readFile(merged));
    const meta = JSON.parse(readMetadataProps(bytes).get(TAUGHT_KEY)!) as Record<string, unknown> & {
      tags: string[];
      categories: number[];
    };
    const lies: [string, string, RegExp][] = [
      ['not-json', '{"format": "alt-i2v-ort/taught", ', /Expected JSON in the metadata alt_i2v_taught/],
      ['version', JSON.stringify({ ...meta, version: 2 }), /Expected format alt-i2v-ort\/taught version 1/],
      ['sha', JSON.stringify({ ...meta, base: { file: 'x', sha256: '../../etc' } }), /file name and SHA-256/],
      ['control', JSON.stringify({ ...meta, tags: ['a\u0007b', ...meta.tags.slice(1)] }), /alt_i2v_taught/],
      ['categories', JSON.stringify({ ...meta, categories: meta.categories.map(() => 1e9) }), /category ids/],
      ['taught', JSON.stringify({ ...meta, taught: ['not_a_tag_of_it'] }), /taught: a list of the model's tags/],
      ['pad', JSON.stringify({ ...meta, overrides: { padColor: [0, 0, 999] } }), /overrides.padColor/],
      [
        'contract',
        JSON.stringify({ ...meta, contract: { format: 'alt-i2v-ort/contract', input: 7 } }),
        /alt_i2v_taught/,
      ],
      [
        'count',
        JSON.stringify({
          ...meta,
          tags: meta.tags.slice(0, 2),
          categories: meta.categories.slice(0, 2),
          taught: [],
          replaced: [],
        }),
        /Expected (\d+) tags in the metadata of .* for the model's \1 scores but it has 2/,
      ],
    ];
    for (const [name, text, want] of lies) {
      const file = path.join(work, `lie-${name}.onnx`);
      await writeFile(file, withMetadataProps(bytes, { [TAUGHT_KEY]: text }));
      const r = run(['pred', image, '--model', file]);
      assert.equal(r.code, 2, `${name}: ${r.err}`);
      assertOneLine(r.err, want);
      assert.match(r.last, new RegExp(`lie-${name}\\.onnx`), name);
    }
  });

  fault('embedding shards whose index.json names a base that is not one are refused naming the field', async () => {
    const shards = path.join(work, 'emb-shards');
    const made = run(['pairs', data, '--tags', tagsCsv, '--out', shards, '--backbone', base.file]);
    assert.equal(made.code, 0, made.err);
    const good = JSON.parse(await readFile(path.join(shards, 'index.json'), 'utf8'));
    const lies: [string, (e: Record<string, unknown>) => unknown, RegExp][] = [
      ['sha', (e) => ({ ...e, sha256: 'not-hex' }), /embedding\.sha256/],
      ['width', (e) => ({ ...e, width: -4 }), /embedding\.width/],
      ['model', (e) => ({ ...e, model: 5 }), /embedding\.model/],
      ['tensor', (e) => ({ ...e, tensor: ['x'] }), /embedding\.tensor/],
      ['load', (e) => ({ ...e, load: { tags: { $ne: 1 } } }), /embedding\.load\.tags/],
      ['scale', (e) => ({ ...e, load: { scale: 3 } }), /embedding\.load\.scale/],
    ];
    for (const [name, lie, want] of lies) {
      const dir = path.join(work, `emb-${name}`);
      await cp(shards, dir, { recursive: true });
      const index = JSON.stringify({ ...good, embedding: lie(good.embedding) });
      await writeFile(path.join(dir, 'index.json'), index);
      const out = path.join(work, `run-${name}`);
      const r = run(['train', dir, '--out', out, '--hidden', '0', '--rounds', '1']);
      assert.equal(r.code, 2, `${name}: ${r.err}`);
      assertOneLine(r.err, want);
      assert.match(r.last, /index\.json/, name);
      assert.equal(await readFile(path.join(dir, 'index.json'), 'utf8'), index, `${name}: index.json untouched`);
    }
  });

  fault('a review state file that is not ours stops serve --dataset in one line, and is left as it was', async () => {
    const model = await tinyModel(path.join(work, 'review-model.onnx'), ['a', 'b'], [0, 0]);
    const states: [string, string | null, RegExp][] = [
      ['garbage', '{"format": "alt-i2v-ort/review", "reviewed": [', /does not parse/],
      ['format', JSON.stringify({ format: 'other', version: 1, reviewed: [] }), /alt-i2v-ort\/review version 1/],
      [
        'names',
        JSON.stringify({ format: 'alt-i2v-ort/review', version: 1, reviewed: [1, {}] }),
        /a list of reviewed images/,
      ],
      ['folder', null, /to be a regular file/],
    ];
    for (const [name, text, want] of states) {
      const dir = path.join(work, `review-${name}`);
      await mkdir(dir);
      await cp(image, path.join(dir, path.basename(image)));
      const state = path.join(dir, REVIEW_STATE);
      if (text === null) await mkdir(state);
      else await writeFile(state, text);
      const r = run(['serve', '--model', model, '--dataset', dir, '--port', '0']);
      assert.equal(r.code, 2, `${name}: ${r.err}`);
      assertOneLine(r.err, want);
      assert.match(r.last, /\.alt-i2v-review\.json/, name);
      if (text !== null) assert.equal(await readFile(state, 'utf8'), text, `${name}: left as it was`);
    }
    // A symbolic link in its place is not read through to a file outside the dataset.
    const dir = path.join(work, 'review-link');
    await mkdir(dir);
    await cp(image, path.join(dir, path.basename(image)));
    const outside = path.join(work, 'outside.json');
    await writeFile(outside, JSON.stringify({ format: 'alt-i2v-ort/review', version: 1, reviewed: [] }));
    await symlink(outside, path.join(dir, REVIEW_STATE));
    const r = run(['serve', '--model', model, '--dataset', dir, '--port', '0']);
    assert.equal(r.code, 2, r.err);
    assertOneLine(r.err, /to be a regular file/);
  });
}
