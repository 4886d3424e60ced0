// `quantize --out` and what lies beside it (issue: trust, round four, 1–2): never written over the
// float model's own external data, an existing file that is not an ONNX model, or into a folder where
// another model's tags file would be read with the int8 model.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';
import { externalize } from '../quantize/externalize.js';
import { writeSelectedTags } from '../quantize/fixtures.js';
import { assertOneLine, fault, root, run } from './harness.js';

const TAGS = Array.from({ length: 24 }, (_, i) => `tag_${i}`);

/** A WD-layout foreign tagger with two MatMul layers big enough to quantize (8×8 NHWC input). */
function tagger(): Uint8Array {
  const rng = new Rng(5);
  const g = new Graph('q');
  const w = (name: string, k: number, n: number): string =>
    g.initializer(
      name,
      'float32',
      [k, n],
      Float32Array.from({ length: k * n }, () => rng.next() - 0.5),
    );
  const x = g.op('Reshape', [g.input('input', 'float32', ['N', 8, 8, 3]), g.const([-1, 192])]);
  const h = g.op('Relu', [g.op('MatMul', [g.op('Mul', [x, g.const(1 / 255, 'float32')]), w('w1', 192, 32)])]);
  g.output(g.op('Sigmoid', [g.op('MatMul', [h, w('w2', 32, TAGS.length)])]), 'output', 'float32', ['N', TAGS.length]);
  return g.encode();
}

/** A folder with the tagger (weights in `weights.onnx`, an external data file), its tags file. */
async function folder(name: string): Promise<{ dir: string; model: string; data: string }> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await writeSelectedTags(dir, TAGS);
  await externalize(tagger(), dir, 'model.onnx', 'weights.onnx');
  return { dir, model: path.join(dir, 'model.onnx'), data: path.join(dir, 'weights.onnx') };
}

export function registerQuantize(): void {
  fault(
    "quantize --out naming the float model's external data file is refused; the float model still loads",
    async () => {
      const { dir, model, data } = await folder('q-data');
      const before = await readFile(data);
      const r = run(['quantize', model, '--out', data]);
      assert.equal(r.code, 2, r.err);
      assertOneLine(r.err, /Expected --out to name a new file, not ".*weights\.onnx", the external data of the model/);
      assert.deepEqual(await readFile(data), before);
      const img = path.join(dir, 'a.png');
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
        .png()
        .toFile(img);
      assert.equal(run(['pred', img, '--model', model]).code, 0);
    },
  );

  fault(
    'quantize --out an existing file that is not an ONNX model (or not .onnx) is refused; the file is kept',
    async () => {
      const { dir, model } = await folder('q-photo');
      const jpeg = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#ff0000' } })
        .jpeg()
        .toBuffer();
      for (const [name, pattern] of [
        ['photo.jpg', /Expected --out ending in \.onnx but received ".*photo\.jpg"$/],
        [
          'photo.onnx',
          /Expected --out to be a new file or an ONNX model to replace, but ".*photo\.onnx" is not an ONNX model/,
        ],
      ] as const) {
        const file = path.join(dir, name);
        await writeFile(file, jpeg);
        const r = run(['quantize', model, '--out', file]);
        assert.equal(r.code, 2, r.err);
        assertOneLine(r.err, pattern);
        assert.deepEqual(await readFile(file), jpeg, `${name} kept`);
      }
    },
  );

  fault(
    "quantize into a folder holding another model's tags file is refused before writing; the same tags are kept",
    async () => {
      const { model } = await folder('q-tags');
      const other = path.join(root, 'q-tags-other');
      await mkdir(other);
      await writeSelectedTags(
        other,
        TAGS.map((t) => `other_${t}`),
      );
      const theirs = await readFile(path.join(other, 'selected_tags.csv'));
      const r = run(['quantize', model, '--out', path.join(other, 'int8.onnx')]);
      assert.equal(r.code, 2, r.err);
      assertOneLine(
        r.err,
        /Expected the folder of --out to hold this model's tags or none, but ".*selected_tags\.csv" holds other tags/,
      );
      assert.deepEqual(await readdir(other), ['selected_tags.csv'], 'nothing written');
      assert.deepEqual(await readFile(path.join(other, 'selected_tags.csv')), theirs);
      // The same tags already there: kept as they are, the model written beside them.
      const same = path.join(root, 'q-tags-same');
      await mkdir(same);
      await writeSelectedTags(same, TAGS);
      const ok = run(['quantize', model, '--out', path.join(same, 'int8.onnx')]);
      assert.equal(ok.code, 0, ok.err);
      assert.ok(existsSync(path.join(same, 'int8.onnx')));
      assert.doesNotMatch(ok.out, /copied the tags file/);
    },
  );

  fault('quantize --images names the images it could not read, not only their count', async () => {
    const { dir, model } = await folder('q-unreadable');
    const images = path.join(dir, 'images');
    await mkdir(images);
    for (const name of ['a.png', 'b.png'])
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#406080' } })
        .png()
        .toFile(path.join(images, name));
    await writeFile(path.join(images, 'broken.png'), 'not a png');
    const r = run([
      'quantize',
      model,
      '--out',
      path.join(dir, 'int8.onnx'),
      '--images',
      images,
      '--min-agreement',
      '0',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /agreement on 2 images: .*; 1 image unreadable: ".*broken\.png"/);
  });
}
