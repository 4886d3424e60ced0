// `gallery` opened in a real browser (Debian's headless Chromium driven by playwright-core): every
// image renders, every card lists the tags `pred` gives at the threshold, marked against the true tags.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((f) => existsSync(f));
const dir = await tempDir();
const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'a<b&"c"'];
const model = await tinyModel(path.join(dir, 'model.onnx'), TAGS, [0, 0, 0, 0, 9, 0]);
const images = path.join(dir, 'images');
await mkdir(images);
for (let i = 0; i < 5; i++) {
  await solid(30 + i * 7, 40, [40 * i, 120, 200])
    .png()
    .toFile(path.join(images, `g${i}.png`));
  if (i < 4)
    await writeFile(path.join(images, `g${i}.txt`), i % 2 ? 'red_circle, white background' : 'blue_star two_shapes');
}

test(
  'the gallery renders every image and the predicted tags of `pred`, marked against the true tags',
  { skip: CHROMIUM ? false : 'no chromium on this machine (apt-get install chromium)' },
  async (t) => {
    const out = path.join(dir, 'gallery.html');
    const threshold = 0.3;
    const r = await cli('gallery', images, '--model', model, '--out', out, '--threshold', String(threshold));
    assert.equal(r.code, 0, r.err.join('\n'));
    const pred = await cli(
      'pred',
      images,
      '--model',
      model,
      '--format',
      'json',
      '--threshold',
      String(threshold),
      '--rating',
      'all',
    );
    const expected = new Map(
      (JSON.parse(pred.out.join('\n')) as { file: string; tags: { tag: string }[] }[]).map((x) => [
        path.basename(x.file),
        x.tags.map((s) => s.tag),
      ]),
    );
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${out}`);
      const cards = await page.$$eval('figure', (figs) =>
        figs.map((f) => ({
          name: f.querySelector('figcaption')!.textContent!,
          loaded:
            (f.querySelector('img') as HTMLImageElement).complete &&
            (f.querySelector('img') as HTMLImageElement).naturalWidth > 0,
          tags: [...f.querySelectorAll('li')].map((li) => ({
            tag: li.querySelector('.tag')!.textContent!,
            cls: li.className,
          })),
        })),
      );
      assert.equal(cards.length, 5);
      for (const card of cards) {
        assert.ok(card.loaded, `${card.name}: image rendered`);
        const shown = card.tags.filter((x) => x.cls !== 'missed').map((x) => x.tag);
        assert.deepEqual(shown, expected.get(card.name), `${card.name}: the tags pred gives`);
        const truth =
          card.name === 'g4.png'
            ? null
            : Number(card.name[1]) % 2
              ? ['red_circle', 'white_background']
              : ['blue_star', 'two_shapes'];
        for (const x of card.tags) {
          const want =
            truth === null ? 'pred' : truth.includes(x.tag) ? (shown.includes(x.tag) ? 'correct' : 'missed') : 'wrong';
          assert.equal(x.cls, want, `${card.name} ${x.tag}`);
        }
      }
      assert.ok(await page.$eval('h1', (h) => h.textContent!.includes('5 images')));
      await page.screenshot({ path: path.join(dir, 'gallery.png'), fullPage: true });
      t.diagnostic(`screenshot: ${path.join(dir, 'gallery.png')}`);
    } finally {
      await browser.close();
    }
  },
);
