// `quantize --head`: the last layer stays float when it hurts. A tagger whose head has one huge weight
// per tag on a feature that is always 0 (a Relu of a negative sum): it never moves a float logit, but it
// sets each tag's int8 weight scale, so the head's other weights round to a few steps and the int8 tags
// differ from the float ones. `--head auto` must see that on the images, keep the head float and say
// so with both F1s; `--head int8` keeps it int8 and agrees less; `--head float` keeps it float
// without trying; a model that agrees well keeps its head int8.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';
import { HEAD_CHECK_F1 } from '../../src/quantize/quantize.js';
import { cli, tempDir } from '../helpers.js';
import { externalize } from './externalize.js';
import { writePngs, writeSelectedTags } from './fixtures.js';

const dir = await tempDir();
const rng = new Rng(31);
const randn = (n: number, s: number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * s);
const S = 16;
const F = 32;
const TAGS = Array.from({ length: 24 }, (_, i) => `tag_${i}`);

/** pixels → features (MatMul, Relu; feature 0 always 0) → Gemm head; `outlier` is feature 0's head weight. */
function tagger(outlier: number): Uint8Array {
  const g = new Graph('mlp');
  const x = g.input('input', 'float32', ['N', S, S, 3]);
  const flat = g.op('Reshape', [g.op('Mul', [x, g.const(1 / 255, 'float32')]), g.const([-1, S * S * 3])]);
  const w1 = randn(S * S * 3 * F, 0.1);
  for (let k = 0; k < S * S * 3; k++) w1[k * F] = -1; // feature 0: a negative sum of non-negative pixels
  const h = g.op('Relu', [
    g.op('Add', [g.op('MatMul', [flat, g.initializer('w1', 'float32', [S * S * 3, F], w1)]), g.const(0, 'float32')]),
  ]);
  const head = randn(TAGS.length * F, 3);
  for (let n = 0; n < TAGS.length; n++) head[n * F] = outlier;
  const logits = g.op('Gemm', [h, g.initializer('head', 'float32', [TAGS.length, F], head)], { transB: A.i(1) });
  g.output(g.op('Sigmoid', [logits]), 'output', 'float32', ['N', TAGS.length]);
  return g.encode();
}

await writeSelectedTags(dir, TAGS);
await writeFile(path.join(dir, 'hurt.onnx'), tagger(400));
await writeFile(path.join(dir, 'fine.onnx'), tagger(3));
const images = await writePngs(path.join(dir, 'images'), 12, S, () => Math.floor(rng.next() * 256));

/** quantize's lines by what they start with: wrote, head, agreement. */
const quantize = async (model: string, out: string, ...args: string[]): Promise<Record<string, string>> => {
  const r = await cli('quantize', path.join(dir, model), '--out', path.join(dir, out), '--images', images, ...args);
  assert.equal(r.code, 0, r.err.join('\n'));
  return Object.fromEntries(r.out.map((l) => [l.split(' ')[0]!, l]));
};
const f1 = (line: string): number => Number(/F1 ([\d.]+) of int8 tags/.exec(line)![1]);
const ops = async (file: string): Promise<string[]> =>
  decodeModel(await readFile(path.join(dir, file))).graph.node.map((n) => n.op_type);

test('a head that hurts stays float under --head auto, with both F1s said; --head int8 and float force it', async () => {
  const auto = await quantize('hurt.onnx', 'auto.onnx');
  assert.match(auto.wrote!, /: 1 layers in int8 \(1 MatMul\)/);
  const m = /^head \S+ \(Gemm 32 × 24\): float \(F1 ([\d.]+) with it in int8, ([\d.]+) float\)$/.exec(auto.head!);
  assert.ok(m, auto.head);
  const [withInt8, withFloat] = [Number(m[1]), Number(m[2])];
  assert.ok(withInt8 < HEAD_CHECK_F1 && withFloat > withInt8, auto.head);
  assert.equal(f1(auto.agreement!), withFloat);
  assert.ok((await ops('auto.onnx')).includes('Gemm'), 'the head stayed a float Gemm');

  // Forced int8: the F1 auto measured for it, and the head in integer form.
  const int8 = await quantize('hurt.onnx', 'int8.onnx', '--head', 'int8', '--min-agreement', '0');
  assert.match(int8.wrote!, /: 2 layers in int8 \(1 MatMul, 1 Gemm\)/);
  assert.match(int8.head!, /^head \S+ \(Gemm 32 × 24\): int8$/);
  assert.equal(f1(int8.agreement!), withInt8);
  assert.ok(!(await ops('int8.onnx')).includes('Gemm'));
  // Under --min-agreement (0.95) the int8 head is refused, naming the images; auto's float head passed it.
  assert.ok(withInt8 < 0.95, int8.head);
  const refused = await cli(
    'quantize',
    path.join(dir, 'hurt.onnx'),
    '--out',
    path.join(dir, 'no.onnx'),
    '--images',
    images,
    '--head',
    'int8',
  );
  assert.equal(refused.code, 2);
  assert.match(refused.err.at(-1)!, /F1 ≥ 0\.95 but F1 is 0\.\d+ on 12 images \(worst: \d+\.png/);

  // Forced float: not tried, not said.
  const float = await quantize('fine.onnx', 'float.onnx', '--head', 'float');
  assert.match(float.wrote!, /: 1 layers in int8 \(1 MatMul\)/);
  assert.match(float.head!, /^head \S+ \(Gemm 32 × 24\): float$/);
});

test('a head that does not hurt stays int8 under --head auto', async () => {
  const out = await quantize('fine.onnx', 'fine-int8.onnx');
  assert.match(out.wrote!, /: 2 layers in int8 \(1 MatMul, 1 Gemm\)/);
  assert.match(out.head!, /^head \S+ \(Gemm 32 × 24\): int8$/);
  assert.ok(f1(out.agreement!) >= HEAD_CHECK_F1, out.agreement);
});

test("with external weights, the head tried float leaves one data file: the kept model's", async () => {
  const ext = path.join(dir, 'ext');
  await mkdir(ext);
  await writeFile(path.join(ext, 'selected_tags.csv'), await readFile(path.join(dir, 'selected_tags.csv')));
  await externalize(tagger(400), ext, 'hurt.onnx', 'weights.bin');
  const out = await quantize('ext/hurt.onnx', 'ext/int8.onnx');
  assert.match(out.head!, /: float \(F1/);
  const files = (await readdir(ext)).sort();
  assert.equal(files.length, 5, files.join(' '));
  assert.match(
    files.join(' '),
    /^hurt\.onnx int8\.onnx int8\.onnx\.[0-9a-f]{8}\.data selected_tags\.csv weights\.bin$/,
  );
  const p = await cli('pred', images, '--model', path.join(ext, 'int8.onnx'), '--format', 'jsonl');
  assert.equal(p.code, 0, p.err.join('\n'));
  assert.equal(p.out.length, 12);
});
