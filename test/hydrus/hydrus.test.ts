// `hydrus` against a local server holding the documented contract of Hydrus' Client API
// (fake-hydrus.ts): the files of a search tagged with pred's own selection, spelled as Hydrus stores
// tags (lower case, spaces for underscores, namespaces; an unnamespaced tag with a colon led by one);
// only adds, never over a tag a human deleted, never twice; a marker that a rerun's search leaves out;
// --dry-run; the key from HYDRUS_ACCESS_KEY or --key-file only; a bad key, a missing permission, a
// file deleted between search and fetch, a file that is not an image, a server that drops connections.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { KAOMOJI } from '../../src/captions/ours.js';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';
import { fakeHydrus, MY_TAGS, PTR, type FakeFile } from './fake-hydrus.js';

const dir = await tempDir();
const TAGS = ['long_hair', 'smile', ':d', 'hatsune_miku', 'rating:general', 'rating:explicit'];
const CATS = [0, 0, 0, 4, 9, 9];
const model = await tinyModel(path.join(dir, 'model.onnx'), TAGS, CATS);
const KEY = 'ab'.repeat(32);
const MARKER = 'alt-i2v:model';

const pngs: Buffer[] = [];
for (let i = 0; i < 4; i++) {
  const png = await solid(40, 30, [60 * i, 200 - 40 * i, 90])
    .png()
    .toBuffer();
  pngs.push(png);
  await writeFile(path.join(dir, `f${i}.png`), png);
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The documented rules, written out: Hydrus' lower case, spaces for underscores (kaomoji and ≤ 3 characters keep theirs), namespaces, CleanTag's leading colon. */
function spelled(tag: string, category: number): string {
  const bare = category === 9 ? tag.replace(/^rating:/, '') : tag;
  const sub = (KAOMOJI.has(bare) || bare.length <= 3 ? bare : bare.replace(/_/g, ' ')).toLowerCase();
  const ns = { 4: 'character', 9: 'rating' }[category];
  return ns ? `${ns}:${sub}` : sub.includes(':') ? `:${sub}` : sub;
}

/** pred's selection for each image at these flags, spelled as Hydrus stores it. */
async function predTags(flags: string[]): Promise<string[][]> {
  const files = pngs.map((_, i) => path.join(dir, `f${i}.png`));
  const r = await cli('pred', ...files, '--model', model, '--format', 'json', ...flags);
  assert.equal(r.code, 0, r.err.join('\n'));
  const rows = JSON.parse(r.out.join('\n')) as { tags: { tag: string }[] }[];
  return rows.map((row) => row.tags.map((t) => spelled(t.tag, CATS[TAGS.indexOf(t.tag)]!)));
}

function library(): FakeFile[] {
  const f = (id: number, bytes: Buffer, mime: string, tags: FakeFile['tags'] = {}): FakeFile => ({
    id,
    hash: sha(bytes),
    mime,
    bytes,
    tags,
  });
  return [
    f(1, pngs[0]!, 'image/png'),
    // a human's tags: one current, one deleted (never added back)
    f(2, pngs[1]!, 'image/png', { [MY_TAGS]: { '0': ['smile', 'my own tag'], '2': ['long hair'] } }),
    f(3, pngs[2]!, 'image/png', { [MY_TAGS]: { '0': [MARKER] } }), // done before
    f(4, Buffer.from('%PDF-1.4 not an image'), 'application/pdf'),
    { ...f(5, pngs[3]!, 'image/png'), deleted: true }, // deleted between the search and the fetch
  ];
}

const env = process.env;
after(() => void delete env.HYDRUS_ACCESS_KEY);
const hydrus = (url: string, ...more: string[]) =>
  cli(
    'hydrus',
    '--api',
    url,
    '--search',
    'system:number of tags < 1',
    '--search',
    'system:inbox',
    '--model',
    model,
    ...more,
  );

test("hydrus tags the files of a search on a tag service: pred's tags in Hydrus spelling, only adds, a marker, resumable", async () => {
  const h = await fakeHydrus(KEY, library());
  try {
    env.HYDRUS_ACCESS_KEY = KEY;
    const r = await hydrus(h.url, '--service', 'my tags', '--threshold', '0.5');
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.deepEqual(h.searches, [['system:number of tags < 1', 'system:inbox', `-${MARKER}`]]);
    const want = await predTags(['--threshold', '0.5']);
    const byHash = new Map(h.adds.map((a) => [a.hash, a]));
    assert.equal(h.adds.length, 2); // files 1 and 2: 3 was done, 4 is no image, 5 is gone
    for (const a of h.adds) {
      assert.equal(a.override_previously_deleted_mappings, false);
      assert.deepEqual(Object.keys(a.service_keys_to_actions_to_tags as object), [MY_TAGS]);
      assert.deepEqual(Object.keys((a.service_keys_to_actions_to_tags as Record<string, object>)[MY_TAGS]!), ['0']);
    }
    const sent = (i: number): string[] =>
      (byHash.get(sha(pngs[i]!))!.service_keys_to_actions_to_tags as Record<string, Record<string, string[]>>)[
        MY_TAGS
      ]!['0']!;
    assert.deepEqual(sent(0).sort(), [...want[0]!, MARKER].sort());
    assert.deepEqual(sent(1).sort(), [...want[1]!.filter((t) => t !== 'smile' && t !== 'long hair'), MARKER].sort());
    assert.match(r.err.join('\n'), /warning: Hydrus file 4 \(application\/pdf\): not tagged/);
    assert.match(r.err.join('\n'), /warning: Hydrus file 5 is gone \(deleted since the search\): passed over/);
    assert.match(
      r.err.at(-1)!,
      /^hydrus: 4 files found, 0 already done, 2 tagged \(\d+ tags added\), 1 gone since the search, 1 failed$/,
    );
    const again = await hydrus(h.url, '--service', MY_TAGS, '--threshold', '0.5');
    assert.equal(again.code, 0, again.err.join('\n'));
    assert.equal(h.adds.length, 2); // files 1 and 2 now carry the marker: the search leaves them out
    assert.match(again.err.at(-1)!, /^hydrus: 2 files found, 0 already done, 0 tagged/);
  } finally {
    await h.app.close();
  }
});

test('hydrus --dry-run prints what it would write and needs no add-tags permission; a tag repository is pended to', async () => {
  const h = await fakeHydrus(KEY, library());
  try {
    env.HYDRUS_ACCESS_KEY = KEY;
    h.permissions = [3];
    const dry = await hydrus(h.url, '--service', 'public tag repository', '--dry-run', '--threshold', '0.5');
    assert.equal(dry.code, 0, dry.err.join('\n'));
    assert.equal(h.adds.length, 0);
    const want = await predTags(['--threshold', '0.5']);
    assert.deepEqual(dry.out[0]!.split('\t'), [sha(pngs[0]!), [...want[0]!, MARKER].join(', ')]);
    const refused = await hydrus(h.url, '--service', 'public tag repository');
    assert.equal(refused.code, 2);
    assert.match(refused.err.at(-1)!, /Expected the access key to permit "add tags to files" but it does not/);
    h.permissions = [2, 3];
    const pend = await hydrus(h.url, '--service', PTR, '--namespace', 'character=person', '--namespace', 'rating=');
    assert.equal(pend.code, 0, pend.err.join('\n'));
    const actions = h.adds[0]!.service_keys_to_actions_to_tags as Record<string, Record<string, string[]>>;
    assert.deepEqual(Object.keys(actions[PTR]!), ['2']);
    assert.ok(!actions[PTR]!['2']!.some((t) => t.startsWith('rating:') || t.startsWith('character:')));
  } finally {
    await h.app.close();
  }
});

test('hydrus: the key only from HYDRUS_ACCESS_KEY or --key-file, a wrong one refused in one line; services resolved or named', async () => {
  const h = await fakeHydrus(KEY, library());
  try {
    delete env.HYDRUS_ACCESS_KEY;
    const none = await hydrus(h.url, '--service', 'my tags');
    assert.equal(none.code, 2);
    assert.match(none.err.at(-1)!, /Expected the access key in HYDRUS_ACCESS_KEY or a file named by --key-file/);
    assert.equal((await hydrus(h.url, '--service', 'my tags', '--key', KEY)).code, 2); // never on the command line
    const keyFile = path.join(dir, 'key.txt');
    await writeFile(keyFile, `${'cd'.repeat(32)}\n`);
    const wrong = await hydrus(h.url, '--service', 'my tags', '--key-file', keyFile);
    assert.equal(wrong.code, 2);
    assert.match(
      wrong.err.at(-1)!,
      /Hydrus refused \/verify_access_key \(403: Did not find an entry for that access key!\): check the access key/,
    );
    assert.doesNotMatch(wrong.err.join('\n'), /cdcdcdcd/);
    await writeFile(keyFile, `${KEY}\n`);
    const files = await hydrus(h.url, '--service', 'my files', '--key-file', keyFile);
    assert.match(
      files.err.at(-1)!,
      /Expected --service to be a tag service but "my files" is not one; the tag services: "my tags"/,
    );
    const missing = await hydrus(h.url, '--service', 'their tags', '--key-file', keyFile);
    assert.match(missing.err.at(-1)!, /Hydrus has no "their tags"/);
  } finally {
    await h.app.close();
  }
});

test('hydrus: a dropped connection is tried again; a server that keeps dropping it ends in one line', async () => {
  const h = await fakeHydrus(KEY, library());
  try {
    env.HYDRUS_ACCESS_KEY = KEY;
    h.drop.set('/add_tags/add_tags', 1);
    h.drop.set('/get_files/file', 1);
    const ok = await hydrus(h.url, '--service', 'my tags');
    assert.equal(ok.code, 0, ok.err.join('\n'));
    assert.equal(h.adds.length, 2);
    h.drop.set('/get_files/search_files', 3);
    const down = await hydrus(h.url, '--service', 'my tags');
    assert.equal(down.code, 1);
    assert.match(
      down.err.at(-1)!,
      /Expected Hydrus' Client API at http:\/\/127\.0\.0\.1:\d+ to answer \/get_files\/search_files but the connection failed or was dropped \(three tries\)/,
    );
    const ns = await hydrus(h.url, '--service', 'my tags', '--namespace', 'constructor=x');
    assert.equal(ns.code, 2);
    assert.match(ns.err.at(-1)!, /Expected a category name .* or id for --namespace but received "constructor"/);
    const closed = await hydrus('http://127.0.0.1:9', '--service', 'my tags');
    assert.equal(closed.code, 1);
    assert.match(closed.err.at(-1)!, /to answer \/verify_access_key but the connection failed/);
  } finally {
    await h.app.close();
  }
});

test('hydrus --frames tags animated files by their frames, merged as pred --frames merges them', async () => {
  const S = 24;
  const colours = [
    [250, 10, 10],
    [10, 10, 250],
  ];
  const raw = Buffer.alloc(S * S * 3 * colours.length);
  colours.forEach((c, f) => {
    for (let i = 0; i < S * S; i++) raw.set(c, (f * S * S + i) * 3);
  });
  const webp = await sharp(raw, { raw: { width: S, height: S * colours.length, channels: 3, pageHeight: S } })
    .webp({ lossless: true, loop: 0, delay: [100, 100] })
    .toBuffer();
  const file = path.join(dir, 'anim.webp');
  await writeFile(file, webp);
  const h = await fakeHydrus(KEY, [{ id: 7, hash: sha(webp), mime: 'image/webp', bytes: webp, tags: {} }]);
  try {
    env.HYDRUS_ACCESS_KEY = KEY;
    // A threshold between the tag's mean and its second (larger) frame's score: max selects it, mean and
    // the first frame alone do not.
    const probs = async (...f: string[]): Promise<Map<string, number>> => {
      const p = await cli(
        'pred',
        file,
        '--model',
        model,
        '--format',
        'json',
        '--threshold',
        '0',
        '--rating',
        'all',
        ...f,
      );
      return new Map(
        (JSON.parse(p.out.join('\n')) as { tags: { tag: string; prob: number }[] }[])[0]!.tags.map((t) => [
          t.tag,
          t.prob,
        ]),
      );
    };
    const [one, max, mean] = [
      await probs(),
      await probs('--frames', '2'),
      await probs('--frames', '2', '--frames-merge', 'mean'),
    ];
    const tag = TAGS.filter((t) => CATS[TAGS.indexOf(t)] !== 9).sort(
      (a, b) => max.get(b)! - one.get(b)! - (max.get(a)! - one.get(a)!),
    )[0]!;
    assert.ok(max.get(tag)! - one.get(tag)! > 0.01, `${tag}: frames too alike`);
    const threshold = ((mean.get(tag)! + max.get(tag)!) / 2).toFixed(6);
    const sent: Record<string, string[]> = {};
    for (const merge of ['max', 'mean']) {
      const flags = ['--threshold', threshold, '--frames', '2', '--frames-merge', merge];
      const r = await hydrus(h.url, '--service', 'my tags', '--dry-run', ...flags);
      assert.equal(r.code, 0, r.err.join('\n'));
      const p = await cli('pred', file, '--model', model, '--format', 'json', ...flags);
      const want = (JSON.parse(p.out.join('\n')) as { tags: { tag: string }[] }[])[0]!.tags.map((t) =>
        spelled(t.tag, CATS[TAGS.indexOf(t.tag)]!),
      );
      sent[merge] = r.out[0]!.split('\t')[1]!.split(', ');
      assert.deepEqual(sent[merge], [...want, MARKER], merge);
    }
    const name = spelled(tag, CATS[TAGS.indexOf(tag)]!);
    assert.ok(sent.max!.includes(name) && !sent.mean!.includes(name), `${name}: ${JSON.stringify(sent)}`);
  } finally {
    await h.app.close();
  }
});
