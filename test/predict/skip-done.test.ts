// pred --out and --skip-done: rows go to the file one write each and a rerun continues it (a torn last
// row cut off and its image tagged again; every image once); captions already there are left alone;
// what cannot be continued is refused in one line. (kill -9 mid-run: test/faults/hostile-cases.ts.)
import assert from 'node:assert/strict';
import { appendFile, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';

const dir = await tempDir();
const TAGS = ['red', 'blue', 'rating:general'];
const model = await tinyModel(path.join(dir, 'model.onnx'), TAGS, [0, 0, 9]);
const images = path.join(dir, 'images');
const names: string[] = [];
for (let i = 0; i < 8; i++) {
  const f = path.join(images, `${i}.png`);
  await (await import('node:fs/promises')).mkdir(images, { recursive: true });
  await solid(16, 12, [30 * i, 200 - 20 * i, 90])
    .png()
    .toFile(f);
  names.push(f);
}
const pred = (...args: string[]): ReturnType<typeof cli> =>
  cli('pred', images, '--model', model, '--threshold', '0', '--rating', 'all', ...args);

test('--out FILE (jsonl): every image one row; a second run is refused unless --skip-done, which continues after a torn row', async () => {
  const out = path.join(dir, 'tags.jsonl');
  const first = await pred('--format', 'jsonl', '--out', out);
  assert.equal(first.code, 0, first.err.join('\n'));
  assert.deepEqual(first.out, [], 'rows go to the file, not stdout');
  const rows = (await readFile(out, 'utf8')).trimEnd().split('\n');
  assert.deepEqual(rows.map((r) => JSON.parse(r).file).sort(), [...names].sort());
  const again = await pred('--format', 'jsonl', '--out', out);
  assert.equal(again.code, 2);
  assert.match(
    again.err.at(-1)!,
    /Expected a new file for --out but .*tags\.jsonl" holds \d+ bytes: --skip-done continues it/,
  );
  // As a kill leaves it: three whole rows, then half of the fourth.
  await writeFile(out, `${rows.slice(0, 3).join('\n')}\n${rows[3]!.slice(0, 20)}`);
  const resumed = await pred('--format', 'jsonl', '--out', out, '--skip-done');
  assert.equal(resumed.code, 0, resumed.err.join('\n'));
  assert.ok(
    resumed.err.some((l) => /its last row was cut off \(20 bytes/.test(l)),
    resumed.err.join('\n'),
  );
  assert.ok(resumed.err.includes('pred: 3 images already done, left out (--skip-done)'), resumed.err.join('\n'));
  const after = (await readFile(out, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((r) => JSON.parse(r).file);
  assert.deepEqual([...after].sort(), [...names].sort(), 'every image exactly once');
  assert.deepEqual(
    after.slice(0, 3),
    rows.slice(0, 3).map((r) => JSON.parse(r).file),
    'the rows there are kept as they were',
  );
});

test('--out FILE (csv): its header once, continued under the same header, a partly written last image written again whole; another header is refused', async () => {
  const out = path.join(dir, 'tags.csv');
  assert.equal((await pred('--format', 'csv', '--out', out)).code, 0);
  const text = await readFile(out, 'utf8');
  const [header, ...rows] = text.trimEnd().split('\n');
  assert.equal(header, 'file,tag,prob,category');
  const firstImage = rows.filter((r) => r.startsWith(`${names[0]},`));
  const secondImage = rows.filter((r) => r.startsWith(`${names[1]},`));
  assert.ok(secondImage.length > 1);
  // As a kill can leave it: the first image's rows, then only the first row of the second image's
  // (its rows are one write, which can end part-way): that image is tagged again, whole.
  await writeFile(out, `${header}\n${firstImage.join('\n')}\n${secondImage[0]}\n`);
  const resumed = await pred('--format', 'csv', '--out', out, '--skip-done');
  assert.equal(resumed.code, 0, resumed.err.join('\n'));
  const lines = (await readFile(out, 'utf8')).trimEnd().split('\n');
  assert.equal(lines.filter((l) => l === header).length, 1);
  assert.deepEqual(lines.slice(1).sort(), rows.sort());
  await writeFile(out, 'name,score\nx,1\n');
  const other = await pred('--format', 'csv', '--out', out, '--skip-done');
  assert.equal(other.code, 2);
  assert.match(other.err.at(-1)!, /Expected pred's CSV header "file,tag,prob,category" on line 1 of/);
});

test('captions: --skip-done leaves images whose caption exists, byte for byte, and captions the rest', async () => {
  await writeFile(path.join(images, '0.txt'), 'my own words');
  await writeFile(path.join(images, '1.txt'), 'hand, written');
  const r = await pred('--format', 'caption', '--skip-done');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.ok(r.err.includes('pred: 2 images already done, left out (--skip-done)'), r.err.join('\n'));
  assert.equal(await readFile(path.join(images, '0.txt'), 'utf8'), 'my own words');
  assert.equal(await readFile(path.join(images, '1.txt'), 'utf8'), 'hand, written');
  for (let i = 2; i < 8; i++) assert.match(await readFile(path.join(images, `${i}.txt`), 'utf8'), /red|blue/);
});

test('what cannot be continued is one line: --out with text, --skip-done without captions or --out, --out through a link', async () => {
  const text = await pred('--format', 'text', '--out', path.join(dir, 'x.txt'));
  assert.match(text.err.at(-1)!, /Expected --format jsonl or csv with --out/);
  const nothing = await pred('--format', 'jsonl', '--skip-done');
  assert.match(nothing.err.at(-1)!, /Expected --format caption or --out FILE with --skip-done/);
  const target = path.join(dir, 'elsewhere.jsonl');
  await appendFile(target, '');
  await symlink(target, path.join(dir, 'link.jsonl'));
  const link = await pred('--format', 'jsonl', '--out', path.join(dir, 'link.jsonl'));
  assert.equal(link.code, 2);
  assert.match(link.err.at(-1)!, /is a symbolic link: nothing is written through one/);
});
