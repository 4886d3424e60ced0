import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cli } from '../helpers.js';

test('--help lists the commands and exits 0', async () => {
  const r = await cli('--help');
  assert.equal(r.code, 0);
  const text = r.out.join('\n');
  for (const c of ['synth', 'tags <dataset>', 'pairs <dataset>', 'train <shards>', 'export <run>', 'demo', 'doctor'])
    assert.ok(text.includes(c), c);
});

test('each command has --help', async () => {
  for (const c of ['synth', 'tags', 'pairs', 'train', 'export', 'demo', 'doctor']) {
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

test('demo runs the whole pipeline and ends with predictions and the holdout mAP', async () => {
  const { tempDir } = await import('../helpers.js');
  const out = await tempDir();
  const r = await cli('demo', '--out', out, '--count', '150', '--rounds', '2');
  assert.equal(r.code, 0, r.err.join('\n'));
  const text = r.out.join('\n');
  for (const step of ['synth', 'tags', 'pairs', 'train', 'export'])
    assert.match(text, new RegExp(`\\$ alt-i2v-ort ${step} `));
  assert.match(text, /predictions on holdout images/);
  assert.match(
    text,
    /holdout mAP \d\.\d{3} \(\d+ images, \d+ tags\) vs \d\.\d{3} for a tagger that only knows tag frequencies/,
  );
  const again = await cli('demo', '--out', out, '--count', '150', '--rounds', '1');
  assert.equal(again.code, 0, `a second demo into the same folder starts afresh: ${again.err.join('\n')}`);
  const { writeFile } = await import('node:fs/promises');
  const other = await tempDir();
  await writeFile(`${other}/precious.txt`, 'keep me');
  const refused = await cli('demo', '--out', other);
  assert.equal(refused.code, 2);
  assert.match(refused.err[0]!, /Expected an empty or earlier demo folder for --out but .* holds other files/);
});
