// `npm run bench -- hydrus`: what going through Hydrus' Client API costs beside `pred` on the same
// files: 300 JPEGs of 850×1200 served by the local stand-in of the Client API (test/hydrus/fake-hydrus.ts,
// over HTTP on the loopback), tagged and written by `hydrus` (search, metadata, fetch, add_tags per
// file), against `pred` on the same files from disk with the same model and batch; alternating runs,
// medians. The model is the tiny VGG16 at 64 px, so that the API's cost shows rather than the model's.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../src/cli/index.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS } from '../training/params.js';
import { fakeHydrus, type FakeFile } from '../test/hydrus/fake-hydrus.js';
import { median, saveResult } from './common.js';
import { makeJpegs } from './pairs.js';

const quiet = { out: () => undefined, err: () => undefined, tty: false };

async function timed(argv: string[], env: Record<string, string> = {}): Promise<number> {
  Object.assign(process.env, env);
  const t0 = performance.now();
  const code = await runCli(argv, quiet);
  if (code !== 0) throw new Error(`alt-i2v-ort ${argv[0]} exited ${code}`);
  return (performance.now() - t0) / 1000;
}

export async function benchHydrus(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const count = opts.quick ? 100 : 300;
  const runs = opts.quick ? 2 : 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-bench-hydrus-'));
  try {
    const images = path.join(dir, 'images');
    await makeJpegs(images, count);
    const config = defaultConfig({ tags: 69, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 64, freeze: 0 });
    const tags = Array.from({ length: config.tags }, (_, i) => `tag_${i}`);
    const model = path.join(dir, 'tiny.onnx');
    await writeFile(
      model,
      encodeInferenceModel(config, initParams(config, 1), {
        tags,
        categories: tags.map(() => 0),
        pad: 'center',
        source: 'bench',
      }),
    );
    const names = (await readdir(images)).filter((f) => f.endsWith('.jpg')).sort();
    const bytes = await Promise.all(names.map((f) => readFile(path.join(images, f))));
    const library = (): FakeFile[] =>
      bytes.map((b, i) => ({
        id: i + 1,
        hash: createHash('sha256').update(b).digest('hex'),
        mime: 'image/jpeg',
        bytes: b,
        tags: {},
      }));
    const key = 'ab'.repeat(32);
    const pred: number[] = [];
    const hydrus: number[] = [];
    for (let r = 0; r < runs; r++) {
      pred.push(
        await timed([
          'pred',
          images,
          '--model',
          model,
          '--format',
          'jsonl',
          '--threshold',
          '0.5',
          '--out',
          path.join(dir, `p${r}.jsonl`),
        ]),
      );
      const h = await fakeHydrus(key, library());
      try {
        hydrus.push(
          await timed(
            [
              'hydrus',
              '--api',
              h.url,
              '--search',
              'system:everything',
              '--service',
              'my tags',
              '--model',
              model,
              '--threshold',
              '0.5',
            ],
            { HYDRUS_ACCESS_KEY: key },
          ),
        );
        if (h.adds.length !== count) throw new Error(`hydrus wrote ${h.adds.length} files of ${count}`);
      } finally {
        await h.app.close();
      }
    }
    const [p, h] = [count / median(pred), count / median(hydrus)];
    const overheadMs = (1 / h - 1 / p) * 1000;
    console.log('| path | files/s | beside `pred` |\n|---|---|---|');
    console.log(`| \`pred\` from disk, ${count} JPEGs 850×1200, tiny model | ${p.toFixed(1)} | |`);
    console.log(
      `| \`hydrus\` through the Client API (loopback), same files and model | ${h.toFixed(1)} | ${(h / p).toFixed(2)}× (${overheadMs.toFixed(1)} ms more per file) |`,
    );
    const file = await saveResult('hydrus', {
      count,
      runs,
      pred: { seconds: pred, rate: p },
      hydrus: { seconds: hydrus, rate: h },
      overheadMs,
    });
    console.log(`results: ${file}`);
    return { pred: p, hydrus: h, overheadMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
