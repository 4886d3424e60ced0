// The teach bench's reference: a float64 logistic regression of one tag on embeddings, fitted
// independently of our graphs (standardized features, a weak L2 penalty, Nesterov's accelerated gradient
// with the step 1/L from the largest eigenvalue by power iteration), scored by AP on an evaluation set.
import { averagePrecision } from '../src/metrics/metrics.js';

const L2 = 1e-4;
const ITERATIONS = 1500;

export function logisticAp(x: Float64Array[], y: number[], ex: Float64Array[], ey: number[]): number {
  const n = x.length;
  const d = x[0]!.length;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const r of x) for (let j = 0; j < d; j++) mean[j]! += r[j]! / n;
  for (const r of x) for (let j = 0; j < d; j++) sd[j]! += (r[j]! - mean[j]!) ** 2 / n;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const z = x.map((r) => r.map((v, j) => (v - mean[j]!) / sd[j]!));
  // L ≤ λmax(ZᵀZ)/(4n) + λ: power iteration on ZᵀZ.
  let v = new Float64Array(d).fill(1 / Math.sqrt(d));
  let lambda = 0;
  for (let it = 0; it < 30; it++) {
    const u = new Float64Array(d);
    for (const r of z) {
      let s = 0;
      for (let j = 0; j < d; j++) s += r[j]! * v[j]!;
      for (let j = 0; j < d; j++) u[j]! += r[j]! * s;
    }
    lambda = Math.sqrt(u.reduce((a, b) => a + b * b, 0));
    v = u.map((e) => e / lambda);
  }
  const step = 1 / (lambda / (4 * n) + 0.25 + L2);
  let w = new Float64Array(d + 1); // last: bias
  let prev = w;
  for (let t = 1; t <= ITERATIONS; t++) {
    const m = (t - 1) / (t + 2);
    const look = w.map((e, j) => e + m * (e - prev[j]!));
    const g = new Float64Array(d + 1);
    z.forEach((r, i) => {
      let s = look[d]!;
      for (let j = 0; j < d; j++) s += r[j]! * look[j]!;
      const e = 1 / (1 + Math.exp(-s)) - y[i]!;
      for (let j = 0; j < d; j++) g[j]! += (e * r[j]!) / n;
      g[d]! += e / n;
    });
    for (let j = 0; j < d; j++) g[j]! += L2 * look[j]!;
    prev = w;
    w = look.map((e, j) => e - step * g[j]!);
  }
  const scores = ex.map((r) => {
    let s = w[d]!;
    for (let j = 0; j < d; j++) s += ((r[j]! - mean[j]!) / sd[j]!) * w[j]!;
    return s;
  });
  return averagePrecision(scores, ey) ?? 0;
}
