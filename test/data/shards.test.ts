import assert from 'node:assert/strict';
import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { preprocessImage } from '../../src/data/images.js';
import { readTagFile } from '../../src/data/scan.js';
import { makeShards, type MakeShardsOptions } from '../../src/data/make-shards.js';
import { isHoldout, readShard, readShardIndex } from '../../src/data/shards.js';
import { writeSynthDataset } from '../../src/data/synth.js';
import { TagIndex } from '../../src/data/tags.js';
import { UsageError } from '../../src/util/errors.js';
import { cli, solid, tempDir } from '../helpers.js';

async function synthWithTags(count: number): Promise<{ dir: string; tagsFile: string; tags: TagIndex }> {
  const dir = await tempDir();
  const data = path.join(dir, 'data');
  await writeSynthDataset(data, count, 7);
  const tagsFile = path.join(dir, 'tags.csv');
  assert.equal((await cli('tags', data, '--out', tagsFile)).code, 0);
  return { dir: data, tagsFile, tags: await TagIndex.load(tagsFile) };
}

const base = (dataset: string, tags: TagIndex, out: string): MakeShardsOptions => ({
  dataset,
  tags,
  out,
  shardSize: 10,
  imageSize: 32,
  holdout: 0.2,
  pad: 'center',
  maxPixels: 1e7,
});

test('pairs writes shards whose pixels and labels match the sources, split by name hash', async () => {
  const { dir, tagsFile, tags } = await synthWithTags(40);
  const out = path.join(dir, '..', 'shards');
  const r = await cli(
    'pairs',
    dir,
    '--tags',
    tagsFile,
    '--out',
    out,
    '--size',
    '32',
    '--shard-size',
    '10',
    '--holdout',
    '0.2',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const index = await readShardIndex(out);
  assert.equal(index.stats.kept, 40);
  assert.equal(
    index.shards.reduce((a, s) => a + s.count, 0),
    40,
  );
  let holdoutSeen = 0;
  for (const entry of index.shards) {
    const shard = await readShard(out, entry, index);
    if (entry.split === 'train') assert.ok(shard.count <= 10);
    for (let i = 0; i < shard.count; i++) {
      const name = shard.names[i]!;
      assert.equal(isHoldout(name, 0.2), entry.split === 'holdout', name);
      if (entry.split === 'holdout') holdoutSeen++;
      const file = path.join(dir, name);
      const want = await preprocessImage(file, file, { size: 32, pad: 'center', maxPixels: 1e7 });
      assert.ok(want.equals(shard.images.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)), `pixels of ${name}`);
      const tagList = await readTagFile(file.replace(/\.(jpg|png)$/, '.txt'));
      const labelled = tags.names.filter((_, k) => shard.labels[i * tags.size + k] === 1);
      assert.deepEqual(
        labelled.sort(),
        tagList.filter((t) => tags.indexOf(t) !== undefined).sort(),
        `labels of ${name}`,
      );
    }
  }
  assert.ok(holdoutSeen > 0 && holdoutSeen < 20, `holdout ${holdoutSeen}`);
  assert.match(
    r.out.find((l) => l.startsWith('kept'))!,
    /^kept 40 \(train \d+, holdout \d+\) in \d+ shards; skipped: none; tag files without image: 0$/,
  );
});

test('pairs skips bad inputs with one warning each and a summary by reason', async () => {
  const { dir, tagsFile } = await synthWithTags(6);
  const add = async (name: string, bytes: Buffer | string, tagText: string | null = 'circle'): Promise<void> => {
    await writeFile(path.join(dir, name), bytes);
    if (tagText !== null) await writeFile(path.join(dir, name.replace(/\.\w+$/, '.txt')), tagText);
  };
  const jpg = await solid(64, 64, [200, 0, 0]).jpeg().toBuffer();
  const bomb = Buffer.from(jpg);
  let i = 2;
  while (!(bomb[i] === 0xff && bomb[i + 1] === 0xc0)) i += 2 + bomb.readUInt16BE(i + 2);
  bomb.writeUInt16BE(60000, i + 5);
  bomb.writeUInt16BE(60000, i + 7);
  await add('empty.jpg', Buffer.alloc(0));
  await add('random.jpg', Buffer.from('this is not a jpeg at all, just text'.repeat(20)));
  await add('truncated.jpg', jpg.subarray(0, jpg.length >> 1));
  await add('bomb.jpg', bomb);
  await add('unknown-tags.jpg', jpg, 'no_such_tag another_unknown\n');
  await add('no-txt.jpg', jpg, null);
  await writeFile(path.join(dir, 'orphan.txt'), 'circle');
  const out = path.join(dir, '..', 'shards-bad');
  const r = await cli('pairs', dir, '--tags', tagsFile, '--out', out, '--size', '32', '--holdout', '0');
  assert.equal(r.code, 0, r.err.join('\n'));
  const warnings = r.err.filter((l) => l.startsWith('warning:'));
  const expectWarning = (file: string, reason: string): void => {
    assert.equal(
      warnings.filter((w) => w.includes(`${path.join(dir, file)}: ${reason}`)).length,
      1,
      `${file} ${reason}\n${warnings.join('\n')}`,
    );
  };
  expectWarning('empty.jpg', 'skipped, not-an-image');
  expectWarning('random.jpg', 'skipped, not-an-image');
  expectWarning('truncated.jpg', 'skipped, truncated');
  expectWarning('bomb.jpg', 'skipped, too-large');
  expectWarning('unknown-tags.jpg', 'skipped, no-known-tags');
  expectWarning('no-txt.jpg', 'skipped, no-tag-file');
  expectWarning('orphan.txt', 'tag file without image');
  assert.equal(warnings.filter((w) => !w.includes('the holdout has')).length, 7);
  assert.match(
    r.out.find((l) => l.startsWith('kept'))!,
    /^kept 6 .* skipped: (?=.*not-an-image 2)(?=.*truncated 1)(?=.*too-large 1)(?=.*no-known-tags 1)(?=.*no-tag-file 1).*; tag files without image: 1$/,
  );
});

test('an interrupted pairs run resumes to the same bytes as an uninterrupted one', async () => {
  const { dir, tags } = await synthWithTags(45);
  const whole = path.join(dir, '..', 'whole');
  await makeShards(base(dir, tags, whole));
  const part = path.join(dir, '..', 'part');
  await assert.rejects(
    makeShards({
      ...base(dir, tags, part),
      onProgress: (n) => {
        if (n === 27) throw new Error('interrupted');
      },
    }),
    /interrupted/,
  );
  const partial = await readShardIndex(part);
  assert.equal(partial.progress.complete, false);
  assert.ok(partial.progress.sourcesDone > 0 && partial.progress.sourcesDone < 27);
  await writeFile(path.join(part, '.shard-00009.safetensors.4242.7abc12.tmp'), 'half-written'); // as a kill -9 leaves it
  await writeFile(path.join(part, 'notes.tmp'), "the user's own file"); // not ours: never deleted
  let resumedFrom = -1;
  const done = await makeShards({ ...base(dir, tags, part), onStart: (i) => (resumedFrom = i.resumedFrom) });
  assert.equal(resumedFrom, partial.progress.sourcesDone);
  assert.equal(done.progress.complete, true);
  const files = (await readdir(whole)).filter((f) => f.endsWith('.safetensors')).sort();
  assert.deepEqual(
    (await readdir(part)).filter((f) => f.endsWith('.safetensors') || f.endsWith('.tmp')).sort(),
    [...files, 'notes.tmp'].sort(),
  );
  for (const f of files) assert.ok((await readFile(path.join(whole, f))).equals(await readFile(path.join(part, f))), f);
  assert.deepEqual(done.shards, (await readShardIndex(whole)).shards);
});

test('refuses to continue shards with a changed tags.csv, image size, padding or shard size', async () => {
  const { dir, tags, tagsFile } = await synthWithTags(12);
  const out = path.join(dir, '..', 'shards-changed');
  await makeShards(base(dir, tags, out));
  const other = TagIndex.parse(
    Buffer.from((await readFile(tagsFile, 'utf8')).replace(/\n[^\n]*\n$/, '\n')),
    'other.csv',
  );
  await assert.rejects(
    makeShards(base(dir, other, out)),
    (e: unknown) => e instanceof UsageError && /--tags has changed since/.test(e.message),
  );
  await assert.rejects(
    makeShards({ ...base(dir, tags, out), imageSize: 64 }),
    (e: unknown) => e instanceof UsageError && /Expected imageSize 32 as recorded/.test(e.message),
  );
  await assert.rejects(
    makeShards({ ...base(dir, tags, out), pad: 'topleft' }),
    (e: unknown) =>
      e instanceof UsageError &&
      /Expected pad "center" as recorded .* but this run asks for "topleft"; use a new --out/.test(e.message),
  );
  const b = base(dir, tags, out);
  await assert.rejects(
    makeShards({ ...b, shardSize: b.shardSize + 1 }),
    (e: unknown) =>
      e instanceof UsageError &&
      /Expected shardSize \d+ as recorded .* but this run asks for \d+; use a new --out/.test(e.message),
  );
});

test('rejects a truncated shard', async () => {
  const { dir, tags } = await synthWithTags(5);
  const out = path.join(dir, '..', 'shards-trunc');
  const index = await makeShards({ ...base(dir, tags, out), holdout: 0 });
  const file = path.join(out, index.shards[0]!.file);
  await truncate(file, 1000);
  await assert.rejects(
    readShard(out, index.shards[0]!, index),
    (e: unknown) => e instanceof UsageError && e.message.includes(file) && /truncated\?/.test(e.message),
  );
});

test('pairs reports a missing tags.csv and bad numbers as usage errors', async () => {
  const dir = await tempDir();
  const missing = await cli('pairs', dir, '--tags', path.join(dir, 'nope.csv'), '--out', path.join(dir, 's'));
  assert.equal(missing.code, 2);
  assert.match(missing.err[0]!, /Expected a tags.csv file for --tags but ".*nope.csv" cannot be read/);
  const bad = await cli('pairs', dir, '--tags', 'x', '--out', 'y', '--holdout', '2');
  assert.equal(bad.code, 2);
  assert.equal(bad.err.length, 1);
  assert.match(bad.err[0]!, /Expected number between 0 and 0.5 for --holdout but received 2/);
});
