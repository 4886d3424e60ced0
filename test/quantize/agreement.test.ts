// quantize's agreement report at its edges as in its middle, each figure computed by hand from the two
// models' tags and scores: tags on both sides, on neither, on one side only, one image, an image only
// one model could read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agreement, type Scores } from '../../src/quantize/agreement.js';
import { agreementLine } from '../../src/quantize/report.js';

/** Scores of `files`, each `[tags, probs]`. */
const scoresOf = (rows: Record<string, [string[], number[]]>): Scores =>
  new Map(
    Object.entries(rows).map(([f, [tags, probs]]) => [f, { tags: new Set(tags), probs: Float32Array.from(probs) }]),
  );
const entries = (...files: string[]): { file: string; key: string }[] => files.map((file) => ({ file, key: file }));
const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);

test('the middle: micro F1, tags added and dropped per image, |Δp| max and mean, the worst image first', () => {
  const float = scoresOf({
    x: [
      ['a', 'b'],
      [0.9, 0.8, 0.1],
    ],
    y: [['a'], [0.7, 0.2, 0.3]],
  });
  const int8 = scoresOf({
    x: [
      ['a', 'c'],
      [0.85, 0.4, 0.6],
    ],
    y: [['a'], [0.7, 0.25, 0.3]],
  });
  const r = agreement(float, int8, entries('x', 'y'));
  // x: both {a}, float {a,b}, int8 {a,c}: F1 2·1/4; y: both {a}: F1 1. Micro: 2·2/(3+3).
  close(r.f1, 4 / 6);
  assert.deepEqual(r.given, { float: 3, int8: 3 });
  close(r.addedPerImage, 1 / 2);
  close(r.droppedPerImage, 1 / 2);
  close(r.maxDelta, 0.5);
  close(r.meanDelta, (0.05 + 0.4 + 0.5 + 0 + 0.05 + 0) / 6);
  assert.deepEqual(
    r.worst.map((w) => [w.file, w.f1]),
    [
      ['x', 0.5],
      ['y', 1],
    ],
  );
  assert.match(
    agreementLine(r),
    /^agreement on 2 images: F1 0\.6667 of int8 tags against float tags \(3 float, 3 int8\), \+0\.50 \/ −0\.50 tags per image, \|Δp\| max 0\.5000 mean 0\.16667$/,
  );
});

test('no tags on either side: F1 1 by convention, and the line says it measures nothing', () => {
  const float = scoresOf({ x: [[], [0.1, 0.2]], y: [[], [0.3, 0.1]] });
  const int8 = scoresOf({ x: [[], [0.4, 0.2]], y: [[], [0.3, 0.1]] });
  const r = agreement(float, int8, entries('x', 'y'));
  assert.equal(r.f1, 1);
  assert.deepEqual([r.addedPerImage, r.droppedPerImage], [0, 0]);
  close(r.maxDelta, 0.3);
  assert.match(
    agreementLine(r),
    /\(0 float, 0 int8\).*; neither model gives a tag on them at the thresholds used, so F1 measures nothing/,
  );
});

test('tags on one side only: F1 0, every tag counted as added (int8 only) or dropped (float only)', () => {
  const tagged = scoresOf({
    x: [
      ['a', 'b'],
      [0.9, 0.9],
    ],
    y: [['a'], [0.9, 0.1]],
  });
  const bare = scoresOf({ x: [[], [0.1, 0.1]], y: [[], [0.1, 0.1]] });
  const dropped = agreement(tagged, bare, entries('x', 'y'));
  assert.equal(dropped.f1, 0);
  assert.deepEqual([dropped.addedPerImage, dropped.droppedPerImage], [0, 1.5]);
  assert.deepEqual(
    dropped.worst.map((w) => w.f1),
    [0, 0],
  );
  assert.doesNotMatch(agreementLine(dropped), /measures nothing/);
  const added = agreement(bare, tagged, entries('x', 'y'));
  assert.equal(added.f1, 0);
  assert.deepEqual([added.addedPerImage, added.droppedPerImage], [1.5, 0]);
  assert.match(agreementLine(added), /\(0 float, 3 int8\), \+1\.50 \/ −0\.00 tags per image/);
});

test('one image: its own figures, named in the singular; an image one model could not read is named, not counted', () => {
  const float = scoresOf({ x: [['a'], [0.9, 0.3]] });
  const int8 = scoresOf({
    x: [
      ['a', 'b'],
      [0.8, 0.6],
    ],
    gone: [['a'], [0.9, 0.1]],
  });
  const r = agreement(float, int8, entries('x', 'gone'));
  assert.equal(r.images, 1);
  close(r.f1, 2 / 3);
  close(r.meanDelta, (0.1 + 0.3) / 2);
  assert.deepEqual(r.unreadable, ['gone']);
  assert.deepEqual(
    r.worst.map((w) => w.file),
    ['x'],
  );
  assert.match(agreementLine(r), /^agreement on 1 image: F1 0\.6667 .*; 1 image unreadable: "gone"$/);
});
