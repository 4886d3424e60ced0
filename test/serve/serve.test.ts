// `serve`: the JSON API against `pred` and `vec` on the same images, the WD14 tagger API, every kind of
// bad request (4xx with a JSON error, and the server keeps serving), the bounded queue, the token, a
// graceful stop, and the web page in headless Chromium.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { TaggerModel } from '../../src/model/tagger.js';
import { readVecIndex } from '../../src/outputs/vectors.js';
import type { InjectOptions } from 'fastify';
import { buildServer, type ServeOptions } from '../../src/serve/app.js';
import { cli, solid, tempDir, tinyModel } from '../helpers.js';
import ort from 'onnxruntime-node';
import { emptyRanges, widenRanges } from '../../src/train/export-ranges.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { buildCalibrationGraph } from '../../training/graphs.js';

const dir = await tempDir();
const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'rating:explicit'];
const modelFile = await tinyModel(path.join(dir, 'model.onnx'), TAGS, [0, 0, 0, 4, 9, 9]);
const images = path.join(dir, 'images');
await mkdir(images);
const files: string[] = [];
for (let i = 0; i < 4; i++) {
  files.push(path.join(images, `s${i}.png`));
  await solid(30 + i * 9, 40, [60 * i, 100, 220 - 40 * i])
    .png()
    .toFile(files[i]!);
}
const png = await readFile(files[0]!);
assert.equal(
  (await cli('vec', images, '--model', modelFile, '--kind', 'probs', '--out', path.join(dir, 'vec.npy'))).code,
  0,
);

const OPTS: ServeOptions = {
  name: 'model',
  batch: 4,
  maxWaitMs: 5,
  queue: 64,
  timeoutMs: 10_000,
  bodyLimit: 2 ** 20,
  maxPixels: 1_000_000,
  index: await readVecIndex(path.join(dir, 'vec.npy')),
};
async function server(over: Partial<ServeOptions> = {}): Promise<Awaited<ReturnType<typeof buildServer>>> {
  return buildServer(await TaggerModel.load(modelFile), { ...OPTS, ...over });
}
const app = await server();

test('POST /v1/tag gives the tags and probabilities `pred` gives, grouped by category, with the caption', async () => {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/tag?threshold=0.2&rating=all',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(r.statusCode, 200, r.body);
  const body = r.json();
  const pred = await cli(
    'pred',
    files[0]!,
    '--model',
    modelFile,
    '--format',
    'json',
    '--threshold',
    '0.2',
    '--rating',
    'all',
  );
  const want = JSON.parse(pred.out.join('\n'))[0].tags as { tag: string; prob: number; category: number }[];
  const got = Object.values(body.images[0].tags as Record<string, { tag: string; prob: number }[]>).flat();
  assert.deepEqual(new Map(got.map((t) => [t.tag, t.prob])), new Map(want.map((t) => [t.tag, t.prob])));
  for (const [cat, list] of Object.entries(body.images[0].tags as Record<string, { tag: string }[]>)) {
    for (const t of list)
      assert.equal(cat, { 0: 'general', 4: 'character', 9: 'rating' }[want.find((w) => w.tag === t.tag)!.category]);
  }
  assert.equal(typeof body.images[0].caption, 'string');
});

test('POST /v1/tag with caption-style writes the caption `pred --format caption` writes in that style; a flag the style lacks is a 400 naming it', async () => {
  const folder = path.join(dir, 'serve-style');
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'a.png'), png);
  // The WD layout sd-scripts reads: 4 ratings, then general tags, then characters.
  const wdTags = ['general', 'sensitive', 'questionable', 'explicit', 'red_circle', 'blue_star', 'hero_(series)'];
  const wdModel = await tinyModel(path.join(dir, 'wd-layout.onnx'), wdTags, [9, 9, 9, 9, 0, 0, 4]);
  const wd = await buildServer(await TaggerModel.load(wdModel), OPTS);
  const r = await wd.inject({
    method: 'POST',
    url: '/v1/tag?caption-style=sd-scripts&threshold=0.2&character-first&use-rating-tags',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(r.statusCode, 200, r.body);
  const styleArgs = ['--caption-style', 'sd-scripts', '--threshold', '0.2', '--character-first', '--use-rating-tags'];
  const pred = await cli('pred', folder, '--model', wdModel, '--format', 'caption', ...styleArgs);
  assert.equal(pred.code, 0, pred.err.join('\n'));
  assert.ok(r.json().images[0].caption.length > 0);
  assert.equal(r.json().images[0].caption, (await readFile(path.join(folder, 'a.txt'), 'utf8')).trimEnd());
  const bad = await wd.inject({
    method: 'POST',
    url: '/v1/tag?caption-style=sd-scripts&weighted',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.match(bad.json().error, /Expected weighted only with --caption-style ours or webui/);
  await wd.close();
});

test('multipart: several images and option fields in one request; /v1/vec equals `vec`; /v1/similar finds the image itself', async () => {
  const boundary = 'xYz';
  const part = (name: string, value: string | Buffer, file?: string): Buffer =>
    Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${file}"\r\nContent-Type: image/png` : ''}\r\n\r\n`,
      ),
      Buffer.from(value),
      Buffer.from('\r\n'),
    ]);
  const payload = Buffer.concat([
    part('a', png, 's0.png'),
    part('b', await readFile(files[1]!), 's1.png'),
    part('top', '2'),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  const r = await app.inject({
    method: 'POST',
    url: '/v1/tag',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload,
  });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(
    r.json().images.map((i: { name: string }) => i.name),
    ['s0.png', 's1.png'],
  );
  assert.ok(
    r.json().images.every((i: { tags: Record<string, unknown[]> }) => Object.values(i.tags).flat().length === 2),
  );
  const vec = await app.inject({
    method: 'POST',
    url: '/v1/vec?kind=probs',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  const { meta, index } = OPTS.index!;
  const row = meta.files.indexOf(files[0]!);
  assert.deepEqual(vec.json().images[0].vector, Array.from(index.data.subarray(row * 6, row * 6 + 6)));
  const sim = await app.inject({
    method: 'POST',
    url: '/v1/similar?k=2',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(sim.json().neighbours[0].file, files[0]);
  const thumb = await app.inject({ method: 'GET', url: sim.json().neighbours[0].image });
  assert.equal(thumb.headers['content-type'], 'image/jpeg');
});

test('the WD14 tagger API: interrogators, and interrogate answering ratings and tags in one caption object', async () => {
  assert.deepEqual((await app.inject({ method: 'GET', url: '/tagger/v1/interrogators' })).json(), {
    models: ['model'],
  });
  const r = await app.inject({
    method: 'POST',
    url: '/tagger/v1/interrogate',
    payload: { image: png.toString('base64'), model: 'model', threshold: 0.3 },
  });
  assert.equal(r.statusCode, 200, r.body);
  const caption = r.json().caption as Record<string, number>;
  const { probs } = await (
    await TaggerModel.load(modelFile)
  ).run(
    await (
      await import('../../src/data/images.js')
    ).preprocessImage(png, 'x', { size: 32, pad: 'center', maxPixels: 1e8 }),
    1,
  );
  const want = Object.fromEntries(
    TAGS.map((t, j) => [t, probs[j]!]).filter(([t, p]) => (t as string).startsWith('rating:') || (p as number) >= 0.3),
  );
  assert.deepEqual(caption, want);
});

test('every bad request gets a 4xx JSON error naming the problem, and the server keeps serving', async () => {
  const truncated = png.subarray(0, png.length >> 1);
  const bomb = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#fff' } })
    .png()
    .toBuffer();
  const cases: [string, InjectOptions, number, RegExp][] = [
    [
      'zero bytes',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: Buffer.alloc(0) },
      400,
      /empty body/,
    ],
    [
      'a truncated image',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: truncated },
      400,
      /Expected a readable image for the image but it is (truncated|not-an-image)/,
    ],
    [
      'not an image',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/jpeg' }, payload: Buffer.from('hello') },
      415,
      /bytes \(or a video\) for the image but they are of an unknown format \(first bytes 68 65 6c 6c 6f\)/,
    ],
    [
      'a decompression bomb',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: bomb },
      413,
      /Expected an image of at most 1000000 pixels/,
    ],
    [
      'a wrong content type',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'text/plain' }, payload: 'x' },
      415,
      /Expected an image \(image\/\*, not SVG\), a video \(video\/\*\), multipart\/form-data or JSON body but received "text\/plain"/,
    ],
    [
      'a body over the limit',
      { method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: Buffer.alloc(2 ** 20 + 10) },
      413,
      /./,
    ],
    [
      'malformed JSON',
      {
        method: 'POST',
        url: '/tagger/v1/interrogate',
        headers: { 'content-type': 'application/json' },
        payload: '{"image": ',
      },
      400,
      /./,
    ],
    [
      'malformed base64',
      { method: 'POST', url: '/tagger/v1/interrogate', payload: { image: '!!!not base64!!!' } },
      400,
      /Expected "image" to be base64/,
    ],
    [
      'an unknown model',
      { method: 'POST', url: '/tagger/v1/interrogate', payload: { image: png.toString('base64'), model: 'other' } },
      404,
      /Expected model "model"/,
    ],
    [
      'a bad option',
      { method: 'POST', url: '/v1/tag?threshold=high', headers: { 'content-type': 'image/png' }, payload: png },
      400,
      /Expected a number for threshold but received "high"/,
    ],
    ['an unknown route', { method: 'GET', url: '/v2/nothing' }, 404, /No route GET \/v2\/nothing/],
  ];
  for (const [what, req, status, message] of cases) {
    const r = await app.inject(req);
    assert.equal(r.statusCode, status, `${what}: ${r.body}`);
    assert.match(r.json().error, message, what);
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/tag',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    assert.equal(ok.statusCode, 200, `still serving after ${what}`);
  }
});

test('a full queue answers 503 with Retry-After and recovers; a token is required when set', async () => {
  const small = await server({ queue: 2, batch: 64, maxWaitMs: 300 });
  const replies = await Promise.all(
    Array.from({ length: 12 }, () =>
      small.inject({ method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: png }),
    ),
  );
  const codes = replies.map((r) => r.statusCode);
  assert.ok(codes.includes(503) && codes.includes(200), `codes ${codes}`);
  assert.equal(replies.find((r) => r.statusCode === 503)!.headers['retry-after'], '1');
  assert.equal(
    (await small.inject({ method: 'POST', url: '/v1/tag', headers: { 'content-type': 'image/png' }, payload: png }))
      .statusCode,
    200,
    'recovers',
  );
  const locked = await server({ token: 's3cret' });
  assert.equal((await locked.inject({ method: 'GET', url: '/v1/model' })).statusCode, 401);
  assert.equal(
    (await locked.inject({ method: 'GET', url: '/v1/model', headers: { authorization: 'Bearer s3cret' } })).statusCode,
    200,
  );
  // The page holds no model output: it loads without the token and asks for it; the API takes the token
  // only in the Authorization header, never in the URL (where logs and history keep it).
  assert.equal((await locked.inject({ method: 'GET', url: '/' })).statusCode, 200);
  assert.equal((await locked.inject({ method: 'GET', url: '/page.js' })).statusCode, 200);
  assert.equal((await locked.inject({ method: 'GET', url: '/v1/model?token=s3cret' })).statusCode, 401);
  const open = await cli('serve', '--model', modelFile, '--host', '0.0.0.0');
  assert.equal(open.code, 2);
  assert.match(open.err.at(-1)!, /Expected --token to bind 0\.0\.0\.0/);
});

test('SIGTERM: no new requests, the one in flight finishes, exit 0', async () => {
  const child = spawn(
    process.execPath,
    ['dist/src/cli/main.js', 'serve', '--model', modelFile, '--port', '0', '--max-wait-ms', '1500'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const url = await new Promise<string>((resolve) =>
    child.stderr.on(
      'data',
      (d) => ((err += d), /on (http:\/\/\S+);/.test(err) && resolve(/on (http:\/\/\S+);/.exec(err)![1]!)),
    ),
  );
  const inflight = fetch(`${url}/v1/tag`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
  // Stop only once the request is inside the server (it waits in the batcher: max-wait 800 ms).
  for (let i = 0; i < 200 && (await (await fetch(`${url}/healthz`)).json()).queued === 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGTERM');
  const res = await inflight;
  assert.equal(res.status, 200);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 0, err);
  assert.match(err, /serve: stopping: no new requests; finishing those in flight\nserve: stopped/);
});

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((f) => existsSync(f));
test(
  "the page: upload an image, its tags equal `pred`'s at the page's thresholds; screenshot",
  { skip: CHROMIUM ? false : 'no chromium on this machine (apt-get install chromium)' },
  async (t) => {
    const live = await server();
    const address = await live.listen({ host: '127.0.0.1', port: 0 });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
      await page.goto(address);
      await page.setInputFiles('#file', files[2]!);
      await page.waitForSelector('.result[data-done]');
      const shown = await page.$$eval('.tag', (els) =>
        els.map((e) => [(e as HTMLElement).dataset.tag!, Number((e as HTMLElement).dataset.prob)] as [string, number]),
      );
      const pred = await cli(
        'pred',
        files[2]!,
        '--model',
        modelFile,
        '--format',
        'json',
        '--threshold',
        '0.35',
        '--character-threshold',
        '0.85',
        '--rating',
        'all',
      );
      const want = (JSON.parse(pred.out.join('\n'))[0].tags as { tag: string; prob: number }[]).map(
        (x): [string, number] => [x.tag, x.prob],
      );
      assert.deepEqual(new Map(shown), new Map(want));
      await page.fill('#threshold', '0');
      await page.dispatchEvent('#threshold', 'input');
      assert.ok(
        (await page.$$('.tag')).length > shown.length || shown.length === TAGS.length,
        'the slider re-filters without a new request',
      );
      await page.screenshot({ path: path.join(dir, 'page.png') });
      t.diagnostic(`screenshot: ${path.join(dir, 'page.png')}`);
    } finally {
      await browser.close();
      await live.close();
    }
  },
);

test(
  'the page runs no markup from a model: a tag named <img onerror=…> shows as text; CSP sent; the token comes from the fragment',
  { skip: CHROMIUM ? false : 'no chromium on this machine (apt-get install chromium)' },
  async () => {
    const evil = ['<img src=x onerror="window.pwned=1">', '"><script>window.pwned=2</script>', 'ok', 'b', 'c', 'd'];
    const file = await tinyModel(path.join(dir, 'evil.onnx'), evil, [0, 0, 0, 4, 9, 9]);
    const live = await buildServer(await TaggerModel.load(file), { ...OPTS, index: undefined, token: 't0k' });
    const address = await live.listen({ host: '127.0.0.1', port: 0 });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const res = await page.goto(`${address}/#token=t0k`);
      assert.match(res!.headers()['content-security-policy'] ?? '', /default-src 'self'/);
      await page.setInputFiles('#file', files[1]!);
      await page.fill('#threshold', '0');
      await page.waitForSelector('.result[data-done]');
      await page.dispatchEvent('#threshold', 'input');
      const names = await page.$$eval('.tag .name', (els) => els.map((e) => e.textContent));
      assert.ok(names.includes(evil[0]!) && names.includes(evil[1]!), `${names}`);
      assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
      assert.equal(await page.$$eval('.result img:not(.preview)', (els) => els.length), 0, 'no <img> from a tag');
    } finally {
      await browser.close();
      await live.close();
    }
  },
);

test('an int8 export serves like any model: /v1/model says int8, /v1/tag equals `pred` with it', async () => {
  const config = gradcheckConfig({ tags: TAGS.length, hidden: 12 });
  const params = randomParams(config, 3);
  const ranges = emptyRanges();
  const cal = await ort.InferenceSession.create(buildCalibrationGraph(config, params).encode());
  widenRanges(
    ranges,
    await cal.run({ image: new ort.Tensor('uint8', randomBatch(config, 4, 1).images, [4, 32, 32, 3]) }),
  );
  await cal.release();
  const file = path.join(dir, 'int8.onnx');
  await writeFile(
    file,
    encodeInferenceModel(config, params, {
      tags: TAGS,
      categories: [0, 0, 0, 4, 9, 9],
      pad: 'center',
      source: 'test',
      int8: { ranges, images: 4, from: 'test' },
    }),
  );
  const q8 = await buildServer(await TaggerModel.load(file), OPTS);
  try {
    assert.equal((await q8.inject({ method: 'GET', url: '/v1/model' })).json().precision, 'int8');
    assert.equal((await app.inject({ method: 'GET', url: '/v1/model' })).json().precision, 'fp32');
    const r = await q8.inject({
      method: 'POST',
      url: '/v1/tag?threshold=0.2&rating=all',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    assert.equal(r.statusCode, 200, r.body);
    const pred = await cli(
      'pred',
      files[0]!,
      '--model',
      file,
      '--format',
      'json',
      '--threshold',
      '0.2',
      '--rating',
      'all',
    );
    const want = JSON.parse(pred.out.join('\n'))[0].tags as { tag: string; prob: number }[];
    const got = Object.values(r.json().images[0].tags as Record<string, { tag: string; prob: number }[]>).flat();
    assert.ok(want.length > 0);
    assert.deepEqual(new Map(got.map((t) => [t.tag, t.prob])), new Map(want.map((t) => [t.tag, t.prob])));
  } finally {
    await q8.close();
  }
});
