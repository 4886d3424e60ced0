import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseTags, walkDataset } from '../../src/data/scan.js';
import { tempDir } from '../helpers.js';

test('parseTags reads whitespace-separated booru tags with CRLF, tabs, blank lines and repeats', () => {
  assert.deepEqual(parseTags('1girl\tlong_hair\r\n\r\n  smile 1girl\r\n'), ['1girl', 'long_hair', 'smile']);
});

test('parseTags reads comma-separated captions, spaces becoming underscores', () => {
  assert.deepEqual(parseTags('1girl, long hair,  blue   eyes ,, smile\n'), [
    '1girl',
    'long_hair',
    'blue_eyes',
    'smile',
  ]);
});

test('parseTags keeps non-ASCII tags, NFC-normalized, and drops a BOM', () => {
  const decomposed = 'cafe\u0301';
  assert.deepEqual(parseTags(`\uFEFF${decomposed} 初音ミク café`), ['café', '初音ミク']);
});

test('walkDataset visits images in sorted order, pairs tag files and reports orphans', async () => {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'b'), { recursive: true });
  await mkdir(path.join(dir, 'a'), { recursive: true });
  for (const f of [
    'b/2.png',
    'b/2.txt',
    'a/1.JPG',
    'a/1.JPG.txt',
    'a/0.webp',
    'a/lonely.txt',
    'a/notes.md',
    'top.gif',
    'top.txt',
    '.hidden.png',
  ]) {
    await writeFile(path.join(dir, f), 'x');
  }
  const seen = [];
  for await (const e of walkDataset(dir)) seen.push([e.kind, e.name, e.tagFile && path.relative(dir, e.tagFile)]);
  assert.deepEqual(seen, [
    ['image', 'top.gif', 'top.txt'],
    ['image', 'a/0.webp', null],
    ['image', 'a/1.JPG', 'a/1.JPG.txt'],
    ['orphan-tags', 'a/lonely.txt', 'a/lonely.txt'],
    ['image', 'b/2.png', 'b/2.txt'],
  ]);
});
