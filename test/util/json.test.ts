// JSON depth before parsing: brackets inside strings (escaped quotes included) do not count, and a
// document over the bound is refused without a stack overflow however deep it goes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonDepth, MAX_JSON_DEPTH, parseJson } from '../../src/util/json.js';

test('jsonDepth counts arrays and objects, not brackets inside strings', () => {
  assert.equal(jsonDepth('1'), 0);
  assert.equal(jsonDepth('{"a": [1, {"b": []}]}'), 4);
  assert.equal(jsonDepth('{"a": "[[[{{{"}'), 1);
  assert.equal(jsonDepth('["\\"[[[", "\\\\", [[]]]'), 3);
  assert.deepEqual(parseJson('{"a": "]]]"}'), { a: ']]]' });
});

test('a document deeper than the bound is refused before parsing, even a million levels deep', () => {
  const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  assert.equal((parseJson(deep(MAX_JSON_DEPTH)) as unknown[]).length, 1);
  assert.throws(() => parseJson(deep(MAX_JSON_DEPTH + 1)), /nested more than 100 levels deep/);
  assert.throws(() => parseJson(deep(1_000_000)), /nested more than 100 levels deep/);
});
