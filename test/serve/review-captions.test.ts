// The review page writes captions as `pred --format caption` writes them (issue 42, item 2): for each
// caption style and its spelling flags, pred's own caption of an image is read back as the model's tag
// names, and writing those tags through the review API to an image without a caption gives pred's
// bytes. A tag the caption holds keeps its own text; a tag that would split in the format is refused.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { TaggerModel } from '../../src/model/tagger.js';
import { captionFormat, type CaptionFormatArgs } from '../../src/review/caption-format.js';
import { ReviewSet } from '../../src/review/review-set.js';
import { buildServer } from '../../src/serve/app.js';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';

const dir = await tempDir();
// The WD layout (4 ratings first) that sd-scripts and the web UI tagger require.
const TAGS = ['general', 'sensitive', 'questionable', 'explicit', 'long_hair', ':d', '^_^', 'red_eyes', 'a_(b)'];
const model = await tinyModel(path.join(dir, 'wd.onnx'), TAGS, [9, 9, 9, 9, 0, 0, 0, 0, 4]);
const OPTS = { name: 'wd', batch: 2, maxWaitMs: 1, queue: 8, timeoutMs: 10_000, bodyLimit: 2 ** 20, maxPixels: 1e6 };

const STYLES: { flags: string[]; args: CaptionFormatArgs }[] = [
  { flags: [], args: {} },
  {
    flags: ['--underscores', '--escape-brackets', '--separator', ' | '],
    args: { underscores: true, escapeBrackets: true, separator: ' | ' },
  },
  {
    flags: ['--caption-style', 'sd-scripts', '--remove-underscore', '--separator', '; ', '--caption-ext', '.caption'],
    args: { captionStyle: 'sd-scripts', removeUnderscore: true, separator: '; ', captionExt: '.caption' },
  },
  { flags: ['--caption-style', 'webui', '--escape-brackets'], args: { captionStyle: 'webui', escapeBrackets: true } },
];

for (const [n, { flags, args }] of STYLES.entries())
  test(`review captions as pred writes them: ${flags.join(' ') || 'the default style'}`, async () => {
    const data = path.join(dir, `style${n}`);
    await mkdir(data);
    await solid(32, 24, [200, 40, 90]).png().toFile(path.join(data, 'a.png'));
    await copyFile(path.join(data, 'a.png'), path.join(data, 'b.png'));
    const r = await cli(
      'pred',
      path.join(data, 'a.png'),
      '--model',
      model,
      '--format',
      'caption',
      '--threshold',
      '0',
      ...flags,
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    const ext = args.captionExt ?? '.txt';
    const predBytes = await readFile(path.join(data, `a${ext}`));
    const app = await buildServer(await TaggerModel.load(model), {
      ...OPTS,
      dataset: await ReviewSet.open(data, captionFormat(args)),
    });
    try {
      const a = (await app.inject({ url: '/v1/review/0' })).json();
      const read: string[] = a.caption.tags;
      assert.ok(read.length >= 3, JSON.stringify(read));
      for (const t of read) assert.ok(TAGS.includes(t), `${t} read back from ${JSON.stringify(String(predBytes))}`);
      const put = await app.inject({ method: 'PUT', url: '/v1/review/1', payload: { tags: read, etag: 'none' } });
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(await readFile(path.join(data, `b${ext}`)), predBytes);
      // The caption's own spelling of a tag is kept when it is written again.
      const sep = args.captionStyle === 'webui' ? ', ' : (args.separator ?? ', ');
      await writeFile(path.join(data, `b${ext}`), `My OC${sep}Other Tag\n`);
      const b = (await app.inject({ url: '/v1/review/1' })).json();
      assert.deepEqual(b.caption.tags, ['My_OC', 'Other_Tag']);
      const again = await app.inject({
        method: 'PUT',
        url: '/v1/review/1',
        payload: { tags: ['My_OC', read[0]], etag: b.caption.etag },
      });
      assert.equal(again.statusCode, 200, again.body);
      assert.ok(String(await readFile(path.join(data, `b${ext}`))).startsWith(`My OC${sep}`));
      const split = await app.inject({
        method: 'PUT',
        url: '/v1/review/1',
        payload: { tags: [`x${sep.trim()}y`], etag: put.json().etag },
      });
      assert.equal(split.statusCode, 400, split.body);
      assert.match(split.json().error, /would not read back as one tag/);
    } finally {
      await app.close();
    }
  });

test('serve refuses a caption flag its style lacks, as pred does, and a review option without --dataset', async () => {
  const r = await cli('serve', '--model', model, '--dataset', dir, '--remove-underscore', '--port', '0');
  assert.equal(r.code, 2);
  assert.match(r.err.join('\n'), /--remove-underscore only with --caption-style sd-scripts/);
  for (const flag of [
    ['--caption-ext', '.caption'],
    ['--teach-out', 'x.onnx'],
  ]) {
    const alone = await cli('serve', '--model', model, ...flag, '--port', '0');
    assert.equal(alone.code, 2);
    assert.match(
      alone.err.at(-1)!,
      new RegExp(`Expected --dataset with ${flag[0]}: it is an option of the review page`),
    );
  }
});
