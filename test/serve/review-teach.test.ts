// The review page's Teach (issue 42, item 3), over the API: a run in the background with its progress,
// the taught tags' holdout AP, the merged model saved beside the images and downloadable, the served
// model swapped for it (a held-back image then tagged with a taught tag), and a second run whose "AP
// of the model served before" is the first merged model's, recomputed here from pred's own scores on
// the holdout images.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isHoldout } from '../../src/data/shards.js';
import { averagePrecision } from '../../src/metrics/metrics.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { captionFormat } from '../../src/review/caption-format.js';
import { ReviewSet } from '../../src/review/review-set.js';
import { TeachJob, type TeachStatus } from '../../src/review/teach-job.js';
import { buildServer } from '../../src/serve/app.js';
import { TEACH_DEFAULTS } from '../../src/teach/teach.js';
import { cli, cliSteps, tempDir } from '../helpers.js';
import { writeBaseTagger } from '../teach/base-tagger.js';

const root = await tempDir();
const data = path.join(root, 'data');
await cliSteps(['synth', '--out', data, '--count', '200', '--seed', '31']);
// One image with a circle held back from the dataset, for the merged model to tag.
const held = path.join(root, 'held');
await mkdir(held);
/** Each image, by its path under `root`, and its caption. */
const captions = new Map<string, string>();
for (const f of (await readdir(path.join(data, '000'))).filter((f) => !f.endsWith('.txt')))
  captions.set(`data/000/${f}`, await readFile(path.join(data, '000', f.replace(/\.\w+$/, '.txt')), 'utf8'));
const [heldName] = [...captions].find(([n, c]) => n.endsWith('.jpg') && /\bcircle\b/.test(c))!;
captions.delete(heldName);
await rename(path.join(root, heldName), path.join(held, 'held.jpg'));
await rename(path.join(root, heldName.replace(/\.jpg$/, '.txt')), path.join(held, 'held.txt'));
const wd = await writeBaseTagger(path.join(root, 'wd'));

export async function untilDone(get: () => Promise<TeachStatus>): Promise<TeachStatus> {
  for (;;) {
    const s = await get();
    if (s.state !== 'running') return s;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function reviewServer(dataset: string, base: string, token?: string) {
  const set = await ReviewSet.open(dataset, captionFormat({}));
  const teach = new TeachJob({
    set,
    base: { model: base, load: {} },
    out: path.join(set.dir, 'alt-i2v-taught.onnx'),
    modelBatch: 8,
    threads: 1,
  });
  return buildServer(await TaggerModel.load(base), {
    name: 'wd',
    batch: 8,
    maxWaitMs: 2,
    queue: 256,
    timeoutMs: 30_000,
    bodyLimit: 2 ** 26,
    maxPixels: 1e7,
    dataset: set,
    teach,
    token,
  });
}

test('teach from the review: progress, holdout AP, the merged model saved and downloadable, swapped in, compared on the next run', async () => {
  const app = await reviewServer(data, wd.file);
  const status = async (): Promise<TeachStatus> => (await app.inject({ url: '/v1/review/teach' })).json();
  assert.equal((await status()).state, 'idle');
  assert.equal((await app.inject({ method: 'POST', url: '/v1/review/teach/swap' })).statusCode, 409);
  const start = await app.inject({ method: 'POST', url: '/v1/review/teach', payload: {} });
  assert.equal(start.statusCode, 202, start.body);
  assert.equal(start.json().state, 'running');
  const busy = await app.inject({ method: 'POST', url: '/v1/review/teach', payload: {} });
  assert.equal(busy.statusCode, 409);
  const phases = new Set<string>();
  const first = await untilDone(async () => {
    const s = await status();
    if (s.phase) phases.add(s.phase);
    return s;
  });
  assert.equal(first.state, 'done', first.error ?? '');
  assert.ok(phases.has('embedding') || phases.has('training'), [...phases].join());
  const circle = first.result!.tags.find((t) => t.tag === 'circle')!;
  assert.ok(circle.ap! > 0.5, JSON.stringify(circle));
  assert.equal(circle.previousAp, null); // the base lacks it
  assert.equal(circle.inPrevious, false);
  const out = path.join(data, 'alt-i2v-taught.onnx');
  assert.equal(first.result!.model, out);
  const file = await app.inject({ url: '/v1/review/teach/files/model' });
  assert.equal(file.statusCode, 200);
  assert.deepEqual(file.rawPayload, await readFile(out));
  assert.match(String(file.headers['content-disposition']), /attachment; filename="alt-i2v-taught.onnx"/);
  const tags = await app.inject({ url: '/v1/review/teach/files/tags' });
  assert.match(tags.body, /^\d+,circle,/m);
  assert.equal((await app.inject({ url: '/v1/review/teach/files/..%2Fx' })).statusCode, 404);

  const firstModel = path.join(root, 'first.onnx'); // the next run writes over `out`
  await copyFile(out, firstModel);
  const swap = await app.inject({ method: 'POST', url: '/v1/review/teach/swap' });
  assert.equal(swap.statusCode, 200, swap.body);
  assert.ok((await app.inject({ url: '/v1/model' })).json().tags.some((t: { tag: string }) => t.tag === 'circle'));
  const tagged = await app.inject({
    method: 'POST',
    url: '/v1/tag?threshold=0.01&rating=all',
    headers: { 'content-type': 'image/jpeg' },
    payload: await readFile(path.join(held, 'held.jpg')),
  });
  const probs = new Map(
    Object.values(tagged.json().images[0].tags as Record<string, { tag: string; prob: number }[]>)
      .flat()
      .map((t) => [t.tag, t.prob]),
  );
  assert.ok((probs.get('circle') ?? 0) > 0.5, JSON.stringify([...probs]));

  // A second run compares with the model served now: the first merged model, scored here by pred.
  await app.inject({ method: 'POST', url: '/v1/review/teach', payload: { tags: ['circle', 'square'] } });
  const second = await untilDone(status);
  assert.equal(second.state, 'done', second.error ?? '');
  assert.deepEqual(second.result!.tags.map((t) => t.tag).sort(), ['circle', 'square']);
  const holdout = [...captions.keys()].filter((n) => isHoldout(path.relative('data', n), TEACH_DEFAULTS.holdout));
  const r = await cli(
    'pred',
    ...holdout.map((n) => path.join(root, n)),
    '--model',
    firstModel,
    '--format',
    'json',
    '--threshold',
    '0',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const rows = JSON.parse(r.out.join('\n')) as { file: string; tags: { tag: string; prob: number }[] }[];
  for (const tag of ['circle', 'square']) {
    const scores = rows.map((x) => x.tags.find((t) => t.tag === tag)?.prob ?? 0);
    const labels = rows.map((x) => {
      const n = path.relative(root, x.file);
      // synth's captions: commas, or booru style (tags apart by spaces)
      const c = captions.get(n)!;
      const have = c.includes(',') ? c.split(',').map((t) => t.trim().replace(/ +/g, '_')) : c.trim().split(/\s+/);
      return have.includes(tag) ? 1 : 0;
    });
    const want = averagePrecision(scores, labels);
    const got = second.result!.tags.find((t) => t.tag === tag)!.previousAp;
    assert.equal(second.result!.tags.find((t) => t.tag === tag)!.inPrevious, true);
    assert.ok(want !== null && got !== null && Math.abs(got - want) < 1e-6, `${tag}: ${got} vs ${want}`);
    // …and the first run's own holdout AP (its head alone on the stored embeddings) is the same figure.
    if (tag === 'circle') assert.ok(Math.abs(circle.ap! - want!) < 1e-6, `${circle.ap} vs ${want}`);
  }
  // Served with only square of the two: circle (new to the base) is then not in the model, nor its files.
  const wrong = await app.inject({ method: 'POST', url: '/v1/review/teach/swap', payload: { tags: ['nope'] } });
  assert.equal(wrong.statusCode, 400);
  assert.match(wrong.json().error, /"nope" is not one/);
  const some = await app.inject({ method: 'POST', url: '/v1/review/teach/swap', payload: { tags: ['square'] } });
  assert.equal(some.statusCode, 200, some.body);
  assert.deepEqual(some.json().taught, ['square']);
  const served = (await app.inject({ url: '/v1/model' })).json().tags.map((t: { tag: string }) => t.tag);
  assert.ok(served.includes('square') && !served.includes('circle'));
  assert.doesNotMatch((await app.inject({ url: '/v1/review/teach/files/tags' })).body, /,circle,/);
  assert.deepEqual((await status()).result!.kept, ['square']);
  await app.close();
});

test('a teach run that cannot teach fails with its reason on the status, and the server goes on', async () => {
  const lone = path.join(root, 'lone');
  await mkdir(lone);
  await copyFile(path.join(held, 'held.jpg'), path.join(lone, 'a.jpg'));
  const app = await reviewServer(lone, wd.file);
  const start = await app.inject({ method: 'POST', url: '/v1/review/teach', payload: { tags: 'circle' } });
  assert.equal(start.statusCode, 400);
  await app.inject({ method: 'POST', url: '/v1/review/teach', payload: {} });
  const s = await untilDone(async () => (await app.inject({ url: '/v1/review/teach' })).json());
  assert.equal(s.state, 'failed');
  assert.match(s.error!, /Expected tags to teach/);
  assert.equal((await app.inject({ url: '/v1/review/0' })).statusCode, 200);
  await app.close();
});

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((f) => existsSync(f));
test(
  "the review page's Teach in Chromium: progress, the taught tags' AP shown, the model swapped in, a held-back image tagged",
  { skip: CHROMIUM ? false : 'no chromium on this machine (apt-get install chromium)' },
  async () => {
    const page2 = path.join(root, 'page-data');
    await cliSteps(['synth', '--out', page2, '--count', '200', '--seed', '31']);
    await rm(path.join(page2, heldName.replace(/^data\//, '')));
    const app = await reviewServer(page2, wd.file, 't0k');
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${address}/review#token=t0k`);
      await page.waitForSelector('#teach:not([hidden])');
      await page.click('#teach-start');
      await page.waitForSelector('#teach-result tr[data-tag="circle"]', { timeout: 60_000 });
      const cells = await page.$$eval('#teach-result tr[data-tag="circle"] td', (tds) => tds.map((t) => t.textContent));
      const status = (await (
        await fetch(`${address}/v1/review/teach`, { headers: { authorization: 'Bearer t0k' } })
      ).json()) as TeachStatus;
      const circle = status.result!.tags.find((t) => t.tag === 'circle')!;
      // new to the served model: ticked to serve
      assert.ok(await page.isChecked('#teach-result tr[data-tag="circle"] input'));
      assert.deepEqual(cells, [
        '',
        'circle',
        String(circle.positives),
        circle.ap!.toFixed(3),
        'new',
        circle.f1!.toFixed(3),
      ]);
      // One other taught tag unticked: the served model is written without it.
      const other = status.result!.tags.find((t) => t.tag !== 'circle')!.tag;
      await page.setChecked(`#teach-result tr[data-tag="${other}"] input`, false);
      await page.click('#teach-swap');
      await page.waitForSelector('#status:text("now serving alt-i2v-taught.onnx")');
      assert.ok(await page.$('#teach-swap[hidden]'));
      const after = (await (
        await fetch(`${address}/v1/review/teach`, { headers: { authorization: 'Bearer t0k' } })
      ).json()) as TeachStatus;
      assert.ok(after.result!.kept.includes('circle') && !after.result!.kept.includes(other), other);
      assert.ok(await page.isDisabled('#teach-result tr[data-tag="circle"] input'));
      const held64 = (await readFile(path.join(held, 'held.jpg'))).toString('base64');
      const prob = await page.evaluate(async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const token = sessionStorage.getItem('token') ?? '';
        const res = await fetch('/v1/tag?threshold=0.01', {
          method: 'POST',
          headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${token}` },
          body: bytes,
        });
        const tags = Object.values((await res.json()).images[0].tags).flat() as { tag: string; prob: number }[];
        return tags.find((t) => t.tag === 'circle')?.prob ?? 0;
      }, held64);
      assert.ok(prob > 0.5, String(prob));
    } finally {
      await browser.close();
      await app.close();
    }
  },
);
