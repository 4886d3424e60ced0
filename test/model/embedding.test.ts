// The embedding cut: on stand-ins of the taggers' head shapes (a MatMul over flattened NCHW or NHWC
// pixels, logits or probabilities; a Gemm with transB after global pooling; a 1×1 Conv before pooling)
// the tensor found is the scoring layer's input — checked by running the model with that tensor as an
// output (one row per image) and recomputing the scores from it in float64 with the layer's own weights —
// and a model
// without a findable one is refused in one line naming what stopped the walk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel, tensorToFloat32 } from '../../src/onnx/proto.js';
import { EMBEDDING_OUTPUT, findEmbedding, withEmbeddingOutput } from '../../src/model/embedding.js';
import { Rng } from '../../training/rng.js';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { image, predProbs, standIn, S, K, wdStandIn } from '../predict/stand-ins.js';
import { externalize } from '../quantize/externalize.js';
import { cli, tempDir } from '../helpers.js';

const rng = new Rng(41);
const random = (n: number, scale = 0.2): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
const C = 6;
const D = 8;

/** conv 3×3 (C) → ReLU → pooled → Flatten → Gemm(transB) → Sigmoid; the head's weight and bias returned. */
function gemmHead(): { model: Uint8Array; w: Float32Array; b: Float32Array } {
  const g = new Graph('gemm_head');
  const x = g.input('input', 'float32', ['N', 3, S, S]);
  const conv = g.op('Relu', [
    g.op('Conv', [x, g.initializer('c', 'float32', [D, 3, 3, 3], random(D * 27))], { pads: A.ints([1, 1, 1, 1]) }),
  ]);
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [conv])], { axis: A.i(1) });
  const w = random(K * D, 2);
  const b = random(K);
  const z = g.op(
    'Gemm',
    [pooled, g.initializer('fc', 'float32', [K, D], w), g.initializer('bias', 'float32', [K], b)],
    {
      transB: A.i(1),
    },
  );
  g.output(g.op('Sigmoid', [z]), 'probs', 'float32', ['N', K]);
  return { model: g.encode(), w, b };
}

/** conv 3×3 → ReLU → conv 1×1 (K, the head) → pooled → Flatten: logits, as ResNet-style taggers end. */
function convHead(lastKernel = 1): { model: Uint8Array; w: Float32Array } {
  const g = new Graph('conv_head');
  const x = g.input('input', 'float32', ['N', 3, S, S]);
  const conv = g.op('Relu', [
    g.op('Conv', [x, g.initializer('c', 'float32', [C, 3, 3, 3], random(C * 27))], { pads: A.ints([1, 1, 1, 1]) }),
  ]);
  const k = lastKernel;
  const w = random(K * C * k * k, 2);
  const head = g.op('Conv', [conv, g.initializer('head', 'float32', [K, C, k, k], w)], {
    pads: A.ints(Array(4).fill((k - 1) / 2)),
  });
  g.output(g.op('Flatten', [g.op('GlobalAveragePool', [head])], { axis: A.i(1) }), 'logits', 'float32', ['N', K]);
  return { model: g.encode(), w };
}

async function run(model: Uint8Array, layout: 'NCHW' | 'NHWC' = 'NCHW'): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  const n = 2;
  const input = new ort.Tensor('float32', random(n * 3 * S * S, 2), layout === 'NCHW' ? [n, 3, S, S] : [n, S, S, 3]);
  const out = await session.run({ [session.inputNames[0]!]: input });
  await session.release();
  return out;
}
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
const near = (a: ArrayLike<number>, b: ArrayLike<number>): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-4, `${i}: ${a[i]} vs ${b[i]}`);
};

test('a MatMul over the flattened pixels, NCHW and NHWC, logits and probabilities, one output of several: the MatMul’s input', async () => {
  for (const layout of ['NCHW', 'NHWC'] as const)
    for (const probabilities of [false, true]) {
      const model = standIn({ layout, probabilities, outputs: 2, index: 1 });
      const cut = findEmbedding(model, 'out1', 'm.onnx');
      assert.equal(cut.layer.op, 'MatMul');
      assert.equal(cut.width, 3 * S * S);
      const out = await run(withEmbeddingOutput(model, cut), layout);
      const e = out[EMBEDDING_OUTPUT]!;
      assert.deepEqual(e.dims, [2, 3 * S * S]);
      // The scores again from the embedding, with the layer's own weight and bias as the graph holds them.
      const inits = new Map(
        decodeModel(model)
          .graph.initializer.filter((t) => t.data_type === 1)
          .map((t) => [t.name, tensorToFloat32(t)]),
      );
      const [w, b] = [inits.get('w')!, inits.get('b')!];
      const f = e.data as Float32Array;
      const want = Array.from({ length: 2 * K }, (_, i) => {
        const [n, k] = [Math.floor(i / K), i % K];
        let z = b[k]!;
        for (let d = 0; d < 3 * S * S; d++) z += f[n * 3 * S * S + d]! * w[d * K + k]!;
        return probabilities ? sigmoid(z) : z;
      });
      near(out.out1!.data as Float32Array, want);
    }
});

test('a Gemm (transB) after global pooling: the pooled features, from which its weights give the scores', async () => {
  const { model, w, b } = gemmHead();
  const cut = findEmbedding(model, 'probs', 'm.onnx');
  assert.deepEqual([cut.layer.op, cut.width], ['Gemm', D]);
  const out = await run(withEmbeddingOutput(model, cut));
  const e = out[EMBEDDING_OUTPUT]!.data as Float32Array;
  const want = Array.from({ length: 2 * K }, (_, i) => {
    const [n, k] = [Math.floor(i / K), i % K];
    let z = b[k]!;
    for (let d = 0; d < D; d++) z += e[n * D + d]! * w[k * D + d]!;
    return sigmoid(z);
  });
  near(out.probs!.data as Float32Array, want);
});

test('a 1×1 Conv before pooling: the feature map it reads, averaged over its pixels; a 3×3 last Conv is refused', async () => {
  const { model, w } = convHead();
  const cut = findEmbedding(model, 'logits', 'm.onnx');
  assert.deepEqual([cut.layer.op, cut.width], ['Conv', C]);
  const out = await run(withEmbeddingOutput(model, cut));
  const pooled = out[EMBEDDING_OUTPUT]!;
  assert.deepEqual(pooled.dims, [2, C]);
  const f = pooled.data as Float32Array;
  // logits[n,k] = mean over pixels of Σc w[k,c]·map[n,c,p] = Σc w[k,c]·(the map's mean)[n,c].
  const want = Array.from({ length: 2 * K }, (_, i) => {
    const [n, k] = [Math.floor(i / K), i % K];
    let z = 0;
    for (let c = 0; c < C; c++) z += w[k * C + c]! * f[n * C + c]!;
    return z;
  });
  near(out.logits!.data as Float32Array, want);
  assert.throws(
    () => findEmbedding(convHead(3).model, 'logits', 'wide.onnx'),
    /^UsageError: Expected a final scoring layer .* of "wide\.onnx" but its last layer \S+ is a 3×3 Conv, not 1×1; name the embedding with --embedding TENSOR$/,
  );
});

test('no scoring layer, two computed operands, or a wrong --embedding: one line each', () => {
  const g = new Graph('mean_only');
  const x = g.input('input', 'float32', ['N', 8, 8, 3]);
  g.output(
    g.op('Sigmoid', [g.op('ReduceMean', [x], { axes: A.ints([1, 2]), keepdims: A.i(0) })]),
    'output',
    'float32',
    ['N', 3],
  );
  assert.throws(
    () => findEmbedding(g.encode(), 'output', 'wd.onnx'),
    /the walk back from it stops at ReduceMean \S+, which is not a scoring layer; name the embedding with --embedding TENSOR$/,
  );
  const h = new Graph('bilinear');
  const a = h.input('a', 'float32', ['N', 4]);
  h.output(h.op('MatMul', [a, h.op('Transpose', [a])]), 'scores', 'float32', ['N', 'N']);
  assert.throws(() => findEmbedding(h.encode(), 'scores', 'b.onnx'), /multiplies two computed tensors/);
  const { model } = gemmHead();
  assert.throws(
    () => findEmbedding(model, 'probs', 'm.onnx', 'nope'),
    /^UsageError: Expected --embedding to name a tensor of "m\.onnx" made by one of its nodes but it has no "nope"$/,
  );
  const chosen = findEmbedding(model, 'probs', 'm.onnx', findEmbedding(model, 'probs', 'm.onnx').tensor);
  assert.equal(chosen.layer.op, 'Flatten');
});

test('vec --kind features on a foreign tagger: its embedding, from which its own weights give pred’s scores; with external data too; binary packs it; no scoring layer is one line', async () => {
  const dir = await tempDir();
  const joy = path.join(dir, 'joytag');
  await mkdir(joy);
  const model = standIn();
  await writeFile(path.join(joy, 'model.onnx'), model);
  await writeFile(path.join(joy, 'top_tags.txt'), '1girl\nsolo\nlong hair\nrating:general\n');
  const img = path.join(dir, 'a.png');
  await image(img, S, 12);
  const vec = async (file: string, kind = 'features'): Promise<Record<string, unknown>> => {
    const r = await cli('vec', img, '--model', file, '--kind', kind);
    assert.equal(r.code, 0, r.err.join('\n'));
    return JSON.parse(r.out[0]!) as Record<string, unknown>;
  };
  const f = (await vec(path.join(joy, 'model.onnx'))).vector as number[];
  assert.equal(f.length, 3 * S * S);
  const inits = new Map(
    decodeModel(model)
      .graph.initializer.filter((t) => t.data_type === 1)
      .map((t) => [t.name, tensorToFloat32(t)]),
  );
  const [w, b] = [inits.get('w')!, inits.get('b')!];
  const fromFeatures = Array.from({ length: K }, (_, k) => {
    let z = b[k]!;
    for (let d = 0; d < f.length; d++) z += f[d]! * w[d * K + k]!;
    return sigmoid(z);
  });
  const order = ['1girl', 'solo', 'long hair', 'rating:general'];
  const pred = await predProbs(img, ['--model', path.join(joy, 'model.onnx')], order);
  near(pred.probs, fromFeatures);
  // The same model with its weights in an external data file beside it.
  const ext = path.join(dir, 'ext');
  await mkdir(ext);
  await externalize(model, ext, 'model.onnx', 'model.onnx.data');
  await writeFile(path.join(ext, 'top_tags.txt'), '1girl\nsolo\nlong hair\nrating:general\n');
  near((await vec(path.join(ext, 'model.onnx'))).vector as number[], f);
  const hash = (await vec(path.join(joy, 'model.onnx'), 'binary')).hash as string;
  assert.equal(hash.length, (3 * S * S) / 4);
  // A tagger whose scores come from a pooled mean, with no layer to cut before.
  const wd = path.join(dir, 'wd');
  await mkdir(wd);
  await writeFile(path.join(wd, 'model.onnx'), wdStandIn());
  await writeFile(path.join(wd, 'selected_tags.csv'), 'tag_id,name,category,count\n0,a,0,1\n1,b,0,1\n2,c,0,1\n');
  const r = await cli('vec', img, '--model', path.join(wd, 'model.onnx'), '--kind', 'features');
  assert.equal(r.code, 2);
  assert.deepEqual(
    r.err.filter((l) => l.startsWith('alt-i2v-ort:')),
    [r.err.at(-1)],
  );
  assert.match(
    r.err.at(-1)!,
    /Expected a final scoring layer .* stops at ReduceMean .*; name the embedding with --embedding TENSOR$/,
  );
});
