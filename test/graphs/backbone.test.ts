import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { importBackbone } from '../../src/train/backbone.js';
import { defaultConfig, VGG16_TINY_WIDTHS } from '../../training/params.js';
import { UsageError } from '../../src/util/errors.js';
import { tempDir } from '../helpers.js';
import { zooVgg16 } from './zoo.js';

const config = defaultConfig({ tags: 4, widths: [...VGG16_TINY_WIDTHS], imageSize: 32, hidden: 8 });

async function file(bytes: Uint8Array | string): Promise<string> {
  const f = path.join(await tempDir(), 'vgg16.onnx');
  await writeFile(f, bytes);
  return f;
}

const usageError =
  (pattern: RegExp) =>
  (e: unknown): boolean =>
    e instanceof UsageError && pattern.test(e.message);

test('imports the 13 conv weights and biases of a zoo-layout VGG16 in graph order', async () => {
  const { bytes, weights } = zooVgg16({ widths: config.widths });
  const got = await importBackbone(await file(bytes), config);
  assert.equal(got.size, 26);
  for (const [name, w] of weights) assert.deepEqual(got.get(name), w, name);
});

test('rejects a file with 12 convs, saying what it found', async () => {
  const f = await file(zooVgg16({ widths: config.widths, dropLast: true }).bytes);
  await assert.rejects(
    importBackbone(f, config),
    usageError(/Expected 13 Conv nodes \(VGG16\) in ".*vgg16.onnx" but found 12/),
  );
});

test('rejects convs of the wrong shape, naming the conv and both shapes', async () => {
  const f = await file(zooVgg16({ widths: config.widths }).bytes);
  const wide = defaultConfig({ tags: 4, imageSize: 32, hidden: 8 }); // full VGG16 widths
  await assert.rejects(
    importBackbone(f, wide),
    usageError(/Expected weight shape \[64,3,3,3\] for conv 1 .* but found \[8,3,3,3\]/),
  );
});

test('rejects vgg16-bn and files that are not ONNX', async () => {
  const bn = await file(zooVgg16({ widths: config.widths, withBatchNorm: true }).bytes);
  await assert.rejects(
    importBackbone(bn, config),
    usageError(/BatchNormalization nodes \(vgg16-bn is not supported\)/),
  );
  const junk = await file('definitely not protobuf \u0000\u00ff\u00fe');
  await assert.rejects(
    importBackbone(junk, config),
    usageError(/Expected an ONNX model in ".*" but it does not decode|found no nodes/),
  );
  await assert.rejects(importBackbone('/nonexistent/vgg16.onnx', config), usageError(/cannot be read/));
});
