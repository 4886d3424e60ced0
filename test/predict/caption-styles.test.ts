// `--caption-style sd-scripts|webui`: caption files byte for byte as the two programs write them, on a
// stand-in WD model (probabilities vary per image with its colour), for several option sets each, the
// sd-scripts ones given under sd-scripts' own option names. Expected bytes come from caption-refs.ts,
// written from the programs' source; the scores they start from are the model's own (pred --format
// jsonl), checked against a float64 computation, so both sides compare the same float32 values.
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { A, Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';
import { cli, solid, tempDir } from '../helpers.js';
import { sdScriptsReference, webuiReference, type SdArgs, type WebuiArgs } from './caption-refs.js';

const S = 8;
const ROWS: [string, string][] = [
  ...['general', 'sensitive', 'questionable', 'explicit'].map((t) => [t, '9'] as [string, string]),
  ...[
    '1girl',
    'long_hair',
    '^_^',
    '>_<',
    '(o)_(o)',
    'a_b',
    '\\m/',
    'looking_at_viewer',
    'smile',
    'open_mouth',
    'very_long_hair',
    'cat_(animal)',
    'solo',
  ].map((t) => [t, '0'] as [string, string]),
  ...['hatsune_miku', 'ganyu_(genshin_impact)', 'kiana_(herrscher)_(honkai)', 'rare_one'].map(
    (t) => [t, '4'] as [string, string],
  ),
];
const K = ROWS.length;
const dir = await tempDir();
const rng = new Rng(29);
const W = Array.from({ length: 3 * K }, () => (rng.next() - 0.5) * 0.12); // (3, K): BGR → logits
const B = Array.from({ length: K }, () => (rng.next() - 0.5) * 4);
const modelDir = path.join(dir, 'wd14_tagger_model', 'SmilingWolf_wd-v1-4-convnext-tagger-v2');
await mkdir(modelDir, { recursive: true });
{
  // probs = sigmoid(mean over pixels of the BGR input · W + b)
  const g = new Graph('stand_in');
  const x = g.input('input_1:0', 'float32', ['N', S, S, 3]);
  const mean = g.op('ReduceMean', [x], { axes: A.ints([1, 2]), keepdims: A.i(0) });
  const w = g.initializer('w', 'float32', [3, K], Float32Array.from(W));
  const b = g.initializer('b', 'float32', [K], Float32Array.from(B));
  g.output(g.op('Sigmoid', [g.op('Add', [g.op('MatMul', [mean, w]), b])]), 'predictions_sigmoid', 'float32', ['N', K]);
  await writeFile(path.join(modelDir, 'model.onnx'), g.encode());
  await writeFile(
    path.join(modelDir, 'selected_tags.csv'),
    `tag_id,name,category,count\n${ROWS.map(([t, c], i) => `${i},"${t}",${c},10`).join('\n')}\n`,
  );
}
const model = ['--model', path.join(modelDir, 'model.onnx'), '--tags', path.join(modelDir, 'selected_tags.csv')];
const source = path.join(dir, 'source');
await mkdir(source);
const colours: [number, number, number][] = Array.from({ length: 8 }, () => [
  rng.int(0, 255),
  rng.int(0, 255),
  rng.int(0, 255),
]);
const names = colours.map((_, i) => `img${i}`);
for (const [i, c] of colours.entries())
  await solid(S, S, c)
    .png()
    .toFile(path.join(source, `${names[i]}.png`));

/** Each image's scores in tags-file order, as the model gives them (float32), checked against float64. */
const probs: number[][] = [];
{
  const r = await cli('pred', source, ...model, '--format', 'jsonl', '--threshold', '0', '--rating', 'all');
  assert.equal(r.code, 0, r.err.join('\n'));
  const byFile = new Map(
    r.out.map((l) => JSON.parse(l) as { file: string; tags: { tag: string; prob: number }[] }).map((j) => [j.file, j]),
  );
  for (const [i, [red, green, blue]] of colours.entries()) {
    const got = new Map(byFile.get(path.join(source, `${names[i]}.png`))!.tags.map((t) => [t.tag, t.prob]));
    probs.push(
      ROWS.map(([tag], j) => {
        const z = B[j]! + [blue, green, red].reduce((s, v, c) => s + v * W[c * K + j]!, 0);
        const p = got.get(tag)!;
        assert.ok(Math.abs(p - 1 / (1 + Math.exp(-z))) < 1e-5, `${tag}: ${p} vs float64 ${1 / (1 + Math.exp(-z))}`);
        return p;
      }),
    );
  }
}

/** A fresh copy of the images with these existing captions (by image index). */
async function folder(name: string, existing: Record<number, string> = {}): Promise<string> {
  const d = path.join(dir, name);
  await cp(source, d, { recursive: true });
  for (const [i, text] of Object.entries(existing)) await writeFile(path.join(d, `${names[Number(i)]}.txt`), text);
  return d;
}

const captionsOf = (d: string): Promise<(string | null)[]> =>
  Promise.all(names.map((n) => readFile(path.join(d, `${n}.txt`), 'utf8').catch(() => null)));

/** sd-scripts' command line for these args (underscored names, as its users type them). */
function sdFlags(a: SdArgs): string[] {
  return Object.entries(a).flatMap(([k, v]) => (v === true ? [`--${k}`] : v === false ? [] : [`--${k}`, String(v)]));
}

const EXISTING: Record<number, string> = {
  0: '\n\nold tag, 1girl ,,  smile\n',
  2: 'masterpiece',
  3: 'solo | very long hair|new one\n',
  5: '',
};

const SD_CASES: [string, SdArgs, Record<number, string>?][] = [
  ['defaults', {}],
  [
    'remove_underscore, rating first, characters first',
    { remove_underscore: true, use_rating_tags: true, character_tags_first: true },
  ],
  [
    'own thresholds, rating last, another separator',
    { general_threshold: 0.5, character_threshold: 0.2, use_rating_tags_as_last_tag: true, caption_separator: '; ' },
  ],
  [
    'undesired, always first (unstripped), replacement with an escaped comma',
    {
      remove_underscore: true,
      thresh: 0.3,
      undesired_tags: 'smile, looking at viewer',
      always_first_tags: '1girl, solo,open mouth',
      tag_replacement: 'long hair,very long hair;hatsune miku,miku\\, vocaloid',
    },
  ],
  ['character expand', { character_tag_expand: true, thresh: 0.2, use_rating_tags: true }],
  ['append to existing captions', { append_tags: true, remove_underscore: true }, EXISTING],
  [
    'append with " | "',
    { append_tags: true, caption_separator: ' | ', undesired_tags: 'solo | smile', thresh: 0.25 },
    EXISTING,
  ],
];

for (const [name, args, existing] of SD_CASES) {
  test(`sd-scripts style, ${name}: every caption byte for byte as sd-scripts v0.9.1 writes it`, async () => {
    const d = await folder(`sd-${name.replace(/\W+/g, '-')}`, existing);
    const r = await cli(
      'pred',
      d,
      ...model,
      '--format',
      'caption',
      '--caption-style',
      'sd-scripts',
      '--frequency_tags',
      ...sdFlags(args),
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    const want = sdScriptsReference(
      ROWS,
      args,
      probs.map((prob, i) => ({ prob, existing: existing?.[i] })),
    );
    assert.deepEqual(await captionsOf(d), want.captions);
    assert.deepEqual(r.out, want.frequencies);
  });
}

test('an sd-scripts command line works as typed, its model found where sd-scripts keeps it; subfolders only with --recursive', async () => {
  const d = await folder('sd-cli');
  await mkdir(path.join(d, 'sub'));
  await cp(path.join(source, 'img1.png'), path.join(d, 'sub', 'deep.png'));
  const line = [
    '--onnx',
    '--model_dir',
    path.join(dir, 'wd14_tagger_model'),
    '--batch_size',
    '4',
    '--max_data_loader_n_workers',
    '2',
    '--thresh',
    '0.3',
    '--caption_extension',
    '.txt',
    '--remove-underscore',
    '--use_rating_tags',
  ];
  let r = await cli('pred', d, '--caption-style', 'sd-scripts', '--format', 'caption', ...line);
  assert.equal(r.code, 0, r.err.join('\n'));
  const want = sdScriptsReference(
    ROWS,
    { thresh: 0.3, remove_underscore: true, use_rating_tags: true },
    probs.map((prob) => ({ prob })),
  );
  assert.deepEqual(await captionsOf(d), want.captions);
  await assert.rejects(readFile(path.join(d, 'sub', 'deep.txt')), 'no --recursive: the subfolder is not tagged');
  r = await cli('pred', d, '--caption-style', 'sd-scripts', '--format', 'caption', '--recursive', ...line);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal(await readFile(path.join(d, 'sub', 'deep.txt'), 'utf8'), want.captions[1]);
  r = await cli(
    'pred',
    d,
    '--caption-style',
    'sd-scripts',
    '--format',
    'caption',
    '--model_dir',
    path.join(dir, 'nowhere'),
  );
  assert.equal(r.code, 2);
  assert.match(
    r.err.join('\n'),
    /^alt-i2v-ort: Expected --model, or the ONNX model sd-scripts keeps .*nowhere.*model\.onnx.* downloads nothing/,
  );
});

const WEBUI_CASES: [string, string[], WebuiArgs, Record<number, string>?][] = [
  ['defaults, existing captions kept', [], {}, EXISTING],
  [
    'alphabetical, weighted, escaped',
    ['--sort', 'alpha', '--weighted', '--escape-brackets', '--additional-tags', 'masterpiece'],
    {
      sort_by_alphabetical_order: true,
      add_confident_as_weight: true,
      escape_tag: true,
      additional_tags: 'masterpiece',
    },
  ],
  [
    'underscores kept, exclude, additional tags, threshold',
    [
      '--underscores',
      '--exclude',
      'long_hair,smile',
      '--additional-tags',
      'masterpiece, best quality',
      '--threshold',
      '0.5',
    ],
    {
      replace_underscore: false,
      exclude_tags: 'long_hair,smile',
      additional_tags: 'masterpiece, best quality',
      threshold: 0.5,
    },
  ],
  [
    'append, duplicates removed',
    ['--append', '--remove-duplicated-tag'],
    { action_on_conflict: 'append', remove_duplicated_tag: true },
    EXISTING,
  ],
  ['prepend', ['--prepend'], { action_on_conflict: 'prepend' }, EXISTING],
  [
    'overwrite, own underscore excludes',
    ['--overwrite', '--underscore-excludes', '^_^,a_b'],
    { action_on_conflict: 'copy', replace_underscore_excludes: '^_^,a_b' },
    EXISTING,
  ],
];

for (const [name, flags, args, existing] of WEBUI_CASES) {
  test(`webui style, ${name}: every caption byte for byte as the web UI tagger writes it`, async () => {
    const d = await folder(`webui-${name.replace(/\W+/g, '-')}`, existing);
    const r = await cli('pred', d, ...model, '--format', 'caption', '--caption-style', 'webui', ...flags);
    assert.equal(r.code, 0, r.err.join('\n'));
    const want = probs.map((prob, i) => webuiReference(ROWS, prob, args, existing?.[i]) ?? existing?.[i] ?? null);
    assert.deepEqual(await captionsOf(d), want);
  });
}

test('a flag a caption style does not have is refused with one line naming it', async () => {
  for (const [style, flag] of [
    ['sd-scripts', ['--mcut', 'general']],
    ['sd-scripts', ['--weighted']],
    ['webui', ['--character-threshold', '0.5']],
    ['webui', ['--use_rating_tags']],
    ['ours', ['--tag_replacement', 'a,b']],
  ] as const) {
    const r = await cli('pred', source, ...model, '--format', 'caption', '--caption-style', style, ...flag);
    assert.equal(r.code, 2, `${style} ${flag.join(' ')}`);
    assert.equal(r.err.length, 1, r.err.join('\n'));
    assert.match(
      r.err[0]!,
      new RegExp(
        `Expected --${flag[0]!.slice(2).replace(/_/g, '-')} only with --caption-style .* but the caption style is ${style}`,
      ),
    );
  }
});
