// Trust, round four: animated PNGs whose chunk headers lie about their frames (refused from the headers,
// before a frame is inflated, as the process's peak memory shows), and `serve`'s hostile bodies over a
// real socket: form fields past --max-body-mb, a form without its closing boundary, SVG in disguise; and
// a Hugging Face hub that stalls, answers 204 or cuts the connection; pred --out killed mid-run.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { crc32, createDeflate, deflateSync, gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { tinyModel } from '../helpers.js';
import { buildServer } from '../../src/serve/app.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { assertOneLine, data, fault, killAfter, root, run } from './harness.js';

const dir = path.join(root, 'hostile');
await mkdir(dir, { recursive: true });
const model = await tinyModel(path.join(dir, 'model.onnx'), ['red_circle', 'blue_star'], [0, 0]);

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}
const u32 = (...xs: number[]): Buffer => Buffer.concat(xs.map((x) => Buffer.from([x >>> 24, x >>> 16, x >>> 8, x])));
/** fcTL: sequence, width, height, x, y, delay 1/10 s, dispose none, blend source. */
const fcTL = (seq: number, w: number, h: number): Buffer =>
  chunk('fcTL', Buffer.concat([u32(seq, w, h, 0, 0), Buffer.from([0, 1, 0, 10, 0, 0])]));

/** The zlib stream of `rows` rows of `width` RGBA pixels, all zero (filter byte 0), made a MiB at a time. */
async function zeroRows(width: number, rows: number): Promise<Buffer> {
  const z = createDeflate();
  const out: Buffer[] = [];
  z.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => z.on('end', resolve));
  let left = rows * (1 + width * 4);
  const mib = Buffer.alloc(2 ** 20);
  while (left > 0) {
    const n = Math.min(left, mib.length);
    if (!z.write(mib.subarray(0, n))) await new Promise((resolve) => z.once('drain', resolve));
    left -= n;
  }
  z.end();
  await done;
  return Buffer.concat(out);
}

/**
 * An APNG of a `size`² canvas whose acTL declares `declared` frames: the first frame the canvas, then
 * `extra` frames of `frame`² pixels (their data as large as they say).
 */
async function apng(size: number, declared: number, frame: number, extra: number): Promise<Buffer> {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = chunk('IHDR', Buffer.concat([u32(size, size), Buffer.from([8, 6, 0, 0, 0])]));
  const parts = [sig, ihdr, chunk('acTL', u32(declared, 0)), fcTL(0, size, size)];
  parts.push(chunk('IDAT', deflateSync(Buffer.alloc(size * (1 + size * 4)))));
  const data = await zeroRows(frame, frame);
  for (let i = 0, seq = 1; i < extra; i++, seq += 2)
    parts.push(fcTL(seq, frame, frame), chunk('fdAT', Buffer.concat([u32(seq + 1), data])));
  return Buffer.concat([...parts, chunk('IEND', Buffer.alloc(0))]);
}

// The CLI in a child that reports its peak resident memory (KiB) as its last stderr line.
const rssHook = path.join(dir, 'rss.mjs');
await writeFile(
  rssHook,
  "process.on('exit', () => process.stderr.write(`maxrss ${process.resourceUsage().maxRSS}\\n`));\n",
);
function tagFrames(file: string): { code: number | null; err: string; mib: number } {
  const r = spawnSync(
    process.execPath,
    ['--import', rssHook, path.resolve('dist/src/cli/main.js'), 'pred', file, '--model', model, '--frames', '4'],
    { encoding: 'utf8' },
  );
  const kib = Number(/maxrss (\d+)\n$/.exec(r.stderr)?.[1]);
  return { code: r.status, err: r.stderr, mib: kib / 1024 };
}

/** POST `chunks` to `url` of a live server as one chunked body (no Content-Length), as a client would. */
async function post(
  port: number,
  url: string,
  type: string,
  chunks: Buffer[],
): Promise<{ status: number; error: string }> {
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      const next = chunks.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
  const r = await fetch(`http://127.0.0.1:${port}${url}`, {
    method: 'POST',
    headers: { 'content-type': type },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: r.status, error: ((await r.json()) as { error: string }).error };
}

/** The CLI in a child, without blocking this process (whose servers the child talks to). */
function runAsync(args: string[], env: Record<string, string>): Promise<{ code: number | null; err: string }> {
  const child = spawn(process.execPath, [path.resolve('dist/src/cli/main.js'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, err })));
}

export function registerHostile(): void {
  fault(
    'APNG: a frame larger than its canvas, or more frames than acTL declares, is refused before decoding, in a few MiB',
    async () => {
      const fine = path.join(dir, 'fine.png');
      const huge = path.join(dir, 'huge-frame.png');
      const many = path.join(dir, 'many-frames.png');
      await writeFile(fine, await apng(64, 2, 64, 1));
      // The issue's file: a 64×64 canvas with an 8000×8000 frame (256 MB as RGBA) in a few hundred KB.
      await writeFile(huge, await apng(64, 2, 8000, 1));
      // acTL says 2 frames; 120 frames of 1024×1024 follow (480 MB composed).
      await writeFile(many, await apng(1024, 2, 1024, 119));
      const base = tagFrames(fine);
      assert.equal(base.code, 0, base.err);
      for (const [file, why] of [
        [huge, /huge-frame\.png: skipped, .*APNG frame 2 \(8000×8000 at 0,0\) lies outside its 64×64 canvas/],
        [many, /many-frames\.png: skipped, .*its acTL declares 2 APNG frames but it holds 120/],
      ] as const) {
        const r = tagFrames(file);
        assert.match(r.err, why);
        assert.ok(
          r.mib < base.mib + 64,
          `${path.basename(file)}: peak ${r.mib.toFixed(0)} MiB vs ${base.mib.toFixed(0)}`,
        );
      }
    },
  );

  fault(
    'serve: form fields count toward --max-body-mb (413); a form without its closing boundary is a 400; SVG behind a BOM, spaces or gzip is a 415',
    async () => {
      const app = await buildServer(await TaggerModel.load(model), {
        name: 'm',
        batch: 4,
        maxWaitMs: 5,
        queue: 16,
        timeoutMs: 5000,
        bodyLimit: 8 << 20,
        maxPixels: 1e6,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const port = (app.server.address() as AddressInfo).port;
      try {
        const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: 'red' } })
          .png()
          .toBuffer();
        const head = (name: string, file?: string): Buffer =>
          Buffer.from(
            `--B\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${file}"\r\nContent-Type: image/png` : ''}\r\n\r\n`,
          );
        const form = 'multipart/form-data; boundary=B';
        const image = [head('image', 'a.png'), png, Buffer.from('\r\n--B--\r\n')];
        // The issue's request: 63 text fields of 1 MiB and one image, under a limit of 8 MiB.
        const fields = Array.from({ length: 63 }, (_, i) => [
          head(`f${i}`),
          Buffer.alloc(2 ** 20, 0x61),
          Buffer.from('\r\n'),
        ]);
        const big = await post(port, '/v1/tag', form, [...fields.flat(), ...image]);
        assert.equal(big.status, 413, big.error);
        assert.match(big.error, /at most 8388608 bytes/);
        assert.equal((await post(port, '/v1/tag', form, image)).status, 200);
        // The same form without its closing boundary (the last part ends with the body).
        const open = await post(port, '/v1/tag', form, [head('image', 'a.png'), png, Buffer.from('\r\n')]);
        assert.equal(open.status, 400, open.error);
        assert.match(open.error, /^Expected a well-formed multipart\/form-data body/);
        const svg =
          '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/></svg>';
        for (const [what, bytes] of [
          ['BOM', Buffer.from(`\ufeff${svg}`)],
          ['spaces', Buffer.from(` \r\n\t${svg}`)],
          ['UTF-16', Buffer.from(`\ufeff${svg}`, 'utf16le')],
          ['gzip', gzipSync(svg)],
        ] as const) {
          const r = await post(port, '/v1/tag', 'image/png', [bytes]);
          assert.equal(r.status, 415, `${what}: ${r.error}`);
          assert.match(
            r.error,
            /^Expected JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIF bytes \(or a video\) for the image but they are (SVG|gzip)/,
          );
        }
      } finally {
        await app.close();
      }
    },
  );

  fault(
    'hub downloads: a server that stalls mid-body, answers 204 or cuts the connection is one line each, in seconds, leaving no temp file or lock',
    async () => {
      const COMMIT = 'c'.repeat(39) + '7';
      const size = 4096;
      const etag = 'a'.repeat(64);
      const server = createServer((req, res) => {
        const m = /^\/Owner\/(\w+)\/resolve\/main\/model\.onnx$/.exec(req.url ?? '');
        if (!m) return void res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }).end();
        const hub = { 'X-Repo-Commit': COMMIT, ETag: `"${etag}"` };
        if (req.headers.range === 'bytes=0-0')
          return void res.writeHead(206, { ...hub, 'Content-Range': `bytes 0-0/${size}` }).end('x');
        if (m[1] === 'nocontent') return void res.writeHead(204, hub).end();
        res.writeHead(200, { ...hub, 'Content-Length': String(size) });
        res.write(Buffer.alloc(size / 2));
        if (m[1] === 'cut') setTimeout(() => res.socket?.destroy(), 50);
        // 'stall': the rest never comes.
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const cache = path.join(dir, 'hub-cache');
      const image = path.join(dir, 'fine.png');
      try {
        for (const [repo, why] of [
          [
            'stall',
            /but nothing arrived for 1 s \(HF_HUB_DOWNLOAD_TIMEOUT=1\) after 2048; nothing was placed in the cache$/,
          ],
          ['nocontent', /but the hub answered 204 where a file was expected/],
          ['cut', /but the connection closed.* after 2048; nothing was placed in the cache$/],
        ] as const) {
          const t0 = performance.now();
          const r = await runAsync(['pred', image, '--model', `hf:Owner/${repo}`], {
            HF_HUB_CACHE: cache,
            HF_ENDPOINT: endpoint,
            HF_HUB_DOWNLOAD_TIMEOUT: '1',
          });
          const s = (performance.now() - t0) / 1000;
          assert.equal(r.code, 2, `${repo}: ${r.err}`);
          assertOneLine(r.err, why);
          assert.doesNotMatch(r.err, /TypeError|terminated/);
          assert.ok(s < 15, `${repo}: ${s.toFixed(1)} s`);
          const left = await readdir(cache, { recursive: true });
          assert.deepEqual(
            left.filter((f) => /\.tmp$|\.lock$/.test(f)),
            [],
            `${repo}: ${left.join(', ')}`,
          );
        }
        const bad = await runAsync(['pred', image, '--model', 'hf:Owner/stall'], {
          HF_HUB_CACHE: cache,
          HF_ENDPOINT: endpoint,
          HF_HUB_DOWNLOAD_TIMEOUT: '1.5',
        });
        assert.equal(bad.code, 2);
        assertOneLine(
          bad.err,
          /Expected a whole number of seconds \(1 to 86400\) in HF_HUB_DOWNLOAD_TIMEOUT but it holds "1.5"/,
        );
      } finally {
        server.close();
        server.closeAllConnections();
      }
    },
  );

  fault(
    'pred --out killed (-9) at random moments leaves whole rows only; --skip-done then tags each image exactly once',
    async () => {
      const out = path.join(dir, 'killed.jsonl');
      const args = [
        'pred',
        data,
        '--model',
        model,
        '--format',
        'jsonl',
        '--out',
        out,
        '--batch',
        '4',
        '--threshold',
        '0',
      ];
      const all = (await readdir(data, { recursive: true })).filter((f) => /\.(png|jpg|webp)$/.test(f)).length;
      // A whole run, timed, so the kills land inside the work on any machine.
      const t0 = performance.now();
      assert.equal(run(args).code, 0);
      const wholeMs = performance.now() - t0;
      let killedMidRun = 0;
      for (const ms of [0.3, 0.55, 0.8].map((f) => Math.round(f * wholeMs))) {
        await rm(out, { force: true });
        const k = await killAfter(args, ms);
        if (k.killed) killedMidRun++;
        const left = await readFile(out, 'utf8').catch(() => '');
        const whole = left.slice(0, left.lastIndexOf('\n') + 1);
        for (const line of whole.split('\n').filter(Boolean)) JSON.parse(line); // whole rows parse
        const resumed = run([...args, '--skip-done']);
        assert.equal(resumed.code, 0, resumed.err);
        const files = (await readFile(out, 'utf8'))
          .trimEnd()
          .split('\n')
          .map((l) => (JSON.parse(l) as { file: string }).file);
        assert.equal(files.length, all, `${ms} ms: ${files.length} rows for ${all} images`);
        assert.equal(new Set(files).size, all, `${ms} ms: an image twice`);
      }
      assert.ok(killedMidRun >= 1, 'at least one kill landed mid-run');
    },
  );
}
