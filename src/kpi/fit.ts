// KPI prediction from illustration vectors, the original write-up's last idea (after Facebook's
// "Practical Lessons from Predicting Clicks on Ads": rich features, then a linear model on top): ridge
// regression for a value, L2-regularised logistic regression for a 0/1 outcome. Features are
// standardised inside the fit; the regularisation strength is chosen by k-fold cross-validation, where
// every transform (standardisation, the projection used when features outnumber images) is fitted on
// the training folds only, so no information leaks into the held-out fold. Linear algebra: ml-matrix.
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix, solve } from 'ml-matrix';
import { Rng } from '../../training/rng.js';
import { rocAuc } from '../metrics/metrics.js';

export type KpiKind = 'linear' | 'logistic';
export const KPI_KINDS: readonly KpiKind[] = ['linear', 'logistic'];

/** Regularisation strengths tried, as multiples of the number of training images. */
const LAMBDAS = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

export interface LinearModel {
  kind: KpiKind;
  /** Per-feature mean and standard deviation of the fit's data (a constant feature has std 1). */
  mean: number[];
  std: number[];
  /** Weights on standardised features, and the intercept. */
  weights: number[];
  intercept: number;
}

export interface CvReport {
  folds: number;
  lambda: number;
  /** linear: R² of out-of-fold predictions; logistic: AUC and log-loss. */
  r2?: number;
  auc?: number;
  logLoss?: number;
  /** The same score for the trivial predictor (the training folds' mean or base rate). */
  baseline: number;
  baselineLogLoss?: number;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

function standardise(rows: readonly ArrayLike<number>[], idx: readonly number[]): { mean: number[]; std: number[] } {
  const d = rows[0]!.length;
  const mean = new Array<number>(d).fill(0);
  const sq = new Array<number>(d).fill(0);
  for (const i of idx) for (let j = 0; j < d; j++) mean[j]! += rows[i]![j]!;
  for (let j = 0; j < d; j++) mean[j]! /= idx.length;
  for (const i of idx) for (let j = 0; j < d; j++) sq[j]! += (rows[i]![j]! - mean[j]!) ** 2;
  const std = sq.map((s) => Math.sqrt(s / idx.length) || 1);
  return { mean, std };
}

function design(
  rows: readonly ArrayLike<number>[],
  idx: readonly number[],
  s: { mean: number[]; std: number[] },
): Matrix {
  return new Matrix(idx.map((i) => Array.from(rows[i]!, (v, j) => (v - s.mean[j]!) / s.std[j]!)));
}

/**
 * A basis for the fit: the features themselves when they are fewer than the images, else the
 * n-dimensional span of the training images (from the eigenvectors of X Xᵀ), in which an L2-penalised
 * linear model has the same solution. Returns Z = X·B and B (d × r) to map weights back.
 */
function basis(x: Matrix): { z: Matrix; b: Matrix } {
  if (x.columns <= x.rows) return { z: x, b: Matrix.eye(x.columns) };
  const evd = new EigenvalueDecomposition(x.mmul(x.transpose()), { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const top = Math.max(...values);
  const keep = values.map((v, k) => [v, k] as const).filter(([v]) => v > 1e-9 * top);
  const q = evd.eigenvectorMatrix;
  const qk = new Matrix(x.rows, keep.length);
  keep.forEach(([v, k], c) => {
    for (let r = 0; r < x.rows; r++) qk.set(r, c, q.get(r, k) / Math.sqrt(v));
  });
  const b = x.transpose().mmul(qk); // d × r, orthonormal columns
  return { z: x.mmul(b), b };
}

/** Weights (in Z's basis) and intercept for one λ. */
function fitZ(kind: KpiKind, z: Matrix, y: number[], lambda: number): { w: number[]; b0: number } {
  const r = z.columns;
  if (kind === 'linear') {
    const ybar = y.reduce((a, v) => a + v, 0) / y.length;
    const zc = z.clone().subRowVector(z.mean('column'));
    const lhs = zc.transpose().mmul(zc).add(Matrix.eye(r).mul(lambda));
    const rhs = zc.transpose().mmul(Matrix.columnVector(y.map((v) => v - ybar)));
    const w = new CholeskyDecomposition(lhs).solve(rhs).to1DArray();
    const zmean = z.mean('column');
    return { w, b0: ybar - zmean.reduce((a, m, k) => a + m * w[k]!, 0) };
  }
  // Logistic: Newton's method on [1, Z] with the intercept unpenalised.
  const a = new Matrix(z.rows, r + 1);
  for (let i = 0; i < z.rows; i++) {
    a.set(i, 0, 1);
    for (let k = 0; k < r; k++) a.set(i, k + 1, z.get(i, k));
  }
  let beta = new Array<number>(r + 1).fill(0);
  for (let iter = 0; iter < 50; iter++) {
    const p = a.mmul(Matrix.columnVector(beta)).to1DArray().map(sigmoid);
    const weightsW = p.map((v) => Math.max(v * (1 - v), 1e-10));
    const grad = a
      .transpose()
      .mmul(Matrix.columnVector(p.map((v, i) => v - y[i]!)))
      .to1DArray()
      .map((g, k) => g + (k === 0 ? 0 : lambda * beta[k]!));
    const hess = a
      .transpose()
      .mmul(a.clone().mulColumnVector(weightsW))
      .add(Matrix.diag([0, ...new Array<number>(r).fill(lambda)]).add(Matrix.eye(r + 1).mul(1e-9)));
    const step = solve(hess, Matrix.columnVector(grad)).to1DArray();
    beta = beta.map((v, k) => v - step[k]!);
    if (Math.max(...step.map(Math.abs)) < 1e-8) break;
  }
  return { w: beta.slice(1), b0: beta[0]! };
}

/** Fit on the rows `idx` with λ = c × their count; returns a model in the original feature space. */
export function fitRows(
  kind: KpiKind,
  rows: readonly ArrayLike<number>[],
  y: readonly number[],
  idx: readonly number[],
  c: number,
): LinearModel {
  const s = standardise(rows, idx);
  const { z, b } = basis(design(rows, idx, s));
  const { w, b0 } = fitZ(
    kind,
    z,
    idx.map((i) => y[i]!),
    c * idx.length,
  );
  return { kind, mean: s.mean, std: s.std, weights: b.mmul(Matrix.columnVector(w)).to1DArray(), intercept: b0 };
}

/** The model's output for one vector: a value (linear) or a probability (logistic). */
export function predictKpi(m: LinearModel, v: ArrayLike<number>): number {
  let z = m.intercept;
  for (let j = 0; j < m.weights.length; j++) z += (m.weights[j]! * (v[j]! - m.mean[j]!)) / m.std[j]!;
  return m.kind === 'logistic' ? sigmoid(z) : z;
}

const logLoss = (p: number[], y: readonly number[]): number =>
  -p.reduce((a, v, i) => a + (y[i] ? Math.log(Math.max(v, 1e-15)) : Math.log(Math.max(1 - v, 1e-15))), 0) / p.length;

function r2(pred: number[], y: readonly number[]): number {
  const ybar = y.reduce((a, v) => a + v, 0) / y.length;
  const sst = y.reduce((a, v) => a + (v - ybar) ** 2, 0);
  return 1 - pred.reduce((a, p, i) => a + (p - y[i]!) ** 2, 0) / sst;
}

/** Out-of-fold predictions for each λ, and those of the trivial predictor (the training folds' mean). */
function crossValidate(
  kind: KpiKind,
  rows: readonly ArrayLike<number>[],
  y: readonly number[],
  folds: number,
  seed: number,
): { byLambda: number[][]; trivial: number[] } {
  const order = new Rng(seed).shuffle([...rows.keys()]);
  const byLambda = LAMBDAS.map(() => new Array<number>(rows.length).fill(0));
  const trivial = new Array<number>(rows.length).fill(0);
  for (let f = 0; f < folds; f++) {
    const test = order.filter((_, i) => i % folds === f);
    const train = order.filter((_, i) => i % folds !== f);
    const mean = train.reduce((a, i) => a + y[i]!, 0) / train.length;
    for (const i of test) trivial[i] = mean;
    LAMBDAS.forEach((c, li) => {
      const m = fitRows(kind, rows, y, train, c);
      for (const i of test) byLambda[li]![i] = predictKpi(m, rows[i]!);
    });
  }
  return { byLambda, trivial };
}

/** Choose λ by k-fold CV, report its CV score against the trivial predictor, and fit on every row. */
export function fitKpi(
  kind: KpiKind,
  rows: readonly ArrayLike<number>[],
  y: readonly number[],
  folds: number,
  seed = 1,
): { model: LinearModel; cv: CvReport } {
  const { byLambda, trivial } = crossValidate(kind, rows, y, folds, seed);
  const score = (p: number[]): number => (kind === 'linear' ? r2(p, y) : -logLoss(p, y));
  let best = 0;
  byLambda.forEach((p, i) => (score(p) > score(byLambda[best]!) ? (best = i) : undefined));
  const p = byLambda[best]!;
  const cv: CvReport =
    kind === 'linear'
      ? { folds, lambda: LAMBDAS[best]!, r2: r2(p, y), baseline: r2(trivial, y) }
      : {
          folds,
          lambda: LAMBDAS[best]!,
          auc: rocAuc(p, y),
          logLoss: logLoss(p, y),
          baseline: y.reduce((a, v) => a + v, 0) / y.length,
          baselineLogLoss: logLoss(trivial, y),
        };
  return { model: fitRows(kind, rows, y, [...rows.keys()], LAMBDAS[best]!), cv };
}
