// Residual adds moved into their branch's layout (src/quantize/layout.ts) on a ConvNeXt-like stage:
// a stem convolution, then blocks of depthwise convolution → NHWC → dense layers → NCHW → + residual.
// The rewrite moves data only, so the model must give the same float32 numbers, bit for bit, as the
// original run by ONNX Runtime; adds whose operand's rank is not known, or whose Transpose is read
// elsewhere too, stay as they are. `quantize` applies it to a ConvNeXt-like tagger and says so.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { residualLayout } from '../../src/quantize/layout.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel, type NodeJson } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';
import { writePngs, writeSelectedTags } from './fixtures.js';

const rng = new Rng(71);
const randn = (n: number, s: number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * s);
const [B, CIN, C, H, W] = [2, 3, 6, 5, 7]; // H ≠ W and C apart, so a wrong perm cannot pass
const TO_NHWC = [0, 2, 3, 1];
const TO_NCHW = [0, 3, 1, 2];
/** A float32 initializer of `dims`, uniform on ±s. */
const weight = (g: Graph, name: string, dims: number[], s: number): string =>
  g.initializer(
    name,
    'float32',
    dims,
    randn(
      dims.reduce((a, b) => a * b, 1),
      s,
    ),
  );

function model(): Uint8Array {
  const g = new Graph('stage');
  const f = (name: string, dims: number[]): string => weight(g, name, dims, 0.5);
  const x = g.input('x', 'float32', [B, CIN, H, W]);
  const stem = g.op('Conv', [x, f('stem_w', [C, CIN, 1, 1]), f('stem_b', [C])], {}, 'stem');
  const branch = (h: string, i: number): string => {
    const dw = g.op('Conv', [h, f(`dw${i}`, [C, 1, 3, 3])], { group: A.i(C), pads: A.ints([1, 1, 1, 1]) });
    const nhwc = g.op('Transpose', [dw], { perm: A.ints(TO_NHWC) });
    const mlp = g.op('MatMul', [
      g.op('Relu', [g.op('MatMul', [nhwc, f(`up${i}`, [C, 2 * C])])]),
      f(`down${i}`, [2 * C, C]),
    ]);
    return g.op('Transpose', [mlp], { perm: A.ints(TO_NCHW) }, `back${i}`);
  };
  // Two blocks: the first adds the stem's output, the second the first's sum (operands the other way round).
  const h1 = g.op('Add', [stem, branch(stem, 1)], {}, 'add1');
  const h2 = g.op('Add', [branch(h1, 2), h1], {}, 'add2');
  g.output(h2, 'y', 'float32', [B, C, H, W]);
  // Left alone: a constant of lower rank (broadcast) plus a branch; a branch whose Transpose is read twice.
  const b3 = branch(stem, 3);
  g.output(g.op('Add', [f('bias3', [C, 1, 1]), b3], {}, 'add3'), 'y3', 'float32', [B, C, H, W]);
  const b4 = branch(h2, 4);
  g.output(g.op('Add', [h2, b4], {}, 'add4'), 'y4', 'float32', [B, C, H, W]);
  g.output(g.op('Relu', [b4]), 'y5', 'float32', [B, C, H, W]);
  return g.encode();
}

async function run(bytes: Uint8Array, x: Float32Array): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [B, CIN, H, W]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

test('residual adds in the branch layout give the same numbers, the stage transposing its residual stream once', async () => {
  const before = model();
  const r = residualLayout(before);
  assert.equal(r.count, 2, 'the two blocks of the stage');
  const nodes = decodeModel(r.bytes).graph.node;
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  // Nodes by the name of the original node that wrote `output` (an add keeps its name, not its output).
  const original = decodeModel(before).graph.node;
  const byName = (output: string): NodeJson | undefined => {
    const name = original.find((n) => n.output[0] === output)!.name;
    return nodes.find((n) => n.name === name);
  };
  const perm = (n: NodeJson | undefined): string => n?.attribute?.find((a) => a.name === 'perm')?.ints?.join() ?? '';
  for (const gone of ['back1', 'back2']) assert.ok(!byName(gone), `${gone} goes: its add reads the branch directly`);
  for (const kept of ['back3', 'back4']) assert.ok(byName(kept), `${kept} stays`);
  const [add1, add2] = [byName('add1')!, byName('add2')!];
  // add1: stem output to NHWC (once), plus the branch; add2 reads add1's NHWC sum, operand order kept.
  const into = producer.get(add1.input[0]!)!;
  const stem = nodes.find((n) => n.input[1] === 'stem_w')!;
  assert.deepEqual([into.op_type, into.input[0], perm(into)], ['Transpose', stem.output[0], TO_NHWC.join()]);
  assert.equal(producer.get(add1.input[1]!)?.op_type, 'MatMul');
  assert.equal(producer.get(add2.input[0]!)?.op_type, 'MatMul');
  assert.equal(add2.input[1], add1.output[0], "add2 adds add1's sum in NHWC");
  const readers = (name: string): NodeJson[] => nodes.filter((n) => n.input.includes(name));
  assert.deepEqual(
    readers(add2.output[0]!).map((n) => [n.op_type, perm(n)]),
    [['Transpose', TO_NCHW.join()]],
  );
  assert.deepEqual(
    readers(add1.output[0]!).map((n) => [n.op_type, perm(n)]),
    [
      ['Transpose', TO_NCHW.join()],
      ['Add', ''],
    ],
    "add1's sum: back to NCHW for the next block's convolution, and add2",
  );
  assert.equal(
    nodes.filter((n) => n.op_type === 'Transpose' && perm(n) === TO_NHWC.join()).length,
    5,
    'into NHWC: the stem once, each of the 4 branches once',
  );

  const x = randn(B * CIN * H * W, 2);
  const [want, got] = [await run(before, x), await run(r.bytes, x)];
  for (const name of ['y', 'y3', 'y4', 'y5']) assert.deepEqual(got[name], want[name], `${name} bit for bit`);
});

test('a model with no residual add over a Transpose comes back byte for byte', () => {
  const g = new Graph('plain');
  const input = g.input('x', 'float32', [B, CIN, H, W]);
  const t = g.op('Transpose', [input], { perm: A.ints(TO_NHWC) });
  g.output(g.op('Add', [input, g.op('Transpose', [t], { perm: A.ints(TO_NCHW) })]), 'y', 'float32', [B, CIN, H, W]);
  const bytes = g.encode();
  const r = residualLayout(bytes);
  assert.equal(r.count, 0, 'a graph input is of no known rank');
  assert.deepEqual(Buffer.from(r.bytes), Buffer.from(bytes));
});

test('quantize puts the residual adds of a ConvNeXt-like tagger in their branch layout, tiles its MLPs, says so, and the int8 model agrees', async () => {
  const dir = await tempDir();
  // 256 px → 64 × 64 rows of D = 160: a hidden activation of 10.5 MB an image, past TILE_MIN_BYTES (tiles.ts).
  const [S, D, TAGS] = [256, 160, Array.from({ length: 24 }, (_, i) => `tag_${i}`)];
  const g = new Graph('convnext');
  const f = (name: string, dims: number[], s: number): string => weight(g, name, dims, s);
  // WD layout (NHWC, 0–255) → NCHW → 4 × 4 patchify stem → two blocks → mean over pixels → head.
  const x = g.op('Mul', [
    g.op('Transpose', [g.input('input', 'float32', ['N', S, S, 3])], { perm: A.ints(TO_NCHW) }),
    g.const(1 / 255, 'float32'),
  ]);
  let h = g.op('Conv', [x, f('stem_w', [D, 3, 4, 4], 0.3), f('stem_b', [D], 0.1)], { strides: A.ints([4, 4]) });
  for (const i of [1, 2]) {
    const dw = g.op('Conv', [h, f(`dw${i}`, [D, 1, 3, 3], 0.4)], { group: A.i(D), pads: A.ints([1, 1, 1, 1]) });
    const nhwc = g.op('Transpose', [dw], { perm: A.ints(TO_NHWC) });
    const up = g.op('Relu', [g.op('MatMul', [nhwc, f(`up${i}`, [D, 4 * D], 0.3)])]);
    h = g.op('Add', [
      h,
      g.op('Transpose', [g.op('MatMul', [up, f(`down${i}`, [4 * D, D], 0.1)])], { perm: A.ints(TO_NCHW) }),
    ]);
  }
  const pooled = g.op('ReduceMean', [h], { axes: A.ints([2, 3]), keepdims: A.i(0) });
  const logits = g.op('Gemm', [pooled, f('head', [D, TAGS.length], 2)]);
  g.output(g.op('Sigmoid', [logits]), 'output', 'float32', ['N', TAGS.length]);
  await writeFile(path.join(dir, 'model.onnx'), g.encode());
  await writeSelectedTags(dir, TAGS);
  const images = await writePngs(path.join(dir, 'images'), 6, S, () => Math.floor(rng.next() * 256));
  const out = path.join(dir, 'int8', 'model.onnx');
  await mkdir(path.dirname(out));
  const r = await cli('quantize', path.join(dir, 'model.onnx'), '--out', out, '--images', images, '--mode', 'dynamic');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.ok(r.out.includes("2 residual adds in their branch's layout (a Transpose fewer each)"), r.out.join('\n'));
  assert.ok(
    r.out.includes('2 MLPs a tile of rows at a time (their hidden activations stay in cache)'),
    r.out.join('\n'),
  );
  assert.match(
    r.out.find((l) => l.startsWith('agreement'))!,
    /F1 (0\.9[5-9]|1\.0)/,
  );
  const nodes = decodeModel(await readFile(out)).graph.node;
  const perm = new Map(
    nodes.flatMap((n) => n.output.map((o) => [o, n.attribute?.find((a) => a.name === 'perm')?.ints?.join()] as const)),
  );
  const adds = nodes.filter((n) => n.op_type === 'Add');
  assert.equal(adds.length, 2);
  for (const a of adds)
    assert.ok(
      !a.input.some((i) => perm.get(i) === TO_NCHW.join()),
      `${a.name} reads its branch, not its branch back in NCHW`,
    );
});
