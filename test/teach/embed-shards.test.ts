// `pairs --backbone`: shards of a frozen tagger's embeddings. Checked against `vec --kind features` of
// the same images (rounded to float16 by the numpy-checked converter), the model's SHA-256 computed
// here, the captions' tags; the cache re-used across re-runs, a changed image embedded again, an
// interrupted run resumed, a damaged cache chunk passed over; bad inputs one line each.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { readShard, readShardIndex } from '../../src/data/shards.js';
import { TagIndex } from '../../src/data/tags.js';
import { readTagFile } from '../../src/data/scan.js';
import { toHalf } from '../../src/onnx/half.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { makeEmbeddingShards } from '../../src/teach/embed-shards.js';
import { modelSha256 } from '../../src/model/model-hash.js';
import { wdStandIn } from '../predict/stand-ins.js';
import { cli, tempDir, tinyDataset } from '../helpers.js';
import { captionedSynth, writeBaseTagger } from './base-tagger.js';

const root = await tempDir();
const { data, tagsCsv } = await captionedSynth(root, 40, 4, 3);
const base = await writeBaseTagger(path.join(root, 'base'));
const pairs = (out: string, ...more: string[]): ReturnType<typeof cli> =>
  cli('pairs', data, '--tags', tagsCsv, '--out', out, '--backbone', base.file, '--holdout', '0.25', ...more);

/** Every (name → float16 row bytes, label row) in the shards of `dir`. */
async function rows(dir: string): Promise<Map<string, { emb: Buffer; label: Buffer }>> {
  const index = await readShardIndex(dir);
  const out = new Map<string, { emb: Buffer; label: Buffer }>();
  const d = index.embedding!.width;
  const k = index.tags.count;
  for (const e of index.shards) {
    const s = await readShard(dir, e, index);
    s.names.forEach((n, i) =>
      out.set(n, { emb: s.images.subarray(i * d * 2, (i + 1) * d * 2), label: s.labels.subarray(i * k, (i + 1) * k) }),
    );
  }
  return out;
}

test('pairs --backbone stores the tagger embedding of every image (float16 of vec --kind features), the captions as labels and the base model by SHA-256', async () => {
  const out = path.join(root, 'shards');
  const r = await pairs(out);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.err.join('\n'), /40 images, 0 embeddings cached, 40 to embed/);
  const index = await readShardIndex(out);
  assert.equal(
    index.embedding!.sha256,
    createHash('sha256')
      .update(await readFile(base.file))
      .digest('hex'),
  );
  assert.equal(index.embedding!.width, base.width);
  assert.equal(index.embedding!.load.tags, base.tagsFile);
  const vecFile = path.join(root, 'vec.jsonl');
  const v = await cli('vec', data, '--model', base.file, '--kind', 'features', '--out', vecFile);
  assert.equal(v.code, 0, v.err.join('\n'));
  const vectors = (await readFile(vecFile, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file: string; vector: number[] });
  const got = await rows(out);
  assert.equal(got.size, 40);
  const tags = await TagIndex.load(tagsCsv);
  for (const { file, vector } of vectors) {
    const row = got.get(path.relative(data, file))!;
    assert.deepEqual(row.emb, Buffer.from(toHalf(vector).buffer), file);
    const want = Buffer.alloc(tags.size);
    for (const t of await readTagFile(file.replace(/\.\w+$/, '.txt')))
      if (tags.indexOf(t) !== undefined) want[tags.indexOf(t)!] = 1;
    assert.deepEqual(row.label, want, file);
  }
});

test('a re-run embeds only what changed: captions re-label from the cache, a changed image is embedded again', async () => {
  const copy = path.join(root, 'data-copy');
  await cp(data, copy, { recursive: true });
  const out = path.join(root, 'shards-rerun');
  const run = (): ReturnType<typeof cli> =>
    cli('pairs', copy, '--tags', tagsCsv, '--out', out, '--backbone', base.file, '--holdout', '0.25');
  assert.equal((await run()).code, 0);
  const before = await rows(out);
  const [first, second] = (await readdir(path.join(copy, '000')))
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => `000/${f}`);
  await writeFile(path.join(copy, first!.replace('.png', '.txt')), 'circle, red_circle\n');
  await sharp({ create: { width: 40, height: 30, channels: 3, background: '#30c030' } })
    .png()
    .toFile(path.join(copy, second!));
  const r = await run();
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.err.join('\n'), /40 images, 39 embeddings cached, 1 to embed/);
  const after = await rows(out);
  const tags = await TagIndex.load(tagsCsv);
  assert.deepEqual(after.get(first!)!.emb, before.get(first!)!.emb);
  assert.deepEqual(
    [...after.get(first!)!.label].flatMap((v, i) => (v ? [tags.names[i]] : [])).sort(),
    ['circle', 'red_circle'].filter((t) => tags.indexOf(t) !== undefined).sort(),
  );
  assert.notDeepEqual(after.get(second!)!.emb, before.get(second!)!.emb);
});

test('an interrupted embedding run resumes from its cache chunks; a damaged chunk is passed over and embedded again', async () => {
  const out = path.join(root, 'shards-kill');
  const tags = await TagIndex.load(tagsCsv);
  const opts = async (): Promise<Parameters<typeof makeEmbeddingShards>[0]> => ({
    dataset: data,
    tags,
    out,
    shardSize: 100,
    holdout: 0.25,
    batch: 4,
    chunk: 8,
    model: await TaggerModel.load(base.file, { embedding: true }),
    source: { model: base.file, sha256: await modelSha256(base.file), tensor: null, load: {}, contract: '' },
  });
  const o = await opts();
  await assert.rejects(
    makeEmbeddingShards({
      ...o,
      onProgress: (done) => {
        if (done >= 20) throw new Error('killed');
      },
    }),
    /killed/,
  );
  await o.model.release();
  let toEmbed = -1;
  const warnings: string[] = [];
  const again = await opts();
  await makeEmbeddingShards({ ...again, onStart: (i) => (toEmbed = i.toEmbed), onWarning: (l) => warnings.push(l) });
  assert.equal(toEmbed, 40 - 16, 'two chunks of 8 were complete when it stopped');
  const cacheDir = path.join(out, 'cache', (await readShardIndex(out)).embedding!.sha256.slice(0, 16));
  const chunks = (await readdir(cacheDir)).filter((f) => f.startsWith('chunk-')).sort();
  await writeFile(path.join(cacheDir, chunks[0]!), 'not a chunk');
  await makeEmbeddingShards({ ...again, onStart: (i) => (toEmbed = i.toEmbed), onWarning: (l) => warnings.push(l) });
  assert.equal(toEmbed, 8);
  assert.ok(
    warnings.some((l) => l.includes(chunks[0]!) && /passed over/.test(l)),
    warnings.join('\n'),
  );
  assert.equal((await rows(out)).size, 40);
  await again.model.release();
});

test('bad inputs to pairs --backbone and to train on its shards: one line each', async () => {
  const images = await tinyDataset(path.join(root, 'tiny'), { count: 20, seed: 2, shardSize: 100, holdout: 0.2 });
  const mixed = await cli('pairs', data, '--tags', tagsCsv, '--out', images.shards, '--backbone', base.file);
  assert.equal(mixed.code, 2);
  assert.match(mixed.err.at(-1)!, /holds shards of images; use another --out$/);
  const noHead = path.join(root, 'nohead.onnx');
  await writeFile(noHead, wdStandIn());
  await writeFile(path.join(root, 'selected_tags.csv'), 'tag_id,name,category,count\n0,a,0,1\n1,b,0,1\n2,c,0,1\n');
  const r = await cli('pairs', data, '--tags', tagsCsv, '--out', path.join(root, 's2'), '--backbone', noHead);
  assert.equal(r.code, 2);
  assert.match(r.err.at(-1)!, /Expected a final scoring layer .* name the embedding with --embedding TENSOR$/);
  const shards = path.join(root, 'shards');
  const withBackbone = await cli('train', shards, '--out', path.join(root, 'r1'), '--backbone', 'vgg16-tiny');
  assert.equal(withBackbone.code, 2);
  assert.match(
    withBackbone.err.at(-1)!,
    /^alt-i2v-ort: Expected no --backbone or --freeze for .* train a head over them$/,
  );
  const linearVgg = await cli('train', images.shards, '--out', path.join(root, 'r2'), '--hidden', '0');
  assert.equal(linearVgg.code, 2);
  assert.match(linearVgg.err.at(-1)!, /Expected --hidden 1 or more for a VGG16 model/);
  const images2 = await cli('pairs', images.data, '--tags', images.tags, '--out', shards);
  assert.equal(images2.code, 2);
  assert.match(images2.err.at(-1)!, /holds embeddings of .* \(made with --backbone\)/);
});

test('train on embedding shards: a linear head and the seed head learn, and --resume continues a head run', async () => {
  const shards = path.join(root, 'shards');
  for (const hidden of ['0', '32']) {
    const run = path.join(root, `head-${hidden}`);
    const r = await cli(
      'train',
      shards,
      '--out',
      run,
      '--hidden',
      hidden,
      '--rounds',
      '3',
      '--batch',
      '8',
      '--engine',
      'ort',
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    const c = JSON.parse(await readFile(path.join(run, 'config.json'), 'utf8'));
    assert.equal(c.model.embedding, base.width);
    assert.equal(c.base.sha256, (await readShardIndex(shards)).embedding!.sha256);
    const more = await cli('train', shards, '--out', run, '--resume', '--rounds', '5', '--batch', '8');
    assert.equal(more.code, 0, more.err.join('\n'));
    assert.match(more.err.join('\n'), /resuming .* from round-000003/);
  }
});
