// `quantize`: MatMul and Gemm layers of any tagger in int8 with dynamic activations. One layer of each
// kind against a float64 computation written here of ONNX's DynamicQuantizeLinear (per-tensor uint8,
// round half to even) and our weight rule (per column, symmetric, ±63); a ViT-like stand-in (layer
// norm, attention, GELU, a Gemm head) quantized through the CLI, checked on images, loaded by `pred`,
// with attention's activation products left float and fields the schema does not know kept; the
// refusal under --min-agreement.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { quantizeDynamic } from '../../src/quantize/dynamic.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel, encodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';
import { externalize } from './externalize.js';
import { writePngs, writeSelectedTags } from './fixtures.js';

const dir = await tempDir();
const rng = new Rng(27);
const randn = (n: number, s: number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * s);
const evenRound = (v: number): number => {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
};

/** ONNX DynamicQuantizeLinear, in float64: the range always holds 0, uint8, round half to even. */
function dynamicQuantize(x: Float32Array): { q: number[]; scale: number; zero: number } {
  const lo = Math.min(0, ...x);
  const hi = Math.max(0, ...x);
  const scale = Math.fround((hi - lo) / 255);
  const zero = Math.min(255, Math.max(0, evenRound(-lo / scale)));
  return { q: Array.from(x, (v) => Math.min(255, Math.max(0, evenRound(v / scale) + zero))), scale, zero };
}

/** y = x·W (W [K, N], or [N, K] when `transB`) with x and W quantized as the int8 model does, in float64. */
function fakeQuant(x: Float32Array, rows: number, w: Float32Array, k: number, n: number, transB: boolean): number[] {
  const at = (r: number, c: number): number => (transB ? w[c * k + r]! : w[r * n + c]!);
  const xq = dynamicQuantize(x);
  const out: number[] = [];
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < n; c++) {
      let amax = 0;
      for (let r = 0; r < k; r++) amax = Math.max(amax, Math.abs(at(r, c)));
      const s = amax / 63;
      let acc = 0;
      for (let r = 0; r < k; r++) acc += (xq.q[i * k + r]! - xq.zero) * Math.round(at(r, c) / s);
      out.push(acc * xq.scale * s);
    }
  return out;
}

const S = 16;
const D = 32;
const TAGS = Array.from({ length: 24 }, (_, i) => `tag_${i}`);

/** A ViT-like WD-layout tagger: rows as tokens, layer norm, one attention block, a GELU MLP, a Gemm head. */
function vit(): Uint8Array {
  const g = new Graph('vit');
  const w = (name: string, dims: number[], s = 0.3): string =>
    g.initializer(name, 'float32', dims, randn(dims[0]! * (dims[1] ?? 1), s));
  const mm = (x: string, name: string, k: number, n: number): string => g.op('MatMul', [x, w(name, [k, n])]);
  const x = g.input('input', 'float32', ['N', S, S, 3]);
  const tokens = g.op('Reshape', [g.op('Mul', [x, g.const(1 / 255, 'float32')]), g.const([-1, S, S * 3])]);
  const t0 = g.op('Add', [mm(tokens, 'embed', S * 3, D), w('embed_b', [D])]);
  const norm = g.op('LayerNormalization', [t0, w('ln_g', [D], 1), w('ln_b', [D])], { axis: A.i(-1) });
  const [q, k, v] = ['q', 'k', 'v'].map((n) => mm(norm, n, D, D)) as [string, string, string];
  const logits = g.op('Mul', [
    g.op('MatMul', [q, g.op('Transpose', [k], { perm: A.ints([0, 2, 1]) })]),
    g.const(D ** -0.5, 'float32'),
  ]);
  const att = g.op('MatMul', [g.op('Softmax', [logits], { axis: A.i(-1) }), v]);
  const r = g.op('Add', [t0, mm(att, 'proj', D, D)]);
  const h = mm(r, 'fc1', D, 2 * D);
  const gelu = g.op('Mul', [
    g.op('Mul', [h, g.const(0.5, 'float32')]),
    g.op('Add', [g.const(1, 'float32'), g.op('Erf', [g.op('Mul', [h, g.const(Math.SQRT1_2, 'float32')])])]),
  ]);
  const r2 = g.op('Add', [r, mm(gelu, 'fc2', 2 * D, D)]);
  const pooled = g.op('ReduceMean', [r2], { axes: A.ints([1]), keepdims: A.i(0) });
  const head = g.op('Gemm', [pooled, w('head', [TAGS.length, D]), w('head_b', [TAGS.length])], { transB: A.i(1) });
  g.output(g.op('Sigmoid', [head]), 'output', 'float32', ['N', TAGS.length]);
  // ModelProto.doc_string (field 6), which the project's schema does not know: it must survive.
  return Buffer.concat([g.encode(), Buffer.from([0x32, 5, ...Buffer.from('hello')])]);
}

await writeFile(path.join(dir, 'model.onnx'), vit());
await writeSelectedTags(dir, TAGS);
const images = await writePngs(path.join(dir, 'images'), 6, S, (i, j) => (j * (i + 3) * 37 + i * 91) % 256);
const model = path.join(dir, 'model.onnx');

const extDir = path.join(dir, 'external');
await mkdir(extDir);
await writeFile(path.join(extDir, 'selected_tags.csv'), await readFile(path.join(dir, 'selected_tags.csv')));
await externalize(await readFile(model), extDir, 'model.onnx', 'weights.bin');

test('a MatMul and a Gemm (transB, bias) in int8 equal a float64 computation of dynamic quantization', async () => {
  const [rows, k, n] = [4, 32, 24];
  const w1 = randn(k * n, 0.5);
  const w2 = randn(n * k, 0.5);
  const bias = randn(n, 1);
  const g = new Graph('layers');
  const x = g.input('x', 'float32', [rows, k]);
  g.output(g.op('MatMul', [x, g.initializer('w1', 'float32', [k, n], w1)]), 'y1', 'float32', [rows, n]);
  const gemm = g.op('Gemm', [x, g.initializer('w2', 'float32', [n, k], w2), g.initializer('c', 'float32', [n], bias)], {
    transB: A.i(1),
  });
  g.output(gemm, 'y2', 'float32', [rows, n]);
  const q = quantizeDynamic(g.encode());
  assert.deepEqual(
    q.layers.map((l) => [l.op, l.k, l.n]),
    [
      ['MatMul', k, n],
      ['Gemm', k, n],
    ],
  );
  const ops = decodeModel(q.bytes).graph.node.map((nd) => nd.op_type);
  assert.equal(ops.filter((o) => o === 'MatMulInteger').length, 2);
  assert.ok(!ops.includes('MatMul') && !ops.includes('Gemm'), ops.join(' '));
  const inits = decodeModel(q.bytes).graph.initializer.map((t) => t.name);
  assert.ok(!inits.includes('w1') && !inits.includes('w2') && inits.includes('c'), 'float weights dropped, bias kept');
  const input = randn(rows * k, 2);
  const session = await ort.InferenceSession.create(q.bytes);
  const out = await session.run({ x: new ort.Tensor('float32', input, [rows, k]) });
  const want1 = fakeQuant(input, rows, w1, k, n, false);
  const want2 = fakeQuant(input, rows, w2, k, n, true).map((v, i) => v + bias[i % n]!);
  for (const [name, want] of [
    ['y1', want1],
    ['y2', want2],
  ] as const) {
    const got = out[name]!.data as Float32Array;
    const err = Math.max(...want.map((v, i) => Math.abs(v - got[i]!) / (Math.abs(v) + 1e-3)));
    assert.ok(err < 1e-5, `${name}: relative error ${err} against float64`);
  }
  await session.release();
});

test('quantize a ViT-like tagger: weights int8, attention products float, unknown fields kept, checked on images; pred loads it', async () => {
  const out = path.join(dir, 'out', 'int8.onnx');
  await mkdir(path.dirname(out));
  const r = await cli('quantize', model, '--out', out, '--images', images);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(await readdir(path.dirname(out)).then((f) => f.sort()), ['int8.onnx', 'selected_tags.csv']);
  assert.match(r.out[0]!, /^wrote .*int8\.onnx: 8 layers in int8 \(7 MatMul, 1 Gemm\), [\d.]+ MB → [\d.]+ MB$/);
  assert.match(r.out[1]!, /^copied the tags file beside it: .*out\/selected_tags\.csv$/);
  assert.match(
    r.out[2]!,
    /^mode dynamic: activations quantized at run time \(auto: convolutions hold 0% of the multiply-adds\)$/,
  );
  assert.match(
    r.out[3]!,
    /^1 layer norm as instance norms \(ONNX Runtime's vectorized kernel\), γ and β of 1 folded into the layers after them$/,
  );
  assert.match(r.out[4]!, /^head \S+ \(Gemm 32 × 24\): (int8|float \(F1 [\d.]+ with it in int8, [\d.]+ float\))$/);
  const m =
    /^agreement on 6 images: F1 ([\d.]+) of int8 tags against float tags \(\d+ float, \d+ int8\), \+[\d.]+ \/ −[\d.]+ tags per image, \|Δp\| max (0\.\d+) mean 0\.\d+$/.exec(
      r.out[5]!,
    );
  assert.ok(m && Number(m[1]) >= 0.95 && Number(m[2]) > 0 && Number(m[2]) < 0.05, r.out[5]);
  const bytes = await readFile(out);
  const ops = decodeModel(bytes).graph.node.map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'MatMulInteger').length, 8);
  assert.equal(ops.filter((o) => o === 'MatMul').length, 2, 'q·kᵀ and attention·v stay float');
  assert.ok(ops.includes('InstanceNormalization') && !ops.includes('LayerNormalization'), ops.join(' '));
  assert.ok(bytes.includes(Buffer.from([0x32, 5, ...Buffer.from('hello')])), 'the doc_string field was lost');
  // pred runs it (the tags file copied beside it) and its scores stay near the float model's.
  const probs = async (m: string): Promise<number[]> => {
    const p = await cli('pred', images, '--model', m, '--format', 'jsonl', '--threshold', '0');
    assert.equal(p.code, 0, p.err.join('\n'));
    return p.out.flatMap((l) => (JSON.parse(l) as { tags: { prob: number }[] }).tags.map((t) => t.prob).sort());
  };
  const [a, b] = [await probs(model), await probs(out)];
  const delta = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  assert.ok(delta > 0 && delta < 0.05, `max |Δp| ${delta}`);
});

test('under --min-agreement nothing is written and the worst images are named; --out cannot be the model', async () => {
  // A threshold at the median score puts tags where int8 noise flips some.
  const p = await cli('pred', images, '--model', model, '--format', 'jsonl', '--threshold', '0');
  const all = p.out.flatMap((l) => (JSON.parse(l) as { tags: { prob: number }[] }).tags.map((t) => t.prob)).sort();
  const median = all[all.length >> 1]!;
  const out = path.join(dir, 'refused', 'int8.onnx');
  await mkdir(path.dirname(out));
  const r = await cli(
    'quantize',
    model,
    '--out',
    out,
    '--images',
    images,
    '--threshold',
    String(median),
    '--min-agreement',
    '1',
  );
  assert.equal(r.code, 2, r.err.join('\n'));
  assert.match(
    r.err.at(-1)!,
    /Expected the int8 model's tags to agree with the float model's at F1 ≥ 1 but F1 is 0\.\d+ on 6 images \(worst: \d\.png [\d.]+.*\); nothing was written/,
  );
  assert.deepEqual(await readdir(path.dirname(out)), [], 'a temp file or the model stayed');
  const same = await cli('quantize', model, '--out', model);
  assert.equal(same.code, 2);
  assert.match(same.err.at(-1)!, /Expected --out to name a new file, not the model/);
  // Its only weight is 3 × 24: too small to quantize.
  const tiny = new Graph('tiny');
  const mean = tiny.op('ReduceMean', [tiny.input('input', 'float32', ['N', S, S, 3])], {
    axes: A.ints([1, 2]),
    keepdims: A.i(0),
  });
  const z = tiny.op('MatMul', [mean, tiny.initializer('w', 'float32', [3, TAGS.length], randn(3 * TAGS.length, 0.01))]);
  tiny.output(tiny.op('Sigmoid', [z]), 'output', 'float32', ['N', TAGS.length]);
  await writeFile(path.join(dir, 'relu.onnx'), tiny.encode());
  const none = await cli(
    'quantize',
    path.join(dir, 'relu.onnx'),
    '--out',
    path.join(dir, 'x.onnx'),
    '--tags',
    path.join(dir, 'selected_tags.csv'),
  );
  assert.equal(none.code, 2);
  assert.match(none.err.at(-1)!, /Expected MatMul or Gemm layers with a constant float32 weight/);
});

test('a model with external data: pred and quantize read it, the int8 model keeps its float weights outside', async () => {
  const ext = path.join(extDir, 'model.onnx');
  assert.ok(decodeModel(await readFile(ext)).graph.initializer.some((t) => t.data_location === 1));
  const probs = async (m: string): Promise<number[]> => {
    const p = await cli('pred', images, '--model', m, '--format', 'jsonl', '--threshold', '0');
    assert.equal(p.code, 0, p.err.join('\n'));
    return p.out.flatMap((l) => (JSON.parse(l) as { tags: { prob: number }[] }).tags.map((t) => t.prob));
  };
  assert.deepEqual(await probs(ext), await probs(model), 'external weights read as the inline ones');
  const outDir = path.join(extDir, 'out');
  await mkdir(outDir);
  const out = path.join(outDir, 'int8.onnx');
  const inline = path.join(dir, 'inline-int8.onnx');
  for (const [m, o] of [
    [ext, out],
    [model, inline],
  ] as const)
    assert.equal((await cli('quantize', m, '--out', o, '--images', images)).code, 0);
  const data = (await readdir(outDir)).filter((f) => f !== 'int8.onnx' && f !== 'selected_tags.csv');
  assert.equal(data.length, 1, data.join(' '));
  assert.match(data[0]!, /^int8\.onnx\.[0-9a-f]{8}\.data$/);
  // The float weights left (biases, layer norm) are outside; the int8 ones inside.
  const inits = decodeModel(await readFile(out)).graph.initializer;
  assert.ok(inits.some((t) => t.data_location === 1 && t.external_data?.[0]?.value === data[0]));
  assert.ok(inits.filter((t) => t.data_type === 3).every((t) => t.data_location !== 1 && t.raw_data?.length));
  assert.deepEqual(await probs(out), await probs(inline), 'int8 from external weights = int8 from inline weights');
  // Quantized again to the same --out: the earlier run's data file goes with the model it belonged to.
  assert.equal((await cli('quantize', ext, '--out', out)).code, 0);
  const after = (await readdir(outDir)).filter((f) => f.endsWith('.data'));
  assert.equal(after.length, 1);
  assert.notEqual(after[0], data[0]);
  assert.deepEqual(await probs(out), await probs(inline));
});

test("external data outside the model's folder, or short of what the tensor needs, is refused before a byte is read", async () => {
  const cases: [string, (t: { key: string; value: string }[]) => void, RegExp][] = [
    ['up', (e) => (e[0]!.value = '../selected_tags.csv'), /its location is "\.\.\/selected_tags\.csv"/],
    ['abs', (e) => (e[0]!.value = path.join(dir, 'model.onnx')), /to name a file inside the model's folder/],
    ['gone', (e) => (e[0]!.value = 'missing.bin'), /missing\.bin" but that cannot be read \(no such file/],
    ['short', (e) => (e[1]!.value = '999999'), /at bytes 999999…\d+ of .*weights\.bin" but it has \d+$/],
    ['length', (e) => (e[2]!.value = '4'), /to be \d+ bytes \(shape \[\d+, \d+\]\) but its length is 4$/],
  ];
  const m = decodeModel(await readFile(path.join(extDir, 'model.onnx')));
  for (const [name, edit, want] of cases) {
    const copy = structuredClone(m);
    edit(copy.graph.initializer.find((t) => t.data_location === 1)!.external_data!);
    const file = path.join(extDir, `${name}.onnx`);
    await writeFile(file, encodeModel(copy));
    for (const args of [
      ['pred', images, '--model', file],
      ['quantize', file, '--out', path.join(dir, `${name}-int8.onnx`)],
    ]) {
      const r = await cli(...args);
      assert.equal(r.code, 2, `${name} ${args[0]}: ${r.err.join('\n')}`);
      assert.match(r.err.at(-1)!, /^alt-i2v-ort: Expected the external data of tensor "\w+" in /);
      assert.match(r.err.at(-1)!, want);
    }
  }
});
