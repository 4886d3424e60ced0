// Expansion MLPs a tile of rows at a time (src/quantize/tiles.ts): the tiled graph gives the numbers of
// a float64 computation of the MLP written here, for row counts the tiles do not divide, any batch, and
// more tiles than rows; in int8 too. MLPs whose hidden values are read elsewhere, that pass through an op
// not known to work row by row, add a constant of more than one axis, or do not widen, are left as they are.
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { quantizeDynamic } from '../../src/quantize/dynamic.js';
import {
  expansionMlps,
  tileCount,
  tileMlps,
  TILE_BYTES,
  TILE_MIN_BYTES,
  TILE_MIN_ROWS_PER_CHANNEL,
} from '../../src/quantize/tiles.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';
import { writeSelectedTags } from './fixtures.js';

const rng = new Rng(83);
const randn = (n: number, s: number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * s);
const [H, W, C, K, N] = [5, 7, 8, 32, 6];
const [w1, b1, w2, b2] = [randn(C * K, 0.5), randn(K, 0.3), randn(K * N, 0.4), randn(N, 0.2)];
const [w3, w4] = [randn(C * K, 0.5), randn(K * N, 0.4)];

/** erf to 1e-7 (Abramowitz–Stegun 7.1.26 is too coarse): its Maclaurin series, then its continued fraction. */
function erf(x: number): number {
  if (Math.abs(x) < 3) {
    let [sum, term] = [x, x];
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (Math.abs(x) + f);
  return Math.sign(x) * (1 - Math.exp(-x * x) / Math.sqrt(Math.PI) / (Math.abs(x) + f));
}

/** Each row of `x` (C values) → ·W1 + b1 → GELU (erf) → ·W2 + b2, in float64. */
function mlp(x: Float32Array): Float64Array {
  const rows = x.length / C;
  const y = new Float64Array(rows * N);
  for (let r = 0; r < rows; r++) {
    const h = Array.from({ length: K }, (_, j) => {
      let s = b1[j]!;
      for (let i = 0; i < C; i++) s += x[r * C + i]! * w1[i * K + j]!;
      return 0.5 * s * (1 + erf(s / Math.SQRT2));
    });
    for (let j = 0; j < N; j++) y[r * N + j] = h.reduce((s, v, i) => s + v * w2[i * N + j]!, b2[j]!);
  }
  return y;
}

function model(): Uint8Array {
  const g = new Graph('mlps');
  const f = (name: string, dims: number[], v: Float32Array): string => g.initializer(name, 'float32', dims, v);
  const x = g.input('x', 'float32', ['batch', H, W, C]);
  const gelu = (v: string): string =>
    g.op('Mul', [
      g.op('Mul', [
        v,
        g.op('Add', [g.op('Erf', [g.op('Div', [v, g.const(Math.SQRT2, 'float32')])]), g.const(1, 'float32')]),
      ]),
      g.const(0.5, 'float32'),
    ]);
  const h = g.op('Add', [g.op('MatMul', [x, f('w1', [C, K], w1)]), f('b1', [K], b1)]);
  g.output(g.op('Add', [g.op('MatMul', [gelu(h), f('w2', [K, N], w2)]), f('b2', [N], b2)]), 'y', 'float32', [
    'batch',
    H,
    W,
    N,
  ]);
  // Left alone: a hidden value that is an output too; a Softmax (across the row) in between; no widening.
  const h2 = g.op('Relu', [g.op('MatMul', [x, f('w3', [C, K], w3)])]);
  g.output(g.op('MatMul', [h2, f('w4', [K, N], w4)]), 'y2', 'float32', ['batch', H, W, N]);
  g.output(h2, 'h2', 'float32', ['batch', H, W, K]);
  const soft = g.op('Softmax', [g.op('MatMul', [x, f('w3b', [C, K], w3)])], { axis: A.i(-1) });
  g.output(g.op('MatMul', [soft, f('w4b', [K, N], w4)]), 'y3', 'float32', ['batch', H, W, N]);
  const narrow = g.op('Relu', [g.op('MatMul', [x, f('w5', [C, C], randn(C * C, 0.5))])]);
  g.output(g.op('MatMul', [narrow, f('w6', [C, N], randn(C * N, 0.5))]), 'y4', 'float32', ['batch', H, W, N]);
  // A constant of more than one axis could add axes (here [1, 1, 1, K] on a rank-4 x it does not): left alone.
  const wide = g.op('Add', [g.op('MatMul', [x, f('w7', [C, K], w3)]), f('b7', [1, 1, 1, K], b1)]);
  g.output(g.op('MatMul', [g.op('Relu', [wide]), f('w8', [K, N], w4)]), 'y6', 'float32', ['batch', H, W, N]);
  return g.encode();
}

async function run(bytes: Uint8Array, x: Float32Array, batch: number): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ x: new ort.Tensor('float32', x, [batch, H, W, C]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

const maxErr = (got: Float32Array, want: ArrayLike<number>): number =>
  Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]!) / (Math.abs(want[i]!) + 1)));

test('a tiled MLP equals a float64 MLP for any batch, row counts the tiles do not divide, and more tiles than rows', async () => {
  const before = model();
  assert.deepEqual(expansionMlps(before), [{ input: 'x', channels: C, width: K }], 'only the first MLP qualifies');
  for (const tiles of [3, 50]) {
    const r = tileMlps(before, (input) => (input === 'x' ? tiles : 1));
    assert.equal(r.count, 1);
    const ops = decodeModel(r.bytes).graph.node.map((n) => n.op_type);
    assert.equal(ops.filter((o) => o === 'Erf').length, tiles, 'the block once per tile');
    assert.equal(ops.filter((o) => o === 'Split').length, 1);
    for (const batch of [1, 2]) {
      const x = randn(batch * H * W * C, 1.5); // 35 or 70 rows
      const [want, got] = [await run(before, x, batch), await run(r.bytes, x, batch)];
      const err = maxErr(got.y!, mlp(x));
      assert.ok(err < 1e-5, `${tiles} tiles, batch ${batch}: error ${err} against float64`);
      for (const other of ['y2', 'h2', 'y3', 'y4', 'y6']) assert.deepEqual(got[other], want[other], other);
      // In int8 each tile quantizes its rows at its own range: close to float, empty tiles included.
      const int8 = await run(quantizeDynamic(r.bytes).bytes, x, batch);
      const qerr = maxErr(int8.y!, mlp(x));
      assert.ok(qerr < 0.05, `${tiles} tiles, batch ${batch}, int8: error ${qerr}`);
    }
  }
  assert.deepEqual(Buffer.from(tileMlps(before, () => 1).bytes), Buffer.from(before), 'one tile: unchanged');
});

test("tiles: only where one image's hidden activation is past the caches and outweighs the weights, about TILE_BYTES each", () => {
  assert.equal(tileCount(112 * 112, 96, 384), 5, 'ConvNeXt-T stage 1 at 448: 19.3 MB');
  assert.equal(tileCount(56 * 56, 192, 768), 3, 'stage 2: 9.6 MB');
  assert.equal(tileCount(28 * 28, 384, 1536), 1, 'stage 3: 4.8 MB, left as it is');
  assert.equal(tileCount(785, 768, 3072), 1, 'ViT-B/16 at 448: 9.6 MB, but 4.7 MB of weights read again per tile');
  const rows = TILE_MIN_BYTES / 4 / 64; // a hidden activation of exactly TILE_MIN_BYTES, 64 wide
  assert.equal(tileCount(rows, 16, 64), 1, 'at the line: left as it is');
  assert.equal(tileCount(rows + 1, 16, 64), Math.ceil(TILE_MIN_BYTES / TILE_BYTES + 1e-9));
  assert.equal(
    tileCount(rows + 1, Math.floor((rows + 1) / TILE_MIN_ROWS_PER_CHANNEL) + 1, 64),
    1,
    'too few rows per channel',
  );
});

test('a model that fails on its measuring run: one line naming it, nothing written', async () => {
  const dir = await tempDir();
  const g = new Graph('broken');
  const x = g.input('input', 'float32', ['N', 8, 8, 3]);
  const rows = g.op('Reshape', [x, g.const([-1, 24])]);
  const hidden = g.op('Relu', [g.op('MatMul', [rows, g.initializer('w1', 'float32', [24, 96], randn(24 * 96, 0.2))])]);
  const y = g.op('MatMul', [hidden, g.initializer('w2', 'float32', [96, 24], randn(96 * 24, 0.2))]);
  // 8 × 8 × 3 values do not make rows of 5: ONNX Runtime refuses it when it runs, not when it loads.
  const bad = g.op('Reshape', [y, g.const([-1, 5])]);
  g.output(g.op('Sigmoid', [g.op('ReduceMean', [bad], { axes: A.ints([1]), keepdims: A.i(0) })]), 'output', 'float32', [
    'N',
  ]);
  await writeFile(path.join(dir, 'model.onnx'), g.encode());
  await writeSelectedTags(dir, ['a']);
  const r = await cli('quantize', path.join(dir, 'model.onnx'), '--out', path.join(dir, 'int8.onnx'));
  assert.equal(r.code, 2, r.err.join('\n')); // a bad input, not a failure of ours
  const errors = r.err.filter((l) => l.startsWith('alt-i2v-ort:')); // the other line says which preset it took
  assert.equal(errors.length, 1, r.err.join('\n'));
  assert.match(errors[0]!, /^alt-i2v-ort: Expected ".*model\.onnx" to run on a black image but it fails: [^\n]+$/);
  assert.deepEqual((await readdir(dir)).sort(), ['model.onnx', 'selected_tags.csv']);
});
