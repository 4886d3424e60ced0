// --model hf:OWNER/REPO[@REVISION][:FILE] from a Hugging Face cache built here in huggingface_hub's
// layout (refs/REVISION → commit, snapshots/COMMIT/FILE as symbolic links to blobs/), found through
// HF_HUB_CACHE, HF_HOME or XDG_CACHE_HOME as huggingface_hub finds it; what the cache lacks is one line.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { hubCacheDir, parseHfRef } from '../../src/hub/hf-cache.js';
import { cli, tempDir } from '../helpers.js';
import { wdStandIn as model } from './stand-ins.js';

const dir = await tempDir();
const cache = path.join(dir, 'hub');
const repoDir = path.join(cache, 'models--SmilingWolf--wd-stand-in');
const COMMIT = 'a'.repeat(39) + '1';
const OTHER = 'b'.repeat(40);

/** One snapshot: its files as blobs, linked from snapshots/COMMIT/, as huggingface_hub stores them. */
async function snapshot(commit: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [name, body] of Object.entries(files)) {
    const blob = path.join(repoDir, 'blobs', `${commit}-${name.replace(/\//g, '_')}`);
    const link = path.join(repoDir, 'snapshots', commit, name);
    await mkdir(path.dirname(blob), { recursive: true });
    await mkdir(path.dirname(link), { recursive: true });
    await writeFile(blob, body);
    await symlink(path.relative(path.dirname(link), blob), link);
  }
}

const tags = 'tag_id,name,category,count\n0,general,9,1\n1,1girl,0,1\n2,hatsune_miku,4,1\n';
await snapshot(COMMIT, { 'model.onnx': model(), 'selected_tags.csv': tags });
await snapshot(OTHER, { 'onnx/model.onnx': model(), 'onnx/selected_tags.csv': tags });
await mkdir(path.join(repoDir, 'refs'), { recursive: true });
await writeFile(path.join(repoDir, 'refs', 'main'), COMMIT);
await writeFile(path.join(repoDir, 'refs', 'v2'), `${OTHER}\n`);
const img = path.join(dir, 'a.png');
await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 10, b: 90 } } })
  .png()
  .toFile(img);

const saved = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
process.env.HF_HUB_CACHE = cache;
process.env.HF_HUB_OFFLINE = '1'; // the downloads are hf-download.test.ts's
after(() => Object.assign(process.env, saved));

const pred = (ref: string): ReturnType<typeof cli> =>
  cli('pred', img, '--model', ref, '--format', 'json', '--threshold', '0');

test('hf:OWNER/REPO runs the cached snapshot of main, its tags file found beside it; @tag, @commit and :FILE pick others', async () => {
  for (const ref of [
    'hf:SmilingWolf/wd-stand-in',
    `hf:SmilingWolf/wd-stand-in@${COMMIT}`,
    'hf:SmilingWolf/wd-stand-in@v2:onnx/model.onnx',
  ]) {
    const r = await pred(ref);
    assert.equal(r.code, 0, `${ref}: ${r.err.join('\n')}`);
    assert.match(r.err[0]!, new RegExp(`snapshots/(${COMMIT}|${OTHER})/(onnx/)?model\\.onnx: preset wd`));
    assert.deepEqual(
      (JSON.parse(r.out.join('\n')) as { tags: { tag: string }[] }[])[0]!.tags.map((t) => t.tag).sort(),
      ['1girl', 'general', 'hatsune_miku'],
    );
  }
});

test('offline (HF_HUB_OFFLINE), what the cache lacks and references that are not one are one line each', async () => {
  const cases: [string, RegExp][] = [
    [
      'hf:SmilingWolf/wd-stand-in@v9',
      /Expected SmilingWolf\/wd-stand-in at revision v9 in the Hugging Face cache but ".*refs\/v9" does not exist; HF_HUB_OFFLINE is set, so nothing is downloaded \(fetch it with: huggingface-cli download SmilingWolf\/wd-stand-in model\.onnx --revision v9\)/,
    ],
    [
      'hf:SmilingWolf/wd-stand-in:model_optimized.onnx',
      /Expected model_optimized\.onnx of SmilingWolf\/wd-stand-in \(commit aaaaaaaaaaaa\) in the Hugging Face cache at ".*" but it is not there/,
    ],
    ['hf:Other/repo', /Expected Other\/repo at revision main in the Hugging Face cache/],
    [
      'hf:SmilingWolf/wd-stand-in:../../x.onnx',
      /Expected hf:OWNER\/REPO\[@REVISION\]\[:FILE\] for --model .*the file is a path inside the repository/,
    ],
    ['hf:../wd', /Expected hf:OWNER\/REPO\[@REVISION\]\[:FILE\] for --model but received "hf:\.\.\/wd"/],
  ];
  for (const [ref, message] of cases) {
    const r = await pred(ref);
    assert.equal(r.code, 2, ref);
    assert.equal(r.err.length, 1, r.err.join('\n'));
    assert.match(r.err[0]!, message, ref);
  }
});

test('the cache folder as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
  assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/old' }), '/old');
  assert.equal(hubCacheDir({ HF_HOME: '/h' }), path.join('/h', 'hub'));
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), path.join('/x', 'huggingface', 'hub'));
  assert.equal(hubCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  assert.deepEqual(parseHfRef('hf:a/b'), { repo: 'a/b', revision: 'main', file: 'model.onnx' });
  assert.deepEqual(parseHfRef('hf:a/b@refs/pr/1:x/m.onnx'), { repo: 'a/b', revision: 'refs/pr/1', file: 'x/m.onnx' });
});
