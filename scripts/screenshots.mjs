// `npm run screenshots`: docs/review.png, the review page (`serve --dataset`) on synth images with a tiny
// model trained for it, and docs/review-teach.png, its Teach panel after a round, in headless Chromium
// (apt-get install chromium). Run after `npm run build`.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../dist/src/cli/index.js';
import { TaggerModel } from '../dist/src/model/tagger.js';
import { ReviewSet } from '../dist/src/review/review-set.js';
import { captionFormat } from '../dist/src/review/caption-format.js';
import { TeachJob } from '../dist/src/review/teach-job.js';
import { buildServer } from '../dist/src/serve/app.js';

const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((f) => existsSync(f));
if (!chromiumPath) throw new Error('screenshots: no chromium (apt-get install chromium)');
const dir = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-shots-'));
const quiet = { out: () => undefined, err: () => undefined, tty: false };
const cli = async (...argv) => {
  if ((await runCli(argv, quiet)) !== 0) throw new Error(`alt-i2v-ort ${argv.join(' ')} failed`);
};
try {
  await cli('synth', '--out', `${dir}/train`, '--count', '400', '--seed', '5');
  await cli('tags', `${dir}/train`, '--out', `${dir}/tags.csv`, '--min-count', '10');
  await cli(
    'pairs',
    `${dir}/train`,
    '--tags',
    `${dir}/tags.csv`,
    '--out',
    `${dir}/shards`,
    '--size',
    '64',
    '--holdout',
    '0.1',
  );
  await cli(
    'train',
    `${dir}/shards`,
    '--out',
    `${dir}/run`,
    '--backbone',
    'vgg16-tiny',
    '--hidden',
    '64',
    '--rounds',
    '25',
  );
  await cli('export', `${dir}/run`, '--out', `${dir}/model.onnx`);
  await cli('synth', '--out', `${dir}/review`, '--count', '150', '--seed', '9');
  const set = await ReviewSet.open(`${dir}/review`, captionFormat({}));
  const teach = new TeachJob({
    set,
    base: { model: `${dir}/model.onnx`, load: {} },
    out: `${dir}/review/alt-i2v-taught.onnx`,
    modelBatch: 8,
    threads: 2,
  });
  const app = await buildServer(await TaggerModel.load(`${dir}/model.onnx`), {
    name: 'model',
    batch: 8,
    maxWaitMs: 5,
    queue: 64,
    timeoutMs: 30_000,
    bodyLimit: 2 ** 24,
    maxPixels: 40_000_000,
    dataset: set,
    teach,
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    await page.goto(`${address}/review`);
    await page.waitForSelector('#tags li');
    await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.getAttribute('src')));
    await page.keyboard.press('ArrowDown');
    await page.screenshot({ path: path.join('docs', 'review.png') });
    console.log('wrote docs/review.png');
    // The tags the tiny model was not trained on (fewer than 10 images) are what Teach has to learn.
    await page.click('#teach-start');
    await page.waitForSelector('#teach-result tbody tr', { timeout: 600_000 });
    await page.locator('#teach').screenshot({ path: path.join('docs', 'review-teach.png') });
    console.log('wrote docs/review-teach.png');
  } finally {
    await browser.close();
    await app.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
