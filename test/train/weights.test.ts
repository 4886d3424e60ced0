// `train --backbone FILE` for the weights users have: Keras's notop .h5 (HWIO), a torchvision/timm
// .safetensors state dict (features.N, OIHW) and ONNX. Files of each layout are generated from one set
// of OIHW weights; the imported model's output equals a float64 forward pass of those source weights.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import h5wasm from 'h5wasm/node';
import ort from 'onnxruntime-node';
import { writeSafetensors, type TensorSpec } from '../../src/data/safetensors.js';
import { importBackbone } from '../../src/train/backbone.js';
import { UsageError } from '../../src/util/errors.js';
import { gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { buildInferenceGraph } from '../../training/graphs.js';
import { referenceForward } from '../../training/reference.js';
import { tempDir } from '../helpers.js';
import { zooVgg16 } from '../graphs/zoo.js';

const dir = await tempDir();
const c = gradcheckConfig({ freeze: 0 });
const source = zooVgg16({ widths: c.widths, seed: 4 }); // OIHW weights and the same in an ONNX file
const TORCH_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]; // torchvision's features.N of the 13 convs
const shapeOf = (i: number): [number, number] => [c.widths[i]!, i === 0 ? 3 : c.widths[i - 1]!];

/** OIHW → HWIO, written out index by index (the test's own conversion, not the importer's). */
function toHwio(w: Float32Array, co: number, ci: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < co; o++)
    for (let i = 0; i < ci; i++)
      for (let y = 0; y < 3; y++)
        for (let x = 0; x < 3; x++)
          out[y * 3 * ci * co + x * ci * co + i * co + o] = w[o * ci * 9 + i * 9 + y * 3 + x]!;
  return out;
}

async function kerasFile(name: string, mutate?: (i: number) => number[] | null): Promise<string> {
  await h5wasm.ready;
  const file = path.join(dir, name);
  const f = new h5wasm.File(file, 'w');
  const layers: string[] = ['input_1'];
  const blocks = [2, 2, 3, 3, 3];
  let k = 0;
  blocks.forEach((n, b) => {
    for (let j = 1; j <= n; j++) {
      const lname = `block${b + 1}_conv${j}`;
      layers.push(lname);
      const [co, ci] = shapeOf(k);
      const g = f.create_group(lname);
      g.create_attribute('weight_names', [`${lname}/kernel:0`, `${lname}/bias:0`]);
      const inner = g.create_group(lname);
      const shape = mutate?.(k) ?? [3, 3, ci, co];
      inner.create_dataset({
        name: 'kernel:0',
        data:
          shape[2] === ci && shape[3] === co
            ? toHwio(source.weights.get(`conv${k + 1}.weight`)!, co, ci)
            : new Float32Array(shape.reduce((a, v) => a * v, 1)),
        shape,
        dtype: '<f',
      });
      inner.create_dataset({
        name: 'bias:0',
        data: source.weights.get(`conv${k + 1}.bias`)!,
        shape: [co],
        dtype: '<f',
      });
      k++;
    }
    layers.push(`block${b + 1}_pool`);
    f.create_group(`block${b + 1}_pool`).create_attribute('weight_names', ['']);
  });
  f.create_attribute('layer_names', layers);
  f.close();
  return file;
}

async function torchFile(name: string, count = 13): Promise<string> {
  const file = path.join(dir, name);
  const f32 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: Record<string, TensorSpec> = {};
  for (let i = 0; i < count; i++) {
    const [co, ci] = shapeOf(i);
    tensors[`features.${TORCH_INDEX[i]}.weight`] = {
      dtype: 'F32',
      shape: [co, ci, 3, 3],
      chunks: [f32(source.weights.get(`conv${i + 1}.weight`)!)],
    };
    tensors[`features.${TORCH_INDEX[i]}.bias`] = {
      dtype: 'F32',
      shape: [co],
      chunks: [f32(source.weights.get(`conv${i + 1}.bias`)!)],
    };
  }
  tensors['classifier.0.weight'] = { dtype: 'F32', shape: [4, 2], chunks: [f32(new Float32Array(8))] };
  await writeSafetensors(file, tensors);
  return file;
}

test('Keras .h5, torchvision .safetensors and ONNX import to the same weights; the model then equals a float64 forward of the source weights', async () => {
  const onnx = path.join(dir, 'vgg16.onnx');
  await writeFile(onnx, source.bytes);
  const batch = randomBatch(c, 3, 5);
  const head = randomParams(c, 8);
  const want = referenceForward(c, new Map([...head, ...source.weights]), batch, 'eval').logits.map(
    (z) => 1 / (1 + Math.exp(-z)),
  );
  for (const file of [await kerasFile('vgg16_notop.h5'), await torchFile('vgg16.safetensors'), onnx]) {
    const imported = await importBackbone(file, c);
    assert.equal(imported.size, 26);
    for (const [name, w] of source.weights) assert.deepEqual(imported.get(name), w, `${path.basename(file)}: ${name}`);
    const session = await ort.InferenceSession.create(buildInferenceGraph(c, new Map([...head, ...imported])).encode());
    const out = await session.run({ image: new ort.Tensor('uint8', batch.images, [3, c.imageSize, c.imageSize, 3]) });
    const probs = out.probs!.data as Float32Array;
    let worst = 0;
    probs.forEach((p, i) => (worst = Math.max(worst, Math.abs(p - want[i]!))));
    assert.ok(worst < 1e-5, `${path.basename(file)}: max |Δprob| ${worst}`);
    await session.release();
  }
});

test('weights files of the wrong layout are refused naming the file and the layer', async () => {
  const usage =
    (re: RegExp) =>
    (e: unknown): boolean =>
      e instanceof UsageError && re.test(e.message);
  const bad = await kerasFile('wide.h5', (i) => (i === 2 ? [3, 3, c.widths[1]!, 99] : null));
  await assert.rejects(
    importBackbone(bad, c),
    usage(
      new RegExp(
        `Expected weight shape \\[${c.widths[2]},${c.widths[1]},3,3\\] \\(OIHW\\) for conv 3, layer block2_conv1 of ".*wide\\.h5", but found \\[99,${c.widths[1]},3,3\\]`,
      ),
    ),
  );
  await assert.rejects(
    importBackbone(await torchFile('short.safetensors', 12), c),
    usage(/Expected 13 conv layers \(VGG16\) in ".*short\.safetensors" but found 12/),
  );
  const notH5 = path.join(dir, 'not.h5');
  await writeFile(notH5, 'plain text');
  await assert.rejects(
    importBackbone(notH5, c),
    usage(/Expected an HDF5 file \(Keras weights\) in ".*not\.h5" but it does not open as one/),
  );
  await assert.rejects(
    importBackbone(path.join(dir, 'missing.h5'), c),
    usage(/cannot be read \(no such file or folder\)/),
  );
});
