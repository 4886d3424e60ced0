// The per-tag threshold a taught head writes: the best F1 over every possible cut, checked against a
// brute force that scores each candidate threshold with plain counting (ties, all-negative, one
// positive, scores all equal).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bestF1Threshold } from '../../src/metrics/metrics.js';
import { Rng } from '../../training/rng.js';

function bruteForce(scores: number[], labels: number[]): number {
  let best = 0;
  for (const t of [...scores, Infinity]) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    scores.forEach((s, i) => {
      if (s >= t && labels[i]) tp++;
      else if (s >= t) fp++;
      else if (labels[i]) fn++;
    });
    if (tp > 0) best = Math.max(best, (2 * tp) / (2 * tp + fp + fn));
  }
  return best;
}

const f1At = (scores: number[], labels: number[], t: number): number => {
  const tp = scores.filter((s, i) => s >= t && labels[i]).length;
  const fp = scores.filter((s, i) => s >= t && !labels[i]).length;
  const fn = scores.filter((s, i) => s < t && labels[i]).length;
  return tp ? (2 * tp) / (2 * tp + fp + fn) : 0;
};

test('bestF1Threshold finds the highest F1 of any cut, and its threshold gives that F1', () => {
  const rng = new Rng(12);
  const cases: [number[], number[]][] = [
    [
      [0.9, 0.8, 0.7, 0.1],
      [1, 0, 1, 0],
    ],
    [
      [0.5, 0.5, 0.5],
      [1, 0, 0],
    ],
    [[0.2], [1]],
    [
      [0.3, 0.3, 0.1, 0.1],
      [0, 1, 1, 0],
    ],
  ];
  for (let c = 0; c < 300; c++) {
    const n = rng.int(1, 40);
    const levels = rng.int(2, 12); // few distinct scores: many ties
    cases.push([
      Array.from({ length: n }, () => rng.int(0, levels) / levels),
      Array.from({ length: n }, () => (rng.next() < 0.3 ? 1 : 0)),
    ]);
  }
  for (const [scores, labels] of cases) {
    const r = bestF1Threshold(scores, labels);
    if (!labels.some(Boolean)) {
      assert.equal(r, null);
      continue;
    }
    const want = bruteForce(scores, labels);
    assert.ok(Math.abs(r!.f1 - want) < 1e-12, `${scores} ${labels}: ${r!.f1} vs ${want}`);
    assert.ok(
      Math.abs(f1At(scores, labels, r!.threshold) - want) < 1e-12,
      `threshold ${r!.threshold} of ${scores} ${labels}`,
    );
  }
});
