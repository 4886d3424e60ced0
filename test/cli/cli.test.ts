import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cli } from '../helpers.js';

test('--help lists the commands and exits 0', async () => {
  const r = await cli('--help');
  assert.equal(r.code, 0);
  const text = r.out.join('\n');
  for (const c of ['synth', 'tags <dataset>', 'pairs <dataset>']) assert.ok(text.includes(c), c);
});

test('each command has --help', async () => {
  for (const c of ['synth', 'tags', 'pairs']) {
    const r = await cli(c, '--help');
    assert.equal(r.code, 0, c);
    assert.match(r.out.join('\n'), new RegExp(`alt-i2v-ort ${c}`));
  }
});

test('an unknown flag, a missing required option and no command are usage errors on one line', async () => {
  for (const argv of [['synth', '--out', 'x', '--bogus'], ['synth'], [], ['frobnicate']]) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.err.length, 1, r.err.join('\n'));
    assert.match(r.err[0]!, /^alt-i2v-ort: \S/);
  }
});

test('a non-integer count names the flag and the value', async () => {
  const r = await cli('synth', '--out', '/tmp/never', '--count', '2.5');
  assert.equal(r.code, 2);
  assert.equal(r.err[0], 'alt-i2v-ort: Expected integer between 1 and 10000000 for --count but received 2.5');
});
