import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { TagIndex, countTags, formatTagsCsv, selectTags } from '../../src/data/tags.js';
import { UsageError } from '../../src/util/errors.js';
import { cli, tempDir } from '../helpers.js';

async function dataset(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

test('selectTags orders by count, breaks ties by name, applies top and min-count', () => {
  const counts = new Map([
    ['b', 3],
    ['a', 3],
    ['c', 5],
    ['d', 1],
    ['rating:safe', 2],
  ]);
  assert.deepEqual(
    selectTags(counts, 10, 2).map((r) => r.name),
    ['c', 'a', 'b', 'rating:safe'],
  );
  assert.deepEqual(
    selectTags(counts, 2, 1).map((r) => r.name),
    ['c', 'a'],
  );
  assert.equal(selectTags(counts, 10, 1).find((r) => r.name === 'rating:safe')!.category, 9);
});

test('tags command counts each image once per tag, across folders and tag-file styles', async () => {
  const dir = await dataset({
    'x/1.png': '',
    'x/1.txt': 'smile smile 1girl\r\n',
    'x/2.jpg': '',
    'x/2.txt': '1girl, long hair\n',
    'y/3.webp': '',
    'y/3.txt': '\t1girl\n\nrating:general  ☆\n',
    'y/4.png': '', // image without tags
    'y/orphan.txt': 'never_counted',
  });
  const out = path.join(dir, 'tags.csv');
  const r = await cli('tags', dir, '--out', out, '--min-count', '1');
  assert.equal(r.code, 0, r.err.join('\n'));
  const csv = await readFile(out, 'utf8');
  assert.equal(
    csv,
    'tag_id,name,category,count\n0,1girl,0,3\n1,long_hair,0,1\n2,rating:general,9,1\n3,smile,0,1\n4,☆,0,1\n',
  );
  assert.ok(r.err.some((l) => l.includes('1 images have no .txt')));
  assert.ok(r.err.some((l) => l.includes('1 .txt files have no image')));
});

test('tags output is deterministic and round-trips through TagIndex with CSV quoting', async () => {
  const dir = await dataset({ '1.png': '', '1.txt': '"quoted" a,b c' }); // comma → caption style
  const counted = await countTags(dir);
  const csv = formatTagsCsv(selectTags(counted.counts, 10, 1));
  assert.equal(csv, formatTagsCsv(selectTags((await countTags(dir)).counts, 10, 1)));
  const index = TagIndex.parse(Buffer.from(csv), 'mem.csv');
  assert.deepEqual(index.names, ['"quoted"_a', 'b_c']);
  assert.equal(index.indexOf('b_c'), 1);
  assert.match(index.hash, /^[0-9a-f]{64}$/);
});

test('rejects a tags.csv with the wrong header, a repeated name or no rows', () => {
  const bad = (text: string, pattern: RegExp): void => {
    assert.throws(
      () => TagIndex.parse(Buffer.from(text), 't.csv'),
      (e: unknown) => e instanceof UsageError && pattern.test(e.message),
    );
  };
  bad('id,name\n0,a\n', /Expected header "tag_id,name,category,count" in "t.csv"/);
  bad('tag_id,name,category,count\n0,a,0,1\n1,a,0,1\n', /unique tag names in "t.csv" but "a" repeats at row 3/);
  bad('tag_id,name,category,count\n', /at least one tag in "t.csv"/);
  bad('tag_id,name,category,count\n0,a,x,1\n', /category integer ≥ 0 in "t.csv" row 2/);
});

test('tags command: missing folder and a folder without tags are usage errors', async () => {
  const missing = await cli('tags', '/nonexistent/dir', '--out', '/tmp/x.csv');
  assert.equal(missing.code, 2);
  assert.match(missing.err[0]!, /Expected an existing folder for DATASET but "\/nonexistent\/dir" does not exist/);
  const empty = await dataset({ 'a.png': '' });
  const none = await cli('tags', empty, '--out', path.join(empty, 't.csv'));
  assert.equal(none.code, 2);
  assert.match(none.err.at(-1)!, /Expected images with tags in .* but found 1 images and no tag/);
  const bad = await cli('tags', empty, '--out', path.join(empty, 't.csv'), '--top', '0');
  assert.match(bad.err[0]!, /Expected integer between 1 and 1000000 for --top but received 0/);
});
