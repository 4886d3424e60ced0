// Each backward rule of training/layers.ts against central finite differences of the float64
// reference layer (training/reference.ts). Tolerance: relative 1e-3 (float32 graph vs float64 FD).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import ort from 'onnxruntime-node';
import { Graph } from '../../src/onnx/graph.js';
import * as L from '../../training/layers.js';
import * as R from '../../training/reference.js';
import { Rng } from '../../training/rng.js';

const TOL = 1e-3;

function randoms(n: number, rng: Rng, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
}

async function run(
  g: Graph,
  feeds: Record<string, { data: Float32Array | Uint8Array; dims: number[]; type?: 'bool' | 'uint8' }>,
): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(g.encode());
  const tensors: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) tensors[k] = new ort.Tensor(v.type ?? 'float32', v.data, v.dims);
  const out = await session.run(tensors);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

/** Max relative error of `grad` against central differences of `loss` in each entry of `x`. */
function fdCheck(
  t: TestContext,
  label: string,
  x: Float32Array,
  grad: Float32Array,
  loss: (x: Float64Array) => number,
): void {
  const x64 = Float64Array.from(x);
  const h = 1e-6;
  let worst = 0;
  let scale = 0;
  const fd = Array.from(x64, (_, i) => {
    const keep = x64[i]!;
    x64[i] = keep + h;
    const up = loss(x64);
    x64[i] = keep - h;
    const down = loss(x64);
    x64[i] = keep;
    return (up - down) / (2 * h);
  });
  for (const v of fd) scale = Math.max(scale, Math.abs(v));
  fd.forEach((v, i) => {
    worst = Math.max(worst, Math.abs(v - grad[i]!) / Math.max(Math.abs(v), Math.abs(grad[i]!), 0.01 * scale));
  });
  t.diagnostic(`${label}: max relative error ${worst.toExponential(2)} over ${x.length} entries`);
  assert.ok(worst <= TOL, `${label}: ${worst}`);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

for (const im2col of [true, false]) {
  test(`convBackward (dW by ${im2col ? 'one im2col' : '9 windows'}): dX, dW and dB of a 3×3 conv match finite differences`, async (t) => {
    const rng = new Rng(1);
    const [n, ci, co, h, w] = [2, 3, 4, 6, 5];
    const x = randoms(n * ci * h * w, rng);
    const wt = randoms(co * ci * 9, rng);
    const b = randoms(co, rng);
    const r = randoms(n * co * h * w, rng);
    const g = new Graph('conv');
    const gx = g.input('x', 'float32', [n, ci, h, w]);
    const gw = g.input('w', 'float32', [co, ci, 3, 3]);
    const gb = g.input('b', 'float32', [co]);
    const gr = g.input('r', 'float32', [n, co, h, w]);
    L.convForward(g, gx, gw, gb);
    const grads = L.convBackward(g, gx, gw, gr, { ci, co, h, w, im2col }, true);
    g.output(grads.dx!, 'dx', 'float32', [n, ci, h, w]);
    g.output(grads.dw, 'dw', 'float32', [co, ci, 3, 3]);
    g.output(grads.db, 'db', 'float32', [co]);
    const out = await run(g, {
      x: { data: x, dims: [n, ci, h, w] },
      w: { data: wt, dims: [co, ci, 3, 3] },
      b: { data: b, dims: [co] },
      r: { data: r, dims: [n, co, h, w] },
    });
    fdCheck(t, 'conv dX', x, out.dx!, (v) => dot(R.conv3x3(v, n, ci, h, w, wt, b, co), r));
    fdCheck(t, 'conv dW', wt, out.dw!, (v) => dot(R.conv3x3(Float64Array.from(x), n, ci, h, w, v, b, co), r));
    fdCheck(t, 'conv dB', b, out.db!, (v) => dot(R.conv3x3(Float64Array.from(x), n, ci, h, w, wt, v, co), r));
  });
}

// Both max-pool backward forms: SpaceToDepth/ArgMax/DepthToSpace (CUDA) and MaxPool Indices + MaxUnpool (CPU).
const POOL_BACKWARDS: [string, (g: Graph, x: string, dy: string, c: number) => string][] = [
  ['maxpoolBackward', (g, x, dy, c) => L.maxpoolBackward(g, x, dy, c)],
  ['maxpoolUnpoolBackward', (g, x, dy) => L.maxpoolUnpoolBackward(g, x, dy, L.maxpoolForwardWithIndices(g, x).indices)],
];

for (const [name, backward] of POOL_BACKWARDS) {
  test(`${name} routes the gradient to each window maximum`, async (t) => {
    const rng = new Rng(2);
    const [n, c, h, w] = [2, 3, 4, 6];
    const x = Float32Array.from(rng.shuffle(Array.from({ length: n * c * h * w }, (_, i) => i / 10 - 3))); // distinct values
    const r = randoms(n * c * (h / 2) * (w / 2), rng);
    const g = new Graph('pool');
    const gx = g.input('x', 'float32', [n, c, h, w]);
    const gr = g.input('r', 'float32', [n, c, h / 2, w / 2]);
    g.output(backward(g, gx, gr, c), 'dx', 'float32', [n, c, h, w]);
    const out = await run(g, { x: { data: x, dims: [n, c, h, w] }, r: { data: r, dims: [n, c, h / 2, w / 2] } });
    fdCheck(t, `${name} dX`, x, out.dx!, (v) => dot(R.maxpool2(v, n, c, h, w), r));
  });

  test(`${name} gives a tied window its gradient once, at the first maximum`, async () => {
    const g = new Graph('pool_ties');
    const gx = g.input('x', 'float32', [1, 1, 2, 4]);
    const gr = g.input('r', 'float32', [1, 1, 1, 2]);
    g.output(backward(g, gx, gr, 1), 'dx', 'float32', [1, 1, 2, 4]);
    // window 1: all four equal; window 2: max 5 twice (positions (0,3) and (1,2))
    const out = await run(g, {
      x: { data: Float32Array.from([1, 1, 0, 5, 1, 1, 5, 2]), dims: [1, 1, 2, 4] },
      r: { data: Float32Array.from([3, 7]), dims: [1, 1, 1, 2] },
    });
    assert.deepEqual([...out.dx!], [3, 0, 0, 7, 0, 0, 0, 0]);
  });
}

test('the two max-pool backward forms agree bit for bit on a tensor full of ties', async () => {
  const rng = new Rng(5);
  const [n, c, h, w] = [2, 4, 8, 6];
  const x = Float32Array.from({ length: n * c * h * w }, () => Math.floor(rng.next() * 3)); // values 0, 1, 2: most windows tie
  const r = randoms(n * c * (h / 2) * (w / 2), rng);
  const g = new Graph('pool_forms');
  const gx = g.input('x', 'float32', [n, c, h, w]);
  const gr = g.input('r', 'float32', [n, c, h / 2, w / 2]);
  POOL_BACKWARDS.forEach(([name, backward]) => g.output(backward(g, gx, gr, c), name, 'float32', [n, c, h, w]));
  const out = await run(g, { x: { data: x, dims: [n, c, h, w] }, r: { data: r, dims: [n, c, h / 2, w / 2] } });
  assert.deepEqual([...out.maxpoolUnpoolBackward!], [...out.maxpoolBackward!]);
  assert.equal(
    out.maxpoolBackward!.filter((v) => v !== 0).length,
    n * c * (h / 2) * (w / 2),
    'one gradient per window',
  );
});

test('normalizeForward: the BatchNormalization affine equals Mul then Add to the last bit', async () => {
  const rng = new Rng(6);
  const [n, s] = [4, 16];
  const image = Uint8Array.from({ length: n * s * s * 3 }, () => Math.floor(rng.next() * 256));
  const g = new Graph('normalize');
  const gi = g.input('image', 'uint8', [n, s, s, 3]);
  const [mean, std] = [
    [0.485, 0.456, 0.406],
    [0.229, 0.224, 0.225],
  ];
  for (const affine of ['muladd', 'batchnorm'] as const)
    g.output(L.normalizeForward(g, gi, mean, std, affine), affine, 'float32', [n, 3, s, s]);
  const out = await run(g, { image: { data: image, dims: [n, s, s, 3], type: 'uint8' } });
  assert.deepEqual([...out.batchnorm!], [...out.muladd!]);
  // and both are (x/255 − mean)/std in float64, within float32 rounding
  const px = s * s;
  out.muladd!.forEach((v, i) => {
    const [b, c, p] = [Math.floor(i / (3 * px)), Math.floor(i / px) % 3, i % px];
    const want = (image[(b * px + p) * 3 + c]! / 255 - mean[c]!) / std[c]!;
    assert.ok(Math.abs(v - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${i}: ${v} vs ${want}`);
  });
});

test('reluBackward and dropoutBackward match finite differences', async (t) => {
  const rng = new Rng(3);
  const x = randoms(24, rng);
  const r = randoms(24, rng);
  const keep = Uint8Array.from({ length: 24 }, () => (rng.next() < 0.7 ? 1 : 0));
  const g = new Graph('relu_dropout');
  const gx = g.input('x', 'float32', [4, 6]);
  const gr = g.input('r', 'float32', [4, 6]);
  const gk = g.input('keep', 'bool', [4, 6]);
  g.output(L.reluBackward(g, L.reluForward(g, gx), gr), 'drelu', 'float32', [4, 6]);
  g.output(L.dropoutBackward(g, gk, gr, 0.3), 'ddrop', 'float32', [4, 6]);
  const out = await run(g, {
    x: { data: x, dims: [4, 6] },
    r: { data: r, dims: [4, 6] },
    keep: { data: keep, dims: [4, 6], type: 'bool' },
  });
  fdCheck(t, 'relu dX', x, out.drelu!, (v) => dot(R.relu(v), r));
  fdCheck(t, 'dropout dX', x, out.ddrop!, (v) =>
    dot(
      v.map((a, i) => (keep[i] ? a / 0.7 : 0)),
      r,
    ),
  );
});

test('batchnormBackward: dX, dγ and dβ match finite differences', async (t) => {
  const rng = new Rng(4);
  const [n, f] = [5, 4];
  const x = randoms(n * f, rng, -2, 2);
  const gamma = randoms(f, rng, 0.5, 1.5);
  const beta = randoms(f, rng);
  const r = randoms(n * f, rng);
  const g = new Graph('bn');
  const gx = g.input('x', 'float32', [n, f]);
  const gg = g.input('gamma', 'float32', [f]);
  const gb = g.input('beta', 'float32', [f]);
  const gr = g.input('r', 'float32', [n, f]);
  const saved = L.batchnormForward(g, gx, gg, gb, 0.001);
  const grads = L.batchnormBackward(g, saved, gg, gr, true);
  g.output(grads.dx!, 'dx', 'float32', [n, f]);
  g.output(grads.dgamma, 'dgamma', 'float32', [f]);
  g.output(grads.dbeta, 'dbeta', 'float32', [f]);
  const out = await run(g, {
    x: { data: x, dims: [n, f] },
    gamma: { data: gamma, dims: [f] },
    beta: { data: beta, dims: [f] },
    r: { data: r, dims: [n, f] },
  });
  fdCheck(t, 'batchnorm dX', x, out.dx!, (v) => dot(R.batchnorm(v, n, f, gamma, beta, 0.001), r));
  fdCheck(t, 'batchnorm dγ', gamma, out.dgamma!, (v) =>
    dot(R.batchnorm(Float64Array.from(x), n, f, v, beta, 0.001), r),
  );
  fdCheck(t, 'batchnorm dβ', beta, out.dbeta!, (v) => dot(R.batchnorm(Float64Array.from(x), n, f, gamma, v, 0.001), r));
});

test('denseBackward: dX, dW and dB match finite differences', async (t) => {
  const rng = new Rng(5);
  const [n, i, o] = [3, 4, 5];
  const x = randoms(n * i, rng);
  const w = randoms(i * o, rng);
  const b = randoms(o, rng);
  const r = randoms(n * o, rng);
  const g = new Graph('dense');
  const gx = g.input('x', 'float32', [n, i]);
  const gw = g.input('w', 'float32', [i, o]);
  const gr = g.input('r', 'float32', [n, o]);
  const grads = L.denseBackward(g, gx, gw, gr, true);
  g.output(grads.dx!, 'dx', 'float32', [n, i]);
  g.output(grads.dw, 'dw', 'float32', [i, o]);
  g.output(grads.db, 'db', 'float32', [o]);
  const out = await run(g, {
    x: { data: x, dims: [n, i] },
    w: { data: w, dims: [i, o] },
    r: { data: r, dims: [n, o] },
  });
  fdCheck(t, 'dense dX', x, out.dx!, (v) => dot(R.dense(v, n, i, w, b, o), r));
  fdCheck(t, 'dense dW', w, out.dw!, (v) => dot(R.dense(Float64Array.from(x), n, i, v, b, o), r));
  fdCheck(t, 'dense dB', b, out.db!, (v) => dot(R.dense(Float64Array.from(x), n, i, w, v, o), r));
});

/** The loss and dz of bceForward/bceBackward on logits z and labels y of shape `dims`. */
async function runBce(z: Float32Array, y: Float32Array, dims: number[]): Promise<Record<string, Float32Array>> {
  const g = new Graph('bce');
  const gz = g.input('z', 'float32', dims);
  const gy = g.input('y', 'float32', dims);
  g.output(L.bceForward(g, gz, gy), 'loss', 'float32', []);
  g.output(L.bceBackward(g, gz, gy), 'dz', 'float32', dims);
  return run(g, { z: { data: z, dims }, y: { data: y, dims } });
}

test('bceBackward matches finite differences and the loss is stable at |z| = 100', async (t) => {
  const rng = new Rng(6);
  const z = randoms(12, rng, -4, 4);
  z[0] = 100;
  z[1] = -100;
  const y = Float32Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const out = await runBce(z, y, [3, 4]);
  assert.ok(Math.abs(out.loss![0]! - R.bce(Float64Array.from(z), y)) < 1e-5, `loss ${out.loss![0]}`);
  assert.ok(Number.isFinite(out.loss![0]!));
  fdCheck(t, 'bce dz', z, out.dz!, (v) => R.bce(v, y));
});

test('BCE with extreme logits that disagree with their labels (z = 100, y = 0; z = −100, y = 1) is finite and right', async () => {
  // A naive log(1 + e^z) overflows here (e^100 > float32 max); the stable form must give 100 per element.
  const z = Float32Array.from([100, -100, 100, -100, 0, 3]);
  const y = Float32Array.from([0, 1, 1, 0, 1, 0]);
  const out = await runBce(z, y, [2, 3]);
  // float64, written out: −[y log σ(z) + (1 − y) log(1 − σ(z))] per element, mean over 6.
  const each = [
    100,
    100,
    Math.log1p(Math.exp(-100)),
    Math.log1p(Math.exp(-100)),
    Math.log(2),
    3 + Math.log1p(Math.exp(-3)),
  ];
  const want = each.reduce((a, b) => a + b, 0) / 6;
  assert.ok(Number.isFinite(out.loss![0]!));
  assert.ok(Math.abs(out.loss![0]! - want) < 1e-4 * want, `loss ${out.loss![0]} vs ${want}`);
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  Array.from(z).forEach((v, i) =>
    assert.ok(Math.abs(out.dz![i]! - (sig(v) - y[i]!) / 6) < 1e-7, `dz[${i}] ${out.dz![i]}`),
  );
});
