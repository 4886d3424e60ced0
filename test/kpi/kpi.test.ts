// KPI prediction from illustration vectors: the fit against independent computations (plain gradient
// descent on the same objectives, a brute-force AUC), then `vec` → `kpi fit` → `kpi pred` on synth data
// with a KPI built from what is visible in the pictures, a KPI of pure noise, and a 0/1 KPI.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseTags } from '../../src/data/scan.js';
import { fitRows, predictKpi } from '../../src/kpi/fit.js';
import { rocAuc } from '../../src/metrics/metrics.js';
import { Rng } from '../../training/rng.js';
import { cli, cliSteps, tempDir, tinyDataset } from '../helpers.js';

// The data for the CLI runs, made before any test is defined.
const root = await tempDir();
const data = path.join(root, 'data');
const model = path.join(root, 'model.onnx');
await tinyDataset(root, { count: 600, seed: 5, minCount: 3, size: 64, shardSize: 200, holdout: 0.1 });
await cliSteps(
  [
    'train',
    path.join(root, 'shards'),
    '--out',
    path.join(root, 'run'),
    '--backbone',
    'vgg16-tiny',
    '--hidden',
    '128',
    '--batch',
    '16',
    '--rounds',
    '45',
  ],
  ['export', path.join(root, 'run'), '--out', model],
  ['vec', data, '--model', model, '--kind', 'probs', '--out', path.join(root, 'vec.npy')],
);

/** Minimise the ridge (or L2-logistic) objective on standardised rows by plain gradient descent, float64. */
function gradientDescent(
  kind: 'linear' | 'logistic',
  x: number[][],
  y: number[],
  lambda: number,
): { w: number[]; b: number } {
  const n = x.length;
  const d = x[0]!.length;
  const mean = Array.from({ length: d }, (_, j) => x.reduce((a, r) => a + r[j]!, 0) / n);
  const std = Array.from(
    { length: d },
    (_, j) => Math.sqrt(x.reduce((a, r) => a + (r[j]! - mean[j]!) ** 2, 0) / n) || 1,
  );
  const z = x.map((r) => r.map((v, j) => (v - mean[j]!) / std[j]!));
  let w = new Array<number>(d).fill(0);
  let b = 0;
  // A step below 1/L, L ≤ the trace of [1 Z]ᵀ[1 Z] (n + n·d) times the loss curvature (1, or ¼ for logistic), plus λ.
  const rate = kind === 'linear' ? 1 / (n * (d + 1) + lambda) : 4 / (n * (d + 1) + 4 * lambda);
  for (let it = 0; it < 40000; it++) {
    const res = z.map((r, i) => {
      const f = b + r.reduce((a, v, j) => a + v * w[j]!, 0);
      return (kind === 'linear' ? f : 1 / (1 + Math.exp(-f))) - y[i]!;
    });
    const gw = w.map((wj, j) => z.reduce((a, r, i) => a + r[j]! * res[i]!, 0) + lambda * wj);
    const gb = res.reduce((a, v) => a + v, 0);
    w = w.map((wj, j) => wj - rate * gw[j]!);
    b -= rate * gb;
  }
  return { w: [...w], b };
}

test('ridge and logistic fits equal gradient descent on the same objective (features fewer and more than images)', () => {
  const rng = new Rng(3);
  for (const [n, d] of [
    [30, 6],
    [12, 20],
  ] as const) {
    const x = Array.from({ length: n }, () => Array.from({ length: d }, () => rng.next() * 4 - 1));
    const yLin = x.map((r) => r[0]! * 2 - r[1]! + rng.next() * 0.3);
    const yBin = x.map((r) => (r[0]! + rng.next() - 0.5 > 1 ? 1 : 0));
    for (const [kind, y] of [
      ['linear', yLin],
      ['logistic', yBin],
    ] as const) {
      const c = 0.1;
      const m = fitRows(kind, x, y, [...x.keys()], c);
      const ref = gradientDescent(kind, x, y, c * n);
      let worst = 0;
      m.weights.forEach((w, j) => (worst = Math.max(worst, Math.abs(w - ref.w[j]!))));
      worst = Math.max(worst, Math.abs(m.intercept - ref.b));
      assert.ok(worst < 1e-4, `${kind} n=${n} d=${d}: max |Δ| ${worst}`);
      const f = x.map((r) => predictKpi(m, r));
      assert.ok(f.every(Number.isFinite));
    }
  }
});

test('AUC equals the fraction of positive–negative pairs ranked right (ties half)', () => {
  const rng = new Rng(8);
  const scores = Array.from({ length: 60 }, () => Math.round(rng.next() * 10) / 10);
  const labels = scores.map((s) => (rng.next() < s ? 1 : 0));
  let pairs = 0;
  let right = 0;
  for (let i = 0; i < 60; i++)
    for (let j = 0; j < 60; j++)
      if (labels[i] && !labels[j]) {
        pairs++;
        right += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
  assert.ok(Math.abs(rocAuc(scores, labels) - right / pairs) < 1e-12);
});

async function targets(name: string, value: (tags: string[], rng: Rng) => number): Promise<string> {
  const meta = JSON.parse(await readFile(path.join(root, 'vec.npy.json'), 'utf8')) as { files: string[] };
  const rng = new Rng(17);
  const rows = ['file,value'];
  for (const f of meta.files)
    rows.push(
      `${path.relative(root, f)},${value(parseTags(await readFile(f.replace(/\.\w+$/, '.txt'), 'utf8')), rng)}`,
    );
  const file = path.join(root, `${name}.csv`);
  await writeFile(file, `${rows.join('\n')}\n`);
  return file;
}

const gauss = (rng: Rng): number => Math.sqrt(-2 * Math.log(rng.next() || 1e-12)) * Math.cos(2 * Math.PI * rng.next());
const shapes = (t: string[]): number => (t.includes('single_shape') ? 1 : t.includes('two_shapes') ? 2 : 3);

test('a KPI built from what the pictures show is predicted (CV R² ≥ 0.8), and its top tags name those attributes', async (t) => {
  const csv = await targets(
    'visible',
    (tags, rng) => 2 * shapes(tags) + (tags.includes('circle') ? 1 : 0) + 0.1 * gauss(rng),
  );
  const r = await cli('kpi', 'fit', path.join(root, 'vec.npy'), '--target', csv, '--out', path.join(root, 'kpi.json'));
  assert.equal(r.code, 0, r.err.join('\n'));
  t.diagnostic(r.out.join(' | '));
  const m = /^R² (-?[\d.]+) \(5-fold CV; mean predictor (-?[\d.]+)\) on 600 images$/.exec(r.out[0]!);
  assert.ok(m, r.out[0]);
  assert.ok(Number(m[1]) >= 0.8, `CV R² ${m[1]}`);
  assert.match(r.out[1]!, /^raises it: .*\b(multiple_shapes|two_shapes)\b/);
  assert.match(r.out[1]!, /\bcircle\b/);
  assert.match(r.out[2]!, /^lowers it: .*\bsingle_shape\b/);
});

test('a KPI of pure noise gives CV R² ≤ 0.05 (nothing leaks between folds)', async () => {
  const csv = await targets('noise', (_tags, rng) => gauss(rng));
  const r = await cli(
    'kpi',
    'fit',
    path.join(root, 'vec.npy'),
    '--target',
    csv,
    '--out',
    path.join(root, 'kpi-noise.json'),
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const r2 = Number(/^R² (-?[\d.]+)/.exec(r.out[0]!)![1]);
  assert.ok(r2 <= 0.05, `noise CV R² ${r2}`);
});

test('a 0/1 KPI fitted as logistic has AUC well above 0.5; kpi pred scores new images, and refuses another model', async () => {
  const csv = await targets('binary', (tags) => (shapes(tags) >= 2 ? 1 : 0));
  const fit = await cli(
    'kpi',
    'fit',
    path.join(root, 'vec.npy'),
    '--target',
    csv,
    '--out',
    path.join(root, 'kpi-bin.json'),
    '--kind',
    'logistic',
  );
  assert.equal(fit.code, 0, fit.err.join('\n'));
  const auc = Number(
    /^AUC ([\d.]+), log-loss ([\d.]+) \(5-fold CV; base rate ([\d.]+), its log-loss ([\d.]+)\)/.exec(fit.out[0]!)![1],
  );
  assert.ok(auc > 0.9, `AUC ${auc}`);
  const images = (await readFile(csv, 'utf8'))
    .split('\n')
    .slice(1, 4)
    .map((l) => path.join(root, l.split(',')[0]!));
  const pred = await cli(
    'kpi',
    'pred',
    ...images,
    '--model',
    model,
    '--kpi',
    path.join(root, 'kpi-bin.json'),
    '--format',
    'json',
  );
  assert.equal(pred.code, 0, pred.err.join('\n'));
  const rows = JSON.parse(pred.out.join('\n')) as { file: string; probability: number }[];
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.probability > 0 && r.probability < 1));
  const other = path.join(root, 'other.onnx');
  const { readdir } = await import('node:fs/promises');
  const ckpts = (await readdir(path.join(root, 'run', 'checkpoints'))).sort();
  const best = /from (\S+) /.exec(
    (await cli('export', path.join(root, 'run'), '--out', path.join(root, 'again.onnx'))).out[0]!,
  )![1]!;
  const another = ckpts.map((f) => path.join(root, 'run', 'checkpoints', f)).find((f) => f !== best)!;
  assert.equal((await cli('export', path.join(root, 'run'), '--out', other, '--checkpoint', another)).code, 0);
  const refused = await cli('kpi', 'pred', images[0]!, '--model', other, '--kpi', path.join(root, 'kpi-bin.json'));
  assert.equal(refused.code, 2);
  assert.match(
    refused.err.at(-1)!,
    /Expected the model ".*kpi-bin\.json" was fitted on \(.*model\.onnx\) but --model is another one/,
  );
});
