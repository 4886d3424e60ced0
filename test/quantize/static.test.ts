// `quantize --mode static`: a Conv → Relu and a MatMul in ONNX's QDQ form at given activation ranges
// against a float64 computation written here (uint8 activations round half to even, int8 weights per
// output channel on ±63, int32 bias at input scale × weight scale), and ONNX Runtime fusing them into
// QLinearConv and QLinearMatMul; a ResNet-like stand-in through the CLI: calibrated on images, checked,
// loaded by pred, `--mode auto` taking static for it (convolutions hold the work) and dynamic for a
// MatMul net; static refused without images.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { quantizeStatic, type Ranges } from '../../src/quantize/static.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';

const dir = await tempDir();
const rng = new Rng(31);
const randn = (n: number, s: number): Float64Array =>
  Float64Array.from({ length: n }, () => (rng.next() - 0.5) * 2 * s);
const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);
const evenRound = (v: number): number => {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
};
/** uint8 at the range [lo, hi] widened to hold 0 (ONNX QuantizeLinear then DequantizeLinear), in float64. */
function fakeQuant(values: ArrayLike<number>, lo: number, hi: number): { out: number[]; scale: number } {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const scale = Math.fround((b - a) / 255);
  const zero = Math.max(0, Math.min(255, Math.round(-a / scale)));
  const out = Array.from(values, (v) => (Math.max(0, Math.min(255, evenRound(v / scale) + zero)) - zero) * scale);
  return { out, scale };
}
/** Weights per output channel (`channels` rows of `per` values) on ±63, dequantized, in float64. */
function fakeWeights(w: Float32Array, channels: number, per: number, rowsAreChannels: boolean): number[] {
  const at = (c: number, j: number): number => (rowsAreChannels ? c * per + j : j * channels + c);
  const out = new Array<number>(w.length);
  for (let c = 0; c < channels; c++) {
    let amax = 0;
    for (let j = 0; j < per; j++) amax = Math.max(amax, Math.abs(w[at(c, j)]!));
    const s = Math.fround(amax / 63);
    for (let j = 0; j < per; j++) out[at(c, j)] = Math.round(w[at(c, j)]! / s) * s;
  }
  return out;
}
const minmax = (v: ArrayLike<number>): [number, number] => [Math.min(...Array.from(v)), Math.max(...Array.from(v))];

const [C, M, H, N] = [8, 16, 6, 24];
const K = M * H * H;

// A small ResNet-like tagger in DeepDanbooru's layout (NHWC RGB 0–1, tags.txt), and images.
const S = 32;
const TAGS = Array.from({ length: 20 }, (_, i) => `tag_${i}`);
function resnet(): Uint8Array {
  const g = new Graph('resnet');
  const conv = (x: string, ci: number, co: number, k: number, stride = 1): string =>
    g.op(
      'Conv',
      [
        x,
        g.initializer('w', 'float32', [co, ci, k, k], f32(randn(co * ci * k * k, Math.sqrt(6 / (ci * k * k))))),
        g.initializer('b', 'float32', [co], f32(randn(co, 0.1))),
      ],
      { strides: A.ints([stride, stride]), pads: A.ints(Array(4).fill(k >> 1)) },
    );
  const relu = (x: string): string => g.op('Relu', [x]);
  const x = g.op('Transpose', [g.input('input', 'float32', ['N', S, S, 3])], { perm: A.ints([0, 3, 1, 2]) });
  let h = relu(conv(x, 3, 16, 3, 2));
  for (const [ci, co] of [
    [16, 32],
    [32, 32],
  ] as const) {
    const y = conv(relu(conv(h, ci, co, 3)), co, co, 3);
    h = relu(g.op('Add', [y, ci === co ? h : conv(h, ci, co, 1)]));
  }
  const pooled = g.op('ReduceMean', [h], { axes: A.ints([2, 3]), keepdims: A.i(0) });
  const logits = g.op('Gemm', [
    pooled,
    g.initializer('head', 'float32', [32, TAGS.length], f32(randn(32 * TAGS.length, 0.5))),
  ]);
  g.output(g.op('Sigmoid', [logits]), 'output', 'float32', ['N', TAGS.length]);
  return g.encode();
}
const model = path.join(dir, 'resnet', 'model.onnx');
await mkdir(path.dirname(model));
await writeFile(model, resnet());
await writeFile(path.join(dir, 'resnet', 'tags.txt'), `${TAGS.join('\n')}\n`);
const images = path.join(dir, 'images');
await mkdir(images);
for (let i = 0; i < 8; i++) {
  const raw = Buffer.from(Uint8Array.from({ length: S * S * 3 }, (_, j) => (j * (i + 5) * 29 + i * 53) % 256));
  await sharp(raw, { raw: { width: S, height: S, channels: 3 } })
    .png()
    .toFile(path.join(images, `${i}.png`));
}

test('a Conv → Relu and a MatMul in static QDQ form equal a float64 computation, and ONNX Runtime fuses them', async () => {
  const x = randn(C * H * H, 1);
  const wc = f32(randn(M * C * 9, 0.3));
  const bc = f32(randn(M, 0.2));
  const wm = f32(randn(K * N, 0.05));
  const wd = f32(randn(M * 9, 0.4));
  const bd = f32(randn(M, 0.2));
  const g = new Graph('layers');
  const a = g.op('Add', [g.input('x', 'float32', [1, C, H, H]), g.const(0, 'float32')]);
  const conv = g.op(
    'Conv',
    [a, g.initializer('wc', 'float32', [M, C, 3, 3], wc), g.initializer('bc', 'float32', [M], bc)],
    { pads: A.ints([1, 1, 1, 1]) },
  );
  const r = g.op('Relu', [conv]);
  const flat = g.op('Reshape', [r, g.const([1, K])]);
  const y = g.op('MatMul', [flat, g.initializer('wm', 'float32', [K, N], wm)]);
  // A depthwise convolution (one 3 × 3 filter per channel) beside the MatMul.
  const dw = g.op(
    'Conv',
    [r, g.initializer('wd', 'float32', [M, 1, 3, 3], wd), g.initializer('bd', 'float32', [M], bd)],
    { pads: A.ints([1, 1, 1, 1]), group: A.i(M) },
  );
  g.output(g.op('Identity', [r]), 'r', 'float32', [1, M, H, H]);
  g.output(g.op('Identity', [dw]), 'd', 'float32', [1, M, H, H]);
  g.output(g.op('Identity', [y]), 'y', 'float32', [1, N]);
  // The float model's activations, in float64: they set the ranges, as calibration would.
  const convolve = (input: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>): number[] => {
    const out: number[] = [];
    for (let m = 0; m < M; m++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < H; j++) {
          let acc = b[m]!;
          for (let c = 0; c < C; c++)
            for (let di = -1; di <= 1; di++)
              for (let dj = -1; dj <= 1; dj++) {
                const [ii, jj] = [i + di, j + dj];
                if (ii >= 0 && ii < H && jj >= 0 && jj < H)
                  acc += input[(c * H + ii) * H + jj]! * w[((m * C + c) * 3 + di + 1) * 3 + dj + 1]!;
              }
          out.push(Math.max(0, acc));
        }
    return out;
  };
  const depthwise = (input: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>): number[] => {
    const out: number[] = [];
    for (let m = 0; m < M; m++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < H; j++) {
          let acc = b[m]!;
          for (let di = -1; di <= 1; di++)
            for (let dj = -1; dj <= 1; dj++) {
              const [ii, jj] = [i + di, j + dj];
              if (ii >= 0 && ii < H && jj >= 0 && jj < H)
                acc += input[(m * H + ii) * H + jj]! * w[(m * 3 + di + 1) * 3 + dj + 1]!;
            }
          out.push(acc);
        }
    return out;
  };
  const matmul = (v: ArrayLike<number>, w: ArrayLike<number>): number[] =>
    Array.from({ length: N }, (_, n) => Array.from(v).reduce((s, vk, k) => s + vk * w[k * N + n]!, 0));
  const xf = f32(x);
  const rFloat = convolve(xf, wc, bc);
  const yFloat = matmul(rFloat, wm);
  const dFloat = depthwise(rFloat, wd, bd);
  const ranges: Ranges = new Map([
    [a, { lo: minmax(xf)[0], hi: minmax(xf)[1] }],
    [r, { lo: minmax(rFloat)[0], hi: minmax(rFloat)[1] }],
    [flat, { lo: minmax(rFloat)[0], hi: minmax(rFloat)[1] }],
    [y, { lo: minmax(yFloat)[0], hi: minmax(yFloat)[1] }],
    [dw, { lo: minmax(dFloat)[0], hi: minmax(dFloat)[1] }],
  ]);
  const q = quantizeStatic(g.encode(), ranges);
  assert.deepEqual(
    q.layers.map((l) => [l.op, l.k, l.n]),
    [
      ['Conv', C * 9, M],
      ['MatMul', K, N],
      ['Conv', 9, M],
    ],
  );
  // The int8 model, in float64: input, weights and bias quantized; the Relu output and y requantized.
  const xq = fakeQuant(xf, ...minmax(xf));
  const wcq = fakeWeights(wc, M, C * 9, true);
  const biasScale = (m: number, w = wc, per = C * 9, inScale = xq.scale): number =>
    Math.fround(inScale * Math.fround(Math.max(...w.slice(m * per, (m + 1) * per).map(Math.abs)) / 63));
  const bcq = Array.from(bc, (v, m) => Math.round(v / biasScale(m)) * biasScale(m));
  const rq = fakeQuant(convolve(xq.out, wcq, bcq), ...minmax(rFloat));
  const yq = fakeQuant(matmul(rq.out, fakeWeights(wm, N, K, false)), ...minmax(yFloat));
  const bdq = Array.from(bd, (v, m) => Math.round(v / biasScale(m, wd, 9, rq.scale)) * biasScale(m, wd, 9, rq.scale));
  const dq = fakeQuant(depthwise(rq.out, fakeWeights(wd, M, 9, true), bdq), ...minmax(dFloat));
  const file = path.join(dir, 'layers-int8.onnx');
  await writeFile(file, q.bytes);
  const optimized = path.join(dir, 'layers-optimized.onnx');
  const session = await ort.InferenceSession.create(file, {
    optimizedModelFilePath: optimized,
    graphOptimizationLevel: 'extended',
  });
  const ops = decodeModel(await readFile(optimized)).graph.node.map((n) => n.op_type);
  assert.ok(ops.includes('QLinearConv') && ops.includes('QLinearMatMul'), ops.join(' '));
  assert.ok(!ops.includes('Conv') && !ops.includes('MatMul'), ops.join(' '));
  const out = await session.run({ x: new ort.Tensor('float32', xf, [1, C, H, H]) });
  // ONNX Runtime requantizes with a float32 multiplier: a value on a rounding boundary may land one step off.
  for (const [name, want] of [
    ['r', rq],
    ['y', yq],
    ['d', dq],
  ] as const) {
    const got = out[name]!.data as Float32Array;
    const steps = want.out.map((v, i) => Math.abs(v - got[i]!) / want.scale);
    const off = steps.filter((s) => s > 1e-3).length;
    assert.ok(Math.max(...steps) <= 1.001, `${name}: ${Math.max(...steps)} steps from float64`);
    assert.ok(off <= Math.ceil(0.02 * steps.length), `${name}: ${off} of ${steps.length} values off by a step`);
  }
  await session.release();
});

test('a ResNet-like tagger in static mode: calibrated on images, its convolutions int8, checked, loaded by pred; auto takes static for it', async () => {
  const out = path.join(dir, 'static', 'model.onnx');
  await mkdir(path.dirname(out));
  const r = await cli('quantize', model, '--out', out, '--images', images, '--calibrate', '6');
  assert.equal(r.code, 0, r.err.join('\n'));
  // The stem (3 channels in) stays float; the head Gemm and the other 5 convolutions go int8.
  assert.match(r.out[0]!, /^wrote .*: 6 layers in int8 \(1 Gemm, 5 Conv\), [\d.]+ MB → [\d.]+ MB$/);
  assert.match(
    r.out[2]!,
    /^mode static: activations at ranges calibrated on 6 images \(auto: convolutions hold (\d+)% of the multiply-adds\)$/,
  );
  assert.ok(Number(/hold (\d+)%/.exec(r.out[2]!)![1]) >= 90, r.out[2]);
  assert.match(r.out[3]!, /^head \S+ \(Gemm \d+ × \d+\): int8$/);
  const m = /F1 ([\d.]+) .*\|Δp\| max ([\d.]+)/.exec(r.out[4]!);
  assert.ok(m && Number(m[1]) >= 0.99 && Number(m[2]) > 0, r.out[4]);
  const ops = decodeModel(await readFile(out)).graph.node.map((n) => n.op_type);
  // One Q per activation, shared by the layers that read it: the stem's output (read by two convolutions),
  // 2 + 1 + 1 in the first block, its output, 2 in the second, the pooled features and the logits.
  assert.equal(ops.filter((o) => o === 'QuantizeLinear').length, 9);
  const probs = async (file: string): Promise<number[]> => {
    const p = await cli('pred', images, '--model', file, '--format', 'jsonl', '--threshold', '0');
    assert.equal(p.code, 0, p.err.join('\n'));
    return p.out.flatMap((l) => (JSON.parse(l) as { tags: { prob: number }[] }).tags.map((t) => t.prob));
  };
  const [a, b] = [await probs(model), await probs(out)];
  const delta = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  assert.ok(delta > 0 && delta < 0.05, `max |Δp| ${delta}`);
  // The head forced float: the convolutions alone in int8, their ranges as calibrated.
  const floatHead = path.join(dir, 'static', 'float-head.onnx');
  const fh = await cli(
    'quantize',
    model,
    '--out',
    floatHead,
    '--images',
    images,
    '--calibrate',
    '6',
    '--head',
    'float',
  );
  assert.equal(fh.code, 0, fh.err.join('\n'));
  assert.match(fh.out[0]!, /: 5 layers in int8 \(5 Conv\)/);
  assert.ok(decodeModel(await readFile(floatHead)).graph.node.some((n) => n.op_type === 'Gemm'));
  const c = await probs(floatHead);
  assert.ok(Math.max(...a.map((v, i) => Math.abs(v - c[i]!))) < 0.05);
  // Forced dynamic, only the head is a MatMul/Gemm; without images static is refused.
  const dyn = await cli('quantize', model, '--out', path.join(dir, 'dyn.onnx'), '--mode', 'dynamic');
  assert.equal(dyn.code, 0, dyn.err.join('\n'));
  assert.match(dyn.out[0]!, /: 1 layers in int8 \(1 Gemm\)/);
  const none = await cli('quantize', model, '--out', path.join(dir, 'x.onnx'), '--mode', 'static');
  assert.equal(none.code, 2);
  assert.match(
    none.err.at(-1)!,
    /^alt-i2v-ort: Expected --images DIR with --mode static: it calibrates activations on them$/,
  );
});
