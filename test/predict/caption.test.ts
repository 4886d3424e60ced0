// Tag selection and captions as sd-scripts' WD tagger and the web UI tagger make them, on a stand-in WD
// model whose probabilities are fixed (zero weights, biases = logit(p)), so every rule is spelled out.
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { CHARACTER_MCUT_FLOOR, selectTags } from '../../src/select/select.js';
import { inPart } from '../../src/predict/tagging.js';
import { A, Graph } from '../../src/onnx/graph.js';
import { cli, solid, tempDir } from '../helpers.js';

const S = 8;
// [tag, category, probability]
const TAGS: [string, number, number][] = [
  ['general', 9, 0.8],
  ['sensitive', 9, 0.15],
  ['explicit', 9, 0.05],
  ['1girl', 0, 0.99],
  ['long_hair', 0, 0.9],
  ['^_^', 0, 0.7],
  ['x_y', 0, 0.65],
  ['cat_(animal)', 0, 0.6],
  ['signs_and_symbols', 0, 0.55],
  ['solo', 0, 0.4],
  ['weak_tag', 0, 0.2],
  ['hatsune_miku', 4, 0.88],
  ['rare_character', 4, 0.3],
];
const dir = await tempDir();
const model = path.join(dir, 'model.onnx');
const tagsCsv = path.join(dir, 'selected_tags.csv');
{
  const g = new Graph('fixed');
  const x = g.input('input', 'float32', ['N', S, S, 3]);
  const zero = g.op('Mul', [g.op('ReduceSum', [x, g.const([1, 2, 3])], { keepdims: A.i(0) }), g.const(0, 'float32')]); // (N)
  const logits = g.initializer(
    'logits',
    'float32',
    [TAGS.length],
    Float32Array.from(TAGS.map(([, , p]) => Math.log(p / (1 - p)))),
  );
  const z = g.op('Add', [g.op('Unsqueeze', [zero, g.const([1])]), logits]);
  g.output(g.op('Sigmoid', [z]), 'output', 'float32', ['N', TAGS.length]);
  await writeFile(model, g.encode());
  await writeFile(tagsCsv, `tag_id,name,category,count\n${TAGS.map(([t, c], i) => `${i},${t},${c},10`).join('\n')}\n`);
}
const imgDir = path.join(dir, 'images');
await mkdir(imgDir);
const files: string[] = [];
for (let i = 0; i < 6; i++) {
  const f = path.join(imgDir, `p${i}.png`);
  await solid(10 + i, 8, [i * 40, 100, 200])
    .png()
    .toFile(f);
  files.push(f);
}
const wd = ['--model', model, '--tags', tagsCsv];
const captionOf = async (file: string, ext = '.txt'): Promise<string> => readFile(file.replace(/\.png$/, ext), 'utf8');
async function caption(...args: string[]): Promise<string> {
  const r = await cli('pred', files[0]!, ...wd, '--format', 'caption', '--overwrite', ...args);
  assert.equal(r.code, 0, r.err.join('\n'));
  return (await captionOf(files[0]!)).trimEnd();
}

test('a WD caption follows the rules: rating first, characters first, kaomoji and short tags keep "_", brackets escaped, exclude/replace in either form', async () => {
  const text = await caption(
    '--character-first',
    '--escape-brackets',
    '--exclude',
    'signs and symbols',
    '--replace',
    'solo=alone',
  );
  // Defaults of the wd preset: general ≥ 0.35, character ≥ 0.85 (rare_character 0.30 out), weak_tag 0.20 out;
  // --rating top keeps only "general" (0.80), placed first; confidence order otherwise.
  assert.equal(text, 'general, hatsune miku, 1girl, long hair, ^_^, x_y, cat \\(animal\\), alone');
});

test('rating last or none, weights, alpha order, always-first, separator, underscores', async () => {
  assert.equal(await caption('--rating-position', 'last', '--top', '4'), '1girl, long hair, hatsune miku, general');
  assert.equal(
    await caption('--rating', 'none', '--weighted', '--top', '3'),
    '(1girl:0.99), (long hair:0.90), (hatsune miku:0.88)',
  );
  assert.equal(
    await caption('--rating', 'none', '--sort', 'alpha', '--threshold', '0.58', '--character-threshold', '0.5'),
    '1girl, ^_^, cat (animal), hatsune miku, long hair, x_y',
  );
  assert.equal(
    await caption(
      '--rating',
      'none',
      '--always-first',
      'x y,long hair',
      '--top',
      '4',
      '--separator',
      ' | ',
      '--underscores',
    ),
    'long_hair | 1girl | hatsune_miku | ^_^',
  );
  assert.equal(
    await caption(
      '--rating',
      'all',
      '--threshold',
      '0.1',
      '--general-threshold',
      '0.95',
      '--character-threshold',
      '0.95',
    ),
    'general, sensitive, 1girl',
  );
});

test('thresholds: per category by name or id, MCut per category (character floored at 0.15), per-tag from eval --per-tag, --top only when given', () => {
  const names = TAGS.map(([t]) => t);
  const cats = TAGS.map(([, c]) => c);
  const probs = TAGS.map(([, , p]) => p);
  const pick = (o: Parameters<typeof selectTags>[3]): string[] => selectTags(probs, names, cats, o).map((s) => s.tag);
  // General: largest gap 0.90 → 0.70 (cut 0.80); character: 0.88 → 0.30 (cut 0.59).
  assert.deepEqual(pick({ mcut: new Set([0, 4]), rating: 'none' }), ['1girl', 'long_hair', 'hatsune_miku']);
  const lowChar = probs.map((p, i) => (names[i] === 'hatsune_miku' ? 0.12 : names[i] === 'rare_character' ? 0.02 : p));
  assert.equal(CHARACTER_MCUT_FLOOR, 0.15);
  assert.deepEqual(
    selectTags(lowChar, names, cats, { mcut: new Set([4]), categoryThresholds: new Map([[0, 1]]), rating: 'none' }).map(
      (s) => s.tag,
    ),
    [],
    'character MCut 0.07 floored at 0.15',
  );
  assert.deepEqual(
    pick({
      categoryThresholds: new Map([
        [0, 0.95],
        [4, 0.5],
      ]),
      rating: 'none',
    }),
    ['1girl', 'hatsune_miku'],
  );
  assert.deepEqual(
    pick({
      threshold: 0.5,
      tagThresholds: new Map([
        ['solo', 0.3],
        ['1girl', 0.999],
      ]),
      rating: 'none',
    }),
    ['long_hair', 'hatsune_miku', '^_^', 'x_y', 'cat_(animal)', 'signs_and_symbols', 'solo'],
  );
  assert.deepEqual(pick({ threshold: 0.5, top: 2, rating: 'top' }), ['1girl', 'general']);
});

test('pred --thresholds reads eval --per-tag CSV; --category-threshold by name; repeated --exclude accumulates; unknown tags warn', async () => {
  const csv = path.join(dir, 'per-tag.csv');
  await writeFile(
    csv,
    'tag,positives,ap,f1_at_0.5,threshold_p_eq_r,f1_at_p_eq_r\nsolo,3,0.9,0.8,0.35,0.8\n1girl,5,1,1,0.995,1\nweak_tag,0,,0,,\n',
  );
  const r = await cli(
    'pred',
    files[0]!,
    ...wd,
    '--format',
    'jsonl',
    '--thresholds',
    csv,
    '--category-threshold',
    'character=0.9',
    '--category-threshold',
    '0=0.85',
    '--exclude',
    'long hair',
    '--exclude',
    'no_such_tag',
    '--rating',
    'none',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(
    JSON.parse(r.out[0]!).tags.map((t: { tag: string }) => t.tag),
    ['solo'],
  );
  assert.ok(r.err.includes('warning: --exclude: the model has no tag "no_such_tag"'), r.err.join('\n'));
  const bad = await cli('pred', files[0]!, ...wd, '--category-threshold', 'colour=0.5');
  assert.equal(bad.code, 2);
  assert.match(
    bad.err.at(-1)!,
    /Expected a category name \(general, artist, copyright, character, meta, rating, year, quality, model, species, lore, invalid\) or id for --category-threshold but received "colour"/,
  );
  const inherited = await cli('pred', files[0]!, ...wd, '--category-threshold', 'constructor=0.5');
  assert.equal(inherited.code, 2); // a name every object inherits is no category
  assert.match(inherited.err.at(-1)!, /Expected a category name .* but received "constructor"/);
});

test('--append and --prepend merge with an existing caption without duplicates; --caption-ext; an empty result keeps a caption unless --allow-empty', async () => {
  const target = files[1]!.replace(/\.png$/, '.txt');
  await writeFile(target, 'my own tag, long hair\n');
  const args = ['pred', files[1]!, ...wd, '--format', 'caption', '--rating', 'none', '--top', '2'];
  assert.equal((await cli(...args, '--append')).code, 0);
  assert.equal(await readFile(target, 'utf8'), 'my own tag, long hair, 1girl\n');
  await writeFile(target, 'my own tag, long hair\n');
  assert.equal((await cli(...args, '--prepend')).code, 0);
  assert.equal(await readFile(target, 'utf8'), '1girl, long hair, my own tag\n');
  const ext = await cli(...args, '--caption-ext', '.caption');
  assert.equal(ext.code, 0);
  assert.equal(await captionOf(files[1]!, '.caption'), '1girl, long hair\n');
  const none = ['pred', files[1]!, ...wd, '--format', 'caption', '--rating', 'none', '--threshold', '1', '--overwrite'];
  const kept = await cli(...none);
  assert.match(kept.err.join('\n'), /no tags for it, the existing caption was kept \(use --allow-empty to empty it\)/);
  assert.match(kept.err.join('\n'), /pred: captions written 0, kept 1, empty 0, failed 0/);
  assert.equal(await readFile(target, 'utf8'), '1girl, long hair, my own tag\n');
  assert.equal((await cli(...none, '--allow-empty')).code, 0);
  assert.equal(await readFile(target, 'utf8'), '\n');
  // --append splits the existing caption on the separator in use, not on commas only.
  await writeFile(target, 'my own tag | long hair, with a comma\n');
  assert.equal((await cli(...args, '--append', '--separator', ' | ')).code, 0);
  assert.equal(await readFile(target, 'utf8'), 'my own tag | long hair, with a comma | 1girl | long hair\n');
});

test('captions are never written through a symlink: a link (even dangling) is reported and left alone', async () => {
  const outside = path.join(dir, 'outside.txt');
  const target = files[2]!.replace(/\.png$/, '.txt');
  await symlink(outside, target);
  const r = await cli('pred', files[2]!, ...wd, '--format', 'caption', '--overwrite');
  assert.equal(r.code, 1);
  assert.match(r.err.join('\n'), /p2\.txt is a symbolic link; not written through/);
  assert.ok((await lstat(target)).isSymbolicLink());
  await assert.rejects(lstat(outside), /ENOENT/);
});

test('--frequency counts the written tags over the run; --part I/N splits the inputs stably and completely', async () => {
  const freq = path.join(dir, 'freq.csv');
  const r = await cli(
    'pred',
    imgDir,
    ...wd,
    '--format',
    'jsonl',
    '--rating',
    'none',
    '--top',
    '2',
    '--frequency',
    freq,
    '--replace',
    '1girl=one girl',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal(await readFile(freq, 'utf8'), 'tag,count\nlong hair,6\none girl,6\n');
  const parts: string[][] = [];
  for (const p of ['1/3', '2/3', '3/3']) {
    const x = await cli('pred', imgDir, ...wd, '--format', 'jsonl', '--part', p);
    assert.equal(x.code, 0);
    parts.push(x.out.map((l) => JSON.parse(l).file));
  }
  assert.deepEqual(parts.flat().sort(), [...files].sort(), 'every image in exactly one part');
  // The hash is of each path relative to the folder argument, so another mount point splits alike.
  for (const [i, list] of parts.entries())
    for (const f of list) assert.ok(inPart(path.relative(imgDir, f), { index: i + 1, count: 3 }));
  const bad = await cli('pred', imgDir, ...wd, '--part', '4/3');
  assert.equal(bad.code, 2);
  assert.match(bad.err[0]!, /Expected I\/N with 1 ≤ I ≤ N, or auto, for --part but received "4\/3"/);
});
