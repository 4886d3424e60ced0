import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { countTags } from '../../src/data/tags.js';
import { cli, tempDir } from '../helpers.js';

async function digest(dir: string): Promise<string> {
  const h = createHash('sha256');
  const files = (await readdir(dir, { recursive: true })).sort();
  for (const f of files) {
    if (!/\.\w+$/.test(f)) continue;
    h.update(f);
    h.update(await readFile(path.join(dir, f)));
  }
  return h.digest('hex');
}

test('synth writes the same bytes for the same seed and different ones for another', async () => {
  const dir = await tempDir();
  for (const [name, seed] of [
    ['a', '3'],
    ['b', '3'],
    ['c', '4'],
  ]) {
    const r = await cli('synth', '--out', path.join(dir, name!), '--count', '30', '--seed', seed!);
    assert.equal(r.code, 0, r.err.join('\n'));
  }
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => digest(path.join(dir, n))));
  assert.equal(a, b);
  assert.notEqual(a, c);
  const files = await readdir(path.join(dir, 'a', '000'));
  assert.equal(files.filter((f) => f.endsWith('.txt')).length, 30);
});

test('synth tag frequencies are long-tailed like a booru', async () => {
  const dir = await tempDir();
  await cli('synth', '--out', dir, '--count', '300', '--seed', '1');
  const { counts } = await countTags(dir);
  const sorted = [...counts.values()].sort((x, y) => y - x);
  assert.ok(sorted.length >= 40, `distinct tags ${sorted.length}`);
  assert.ok(sorted[0]! >= 20 * sorted[sorted.length - 1]!, `head ${sorted[0]} tail ${sorted.at(-1)}`);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  assert.ok(median <= sorted[0]! / 10, `median ${median} vs head ${sorted[0]}`);
});
