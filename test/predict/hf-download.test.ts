// Downloads into the Hugging Face cache from a local server that speaks the hub's file endpoints as
// huggingface.co does: GET /OWNER/REPO/resolve/REVISION/FILE answers small files itself (ETag = git
// blob SHA-1, X-Repo-Commit) and redirects LFS files to storage on another origin with X-Linked-Etag
// (SHA-256) and X-Linked-Size on the redirect; the storage's own ETag is something else, and it refuses
// a request that carries the token. Never the internet.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { cli, tempDir } from '../helpers.js';
import { wdStandIn } from './stand-ins.js';

const dir = await tempDir();
const COMMIT = 'c'.repeat(39) + '7';
const MODEL = Buffer.from(wdStandIn());
const TAGS = Buffer.from('tag_id,name,category,count\n0,general,9,1\n1,1girl,0,1\n2,hatsune_miku,4,1\n');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** Repos the server knows: each is the two files of a WD tagger; `private` needs the token, `broken`
 * sends one byte changed, `evil` sends an ETag that is a path. */
const REPOS = ['Owner/wd', 'Owner/twice', 'Owner/private', 'Owner/broken', 'Owner/evil', 'Owner/nomodel'];
const TOKEN = 'hf_testtoken';
const log: string[] = [];
let storageGets = 0;

function answer(req: IncomingMessage, res: ServerResponse, body: Buffer, headers: Record<string, string>): void {
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (range) {
    const [a, b] = [Number(range[1]), Math.min(Number(range[2]), body.length - 1)];
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${a}-${b}/${body.length}` });
    res.end(body.subarray(a, b + 1));
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': String(body.length) });
  res.end(body);
}

const logged = (req: IncomingMessage): URL => {
  const url = new URL(req.url!, 'http://x');
  log.push(`${req.method} ${url.pathname}${req.headers.range ? ` ${req.headers.range}` : ''}`);
  return url;
};

/** The storage the hub redirects LFS files to: another origin, which must never see the token. */
const storage = createServer((req, res) => {
  const url = logged(req);
  if (/^\/storage\/[0-9a-f]{64}$/.test(url.pathname)) {
    if (req.headers.authorization) {
      res.writeHead(400).end();
      return;
    }
    if (!req.headers.range) storageGets++;
    const broken = url.searchParams.has('broken');
    const body = Buffer.from(MODEL);
    if (broken) body[body.length - 1]! ^= 1;
    // Slow enough that a second download meets the first one's lock.
    setTimeout(() => answer(req, res, body, { ETag: '"storage-etag-1"' }), req.headers.range ? 0 : 300);
  } else res.writeHead(404).end();
});

const server = createServer((req, res) => {
  const url = logged(req);
  const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const repo = m?.[1] ?? '';
  if (!m || !REPOS.includes(repo) || !['main', COMMIT].includes(m[2]!)) {
    res.writeHead(404, { 'X-Error-Code': 'RepoNotFound' }).end();
    return;
  }
  if (repo === 'Owner/private' && req.headers.authorization !== `Bearer ${TOKEN}`) {
    res.writeHead(401, { 'X-Error-Code': 'GatedRepo' }).end();
    return;
  }
  const file = m[3]!;
  const hub = { 'X-Repo-Commit': COMMIT };
  if (file === 'model.onnx' && repo !== 'Owner/nomodel') {
    const etag = repo === 'Owner/evil' ? '../../../../escaped' : sha256(MODEL);
    res.writeHead(302, {
      ...hub,
      Location: `${storageUrl}/storage/${sha256(MODEL)}${repo === 'Owner/broken' ? '?broken' : ''}`,
      ETag: `"${gitSha1(Buffer.from('pointer'))}"`,
      'X-Linked-Etag': `"${etag}"`,
      'X-Linked-Size': String(MODEL.length),
    });
    res.end();
  } else if (file === 'selected_tags.csv') answer(req, res, TAGS, { ...hub, ETag: `"${gitSha1(TAGS)}"` });
  else res.writeHead(404, { ...hub, 'X-Error-Code': 'EntryNotFound' }).end();
});
async function listen(s: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}
const endpoint = await listen(server);
const storageUrl = await listen(storage);
const closed = createServer();
const nobody = await listen(closed);
await new Promise((resolve) => closed.close(resolve));

const img = path.join(dir, 'a.png');
await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 10, b: 90 } } })
  .png()
  .toFile(img);
const cache = path.join(dir, 'hub');
const KEYS = ['HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_TOKEN', 'HF_HUB_OFFLINE'] as const;
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
after(() => {
  for (const k of KEYS) if (saved[k] === undefined) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)));
  server.close();
  storage.close();
});

async function pred(ref: string, env: Partial<Record<(typeof KEYS)[number], string>> = {}): ReturnType<typeof cli> {
  for (const k of KEYS) delete process.env[k];
  Object.assign(process.env, { HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint }, env);
  return cli('pred', img, '--model', ref, '--format', 'json', '--threshold', '0');
}

const tagsOf = (out: string[]): string[] =>
  (JSON.parse(out.join('\n')) as { tags: { tag: string }[] }[])[0]!.tags.map((t) => t.tag).sort();

test("a model the cache lacks is downloaded with its tags file into huggingface_hub's layout; the next run asks nothing", async () => {
  const r = await pred('hf:Owner/wd');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(tagsOf(r.out), ['1girl', 'general', 'hatsune_miku']);
  const repoDir = path.join(cache, 'models--Owner--wd');
  assert.equal(await readFile(path.join(repoDir, 'refs', 'main'), 'utf8'), COMMIT);
  const snap = path.join(repoDir, 'snapshots', COMMIT);
  assert.equal(await readlink(path.join(snap, 'model.onnx')), `../../blobs/${sha256(MODEL)}`);
  assert.equal(await readlink(path.join(snap, 'selected_tags.csv')), `../../blobs/${gitSha1(TAGS)}`);
  assert.deepEqual(await readFile(path.join(snap, 'model.onnx')), MODEL);
  assert.deepEqual((await readdir(path.join(repoDir, 'blobs'))).sort(), [gitSha1(TAGS), sha256(MODEL)].sort());
  const asked = log.length;
  const again = await pred('hf:Owner/wd');
  assert.equal(again.code, 0, again.err.join('\n'));
  assert.equal(log.length, asked, `the second run asked ${log.slice(asked).join(', ')}`);
});

test('two runs that need one file at once: the second waits for the first one’s download, the bytes come once', async () => {
  const before = storageGets;
  const [a, b] = await Promise.all([pred('hf:Owner/twice'), pred('hf:Owner/twice')]);
  assert.equal(a.code, 0, a.err.join('\n'));
  assert.equal(b.code, 0, b.err.join('\n'));
  assert.equal(storageGets - before, 1);
  assert.match([...a.err, ...b.err].join('\n'), /waiting for download model\.onnx \(pid \d+/);
});

test('HF_TOKEN: a private repo needs it, a refused or malformed one is one line', async () => {
  const cases: [Record<string, string>, number, RegExp | undefined][] = [
    [
      {},
      2,
      /Expected model\.onnx of Owner\/private@main from http.* but the repository is private or gated: set HF_TOKEN/,
    ],
    [{ HF_TOKEN: 'hf_wrong' }, 2, /the hub refuses the token in HF_TOKEN \(401\)/],
    [{ HF_TOKEN: 'token with spaces' }, 2, /Expected a Hugging Face access token \(hf_…\) in HF_TOKEN/],
    [{ HF_TOKEN: TOKEN }, 0, undefined],
  ];
  for (const [env, code, message] of cases) {
    const r = await pred('hf:Owner/private', env);
    assert.equal(r.code, code, `${JSON.stringify(env)}: ${r.err.join('\n')}`);
    if (message) {
      assert.equal(r.err.length, 1, r.err.join('\n'));
      assert.match(r.err[0]!, message);
    }
  }
});

test('bytes that do not hash to the ETag, an ETag that is a path, a missing file, no hub, offline: one line, nothing placed', async () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['hf:Owner/broken', {}, /to hash to its ETag [0-9a-f]{64} but it hashes to [0-9a-f]{64}: nothing was placed/],
    ['hf:Owner/evil', {}, /Expected the ETag of model\.onnx .* to be a SHA-1 or SHA-256 \(hex\) but it is ".*escaped"/],
    [
      'hf:Owner/nomodel',
      {},
      /Expected model\.onnx in Owner\/nomodel at revision main on .* but the repository has no such file/,
    ],
    ['hf:Owner/unknown', {}, /there is no such repository or revision \(404\)/],
    [
      'hf:Owner/wd2',
      { HF_ENDPOINT: nobody },
      /Expected to reach http:\/\/127\.0\.0\.1:\d+ for model\.onnx of Owner\/wd2@main but cannot \(ECONNREFUSED\); set HF_HUB_OFFLINE=1/,
    ],
    ['hf:Owner/twice2', { HF_HUB_OFFLINE: '1' }, /HF_HUB_OFFLINE is set, so nothing is downloaded/],
  ];
  for (const [ref, env, message] of cases) {
    const asked = log.length;
    const r = await pred(ref, env);
    assert.equal(r.code, 2, ref);
    assert.equal(r.err.length, 1, r.err.join('\n'));
    assert.match(r.err[0]!, message, ref);
    if (env.HF_HUB_OFFLINE) assert.equal(log.length, asked, 'offline, yet the hub was asked');
  }
  const broken = path.join(cache, 'models--Owner--broken');
  assert.deepEqual(await readdir(path.join(broken, 'blobs')), [], 'a temp file or a bad blob stayed');
  assert.deepEqual(await readdir(path.join(broken)).then((d) => d.sort()), ['blobs']);
  assert.deepEqual(await readdir(cache).then((d) => d.filter((n) => !n.startsWith('models--') && n !== '.locks')), []);
});
