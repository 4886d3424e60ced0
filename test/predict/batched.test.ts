// Batched prediction: more images than --batch (a partial last batch) give, row for row and in the
// order the output names, what one image at a time gives; paths on stdin through the CLI; captions are
// the top tags of --format json.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';

const dir = await tempDir();
const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'hatsune_miku'];
const model = await tinyModel(path.join(dir, 'model.onnx'), TAGS, [0, 0, 0, 0, 9, 4], 7);
const images = path.join(dir, 'images');
await mkdir(images);
const files: string[] = [];
for (let i = 0; i < 11; i++) {
  files.push(path.join(images, `b${String(i).padStart(2, '0')}.png`));
  await solid(20 + i * 5, 40 - i, [i * 20, 255 - i * 20, (i * 77) % 255])
    .png()
    .toFile(files[i]!);
}

test('pred and vec with --batch 4 over 11 images equal one-image runs, row for row, in the order listed', async () => {
  const batched = await cli(
    'pred',
    images,
    '--model',
    model,
    '--batch',
    '4',
    '--format',
    'jsonl',
    '--top',
    '6',
    '--rating',
    'all',
  );
  assert.equal(batched.code, 0, batched.err.join('\n'));
  const rows = batched.out.map((l) => JSON.parse(l) as { file: string; tags: { tag: string; prob: number }[] });
  assert.deepEqual(
    rows.map((r) => r.file),
    files,
    'sorted folder order',
  );
  const vec = await cli('vec', images, '--model', model, '--batch', '4', '--kind', 'features');
  const vecRows = vec.out.map((l) => JSON.parse(l) as { file: string; vector: number[] });
  for (const [i, file] of files.entries()) {
    const one = JSON.parse(
      (await cli('pred', file, '--model', model, '--batch', '1', '--format', 'jsonl', '--top', '6', '--rating', 'all'))
        .out[0]!,
    );
    assert.deepEqual(rows[i], one, file);
    const oneVec = JSON.parse((await cli('vec', file, '--model', model, '--batch', '1', '--kind', 'features')).out[0]!);
    assert.equal(vecRows[i]!.file, file);
    vecRows[i]!.vector.forEach((v, j) =>
      assert.ok(
        Math.abs(v - oneVec.vector[j]) <= 1e-6 * Math.max(1, Math.abs(v)),
        `${file} feature ${j}: ${v} vs ${oneVec.vector[j]}`,
      ),
    );
  }
});

test('paths on stdin through the CLI (-) are tagged in the order given', () => {
  const order = [files[7]!, files[2]!, files[9]!];
  const r = spawnSync(process.execPath, ['dist/src/cli/main.js', 'pred', '-', '--model', model, '--format', 'jsonl'], {
    input: `${order.join('\n')}\n`,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).file),
    order,
  );
});

test('a caption holds exactly the tags of --format json, in its order, underscores as spaces', async () => {
  const args = ['--model', model, '--threshold', '0.3', '--rating', 'all', '--sort', 'confidence'];
  const json = JSON.parse((await cli('pred', files[4]!, ...args, '--format', 'json')).out.join('\n'))[0].tags as {
    tag: string;
    category: number;
  }[];
  assert.equal((await cli('pred', files[4]!, ...args, '--format', 'caption', '--overwrite')).code, 0);
  const caption = (await readFile(files[4]!.replace(/\.png$/, '.txt'), 'utf8')).trimEnd();
  const ratings = json.filter((t) => t.category === 9).map((t) => t.tag);
  const rest = json.filter((t) => t.category !== 9).map((t) => t.tag);
  assert.equal(caption, [...ratings, ...rest].map((t) => t.replace(/_/g, ' ')).join(', '));
  assert.ok(json.length > 0);
});
