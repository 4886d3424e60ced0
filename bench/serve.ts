// `npm run bench -- serve`: load on `serve` with autocannon over 127.0.0.1 (bounded in count and time):
// throughput at concurrency 16 against `pred`'s img/s on the same JPEGs and model (side by side), p50/p99
// latency, 5xx count, the server's RSS over the run; then concurrency 256 against a small queue must shed
// with 503 and recover.
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { runCli } from '../src/cli/index.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS } from '../training/params.js';
import { median, saveResult } from './common.js';
import { makeJpegs } from './pairs.js';

function rssMiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024);
}

async function startServer(
  model: string,
  extra: string[],
): Promise<{ url: string; pid: number; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '--model', model, '--port', '0', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d) => {
      err += d;
      const m = /on (http:\/\/\S+);/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`serve exited: ${err}`)));
  });
  return { url, pid: child.pid!, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

function load(url: string, bodies: Buffer[], connections: number, amount: number): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}/v1/tag`,
    connections,
    amount,
    timeout: 60,
    requests: bodies.map((body) => ({
      method: 'POST',
      path: '/v1/tag',
      headers: { 'content-type': 'image/jpeg' },
      body,
    })),
  });
}

export async function benchServe(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const count = 48;
  const amount = opts.quick ? 2000 : 5000;
  const data = path.resolve('bench', 'data', `jpeg-850x1200-${count}`);
  await makeJpegs(data, count);
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-serve');
  await mkdir(tmp, { recursive: true });
  const modelFile = path.join(tmp, 'model.onnx');
  const config = defaultConfig({ tags: 1000, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 128 });
  const tags = Array.from({ length: 1000 }, (_, i) => `tag_${i}`);
  await writeFile(
    modelFile,
    encodeInferenceModel(config, initParams(config, 1), {
      tags,
      categories: tags.map((_, i) => (i < 2 ? 9 : 0)),
      pad: 'center',
      source: 'bench',
    }),
  );
  const bodies = await Promise.all(
    (await readdir(data)).filter((f) => f.endsWith('.jpg')).map((f) => readFile(path.join(data, f))),
  );

  // pred on the same images and model, its own reported rate (after model load), median of 3.
  const predRates: number[] = [];
  let summary = '';
  for (let r = 0; r < 3; r++) {
    await runCli(['pred', data, '--model', modelFile, '--format', 'jsonl', '--batch', '8'], {
      out: () => undefined,
      err: (l) => void (summary = l),
      tty: false,
    });
    predRates.push(Number(/, ([\d.]+) img\/s/.exec(summary)![1]));
  }

  const server = await startServer(modelFile, ['--batch', '8', '--queue', '256']);
  await load(server.url, bodies, 16, 200); // warm-up
  const rss: number[] = [await rssMiB(server.pid)];
  const runs: autocannon.Result[] = [];
  for (let part = 0; part < 5; part++) {
    runs.push(await load(server.url, bodies, 16, amount / 5));
    rss.push(await rssMiB(server.pid));
  }
  await server.stop();
  const rates = runs.map((r) => r.requests.mean);
  const fivexx = runs.reduce((a, r) => a + r['5xx'], 0);
  const non2xx = runs.reduce((a, r) => a + r.non2xx, 0);

  // Overload: 256 connections against a queue of 32 must shed with 503, then serve normally again.
  const small = await startServer(modelFile, ['--batch', '8', '--queue', '32']);
  const flood = await load(small.url, bodies, 256, opts.quick ? 1500 : 3000);
  const after = await load(small.url, bodies, 4, 100);
  await small.stop();
  await rm(tmp, { recursive: true, force: true });

  const row = {
    images: count,
    requests: amount,
    connections: 16,
    serveImgPerS: median(rates),
    predImgPerS: median(predRates),
    ratio: median(rates) / median(predRates),
    p50Ms: median(runs.map((r) => r.latency.p50)),
    p99Ms: median(runs.map((r) => r.latency.p99)),
    fivexx,
    non2xx,
    rssMiB: rss,
    overload: {
      connections: 256,
      ok: flood['2xx'],
      shed503: flood.statusCodeStats?.['503']?.count ?? 0,
      other5xx: flood['5xx'] - (flood.statusCodeStats?.['503']?.count ?? 0),
      afterOk: after['2xx'],
      afterNon2xx: after.non2xx,
    },
  };
  const f = await saveResult('serve', row);
  console.log(
    `| serve /v1/tag, tiny model 64 px, 850×1200 JPEGs, 16 connections, ${amount} requests (autocannon) | ${row.serveImgPerS.toFixed(1)} img/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, ${fivexx} 5xx, RSS ${rss.map((x) => x.toFixed(0)).join('→')} MiB | pred on the same images and model ${row.predImgPerS.toFixed(1)} img/s | ${row.ratio.toFixed(2)}× |`,
  );
  console.log(
    `| serve under 256 connections, queue 32 | ${row.overload.ok} answered, ${row.overload.shed503} shed with 503, ${row.overload.other5xx} other 5xx; afterwards ${row.overload.afterOk}/100 answered | | |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
