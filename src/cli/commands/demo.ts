// `demo [--out DIR]`: the whole pipeline on built-in demo data, each step printed as the command it
// runs: synth → tags → pairs → train (vgg16-tiny, 64 px) → export → predictions on holdout images next
// to their true tags, with the holdout mAP against the base rate.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { defineCommand, type Command, type Ctx } from '../command.js';
import type { Io } from '../io.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { lockFolder, LOCK_NAME } from '../../util/lock.js';
import { checkChoice, checkInteger, UsageError } from '../../util/errors.js';
import { ENGINES } from '../../train/engines.js';
import { PRECISIONS } from '../../train/run-config.js';
import { preprocessImage } from '../../data/images.js';
import { readShard, readShardIndex, type ShardIndexJson } from '../../data/shards.js';
import { readTagFile } from '../../data/scan.js';
import { baseRateMap } from '../../metrics/metrics.js';
import { bestCheckpoint, listCheckpoints } from '../../train/checkpoint.js';
import { TaggerModel } from '../../predict/model.js';

export const demoCommand: Command = ({ io, run }) =>
  defineCommand({
    command: 'demo',
    describe: 'Run the whole pipeline on built-in demo data: synth → tags → pairs → train → export → predictions',
    builder: (y) =>
      y
        .option('out', {
          type: 'string',
          default: 'demo-out',
          describe: 'Working folder, replaced on each run (an empty or earlier demo folder)',
        })
        .option('count', { type: 'number', default: 1200, describe: 'Demo images to draw' })
        .option('rounds', { type: 'number', default: 60, describe: 'Training rounds' })
        .option('device', { type: 'string', default: 'cpu', describe: 'cpu or cuda' })
        .option('engine', {
          type: 'string',
          choices: ENGINES,
          default: 'auto',
          describe: 'Training engine (see train --help)',
        })
        .option('precision', {
          type: 'string',
          choices: PRECISIONS,
          default: 'fp32',
          describe: 'Training precision (see train --help)',
        }),
    handler: async (argv: {
      out: string;
      count: number;
      rounds: number;
      device: string;
      engine: string;
      precision: string;
    }) => {
      const count = checkInteger('--count', argv.count, 50, 1_000_000);
      const rounds = checkInteger('--rounds', argv.rounds, 1, 100_000);
      const out = path.resolve(argv.out);
      // Start afresh each time, but only ever delete what an earlier demo made, and never under another demo.
      const marker = path.join(out, '.alt-i2v-ort-demo');
      await mkdir(out, { recursive: true });
      const lock = await lockFolder(out, `alt-i2v-ort demo (pid ${process.pid})`, (l) => io.err(l));
      try {
        const entries = (await readdir(out)).filter((e) => e !== LOCK_NAME);
        if (entries.length > 0 && !existsSync(marker))
          throw new UsageError(
            `Expected an empty or earlier demo folder for --out but ${JSON.stringify(argv.out)} holds other files; choose another --out`,
          );
        for (const e of entries) await rm(path.join(out, e), { recursive: true, force: true });
        await writeFileAtomic(marker, 'made by alt-i2v-ort demo; the next demo run replaces this folder\n');
        const train = {
          device: argv.device,
          engine: checkChoice('--engine', argv.engine, ENGINES),
          precision: checkChoice('--precision', argv.precision, PRECISIONS),
        };
        await runDemo(out, count, rounds, train, { io, run });
      } finally {
        await lock.release();
      }
    },
  });

async function runDemo(
  out: string,
  count: number,
  rounds: number,
  { device, engine, precision }: { device: string; engine: string; precision: string },
  { io, run }: Ctx,
): Promise<void> {
  const data = path.join(out, 'data');
  const shards = path.join(out, 'shards');
  const model = path.join(out, 'model.onnx');
  const steps: string[][] = [
    ['synth', '--out', data, '--count', String(count), '--seed', '1'],
    // The demo's recipe: the 30 most frequent tags (rare colour–shape pairs left out, so the holdout has
    // positives for every tag), 64 px, the tiny VGG16 with a 128-wide head at lr 7e-4 for 60 rounds.
    ['tags', data, '--out', path.join(out, 'tags.csv'), '--top', '30', '--min-count', '5'],
    [
      'pairs',
      data,
      '--tags',
      path.join(out, 'tags.csv'),
      '--out',
      shards,
      '--size',
      '64',
      '--shard-size',
      String(Math.ceil(count / 3)),
      '--holdout',
      '0.18',
    ],
    [
      'train',
      shards,
      '--out',
      path.join(out, 'run'),
      '--backbone',
      'vgg16-tiny',
      '--hidden',
      '128',
      '--batch',
      '16',
      '--lr',
      '0.0007',
      '--rounds',
      String(rounds),
      '--device',
      device,
      '--engine',
      engine,
      '--precision',
      precision,
    ],
    ['export', path.join(out, 'run'), '--out', model],
    ['gallery', shards, '--model', model, '--out', path.join(out, 'gallery.html'), '--limit', '48'],
  ];
  const t0 = performance.now();
  for (const step of steps) {
    io.out(`\n$ alt-i2v-ort ${step.join(' ')}`);
    const code = await run(step);
    if (code !== 0) throw new Error(`demo step "${step[0]}" failed with exit code ${code}`);
  }
  const index = await readShardIndex(shards);
  const holdouts = index.shards.filter((s) => s.split === 'holdout');
  await showPredictions(io, data, model, await readShard(shards, holdouts[0]!, index));
  const { base, n } = await holdoutBaseRate(shards, index);
  const best = bestCheckpoint(await listCheckpoints(path.join(out, 'run', 'checkpoints')));
  io.out(
    `\nholdout mAP ${best?.metrics?.map.toFixed(3) ?? '?'} (${n} images, ${index.tags.count} tags) vs ${base.toFixed(3)} for a tagger that only knows tag frequencies; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  io.out(
    `curves: ${path.join(out, 'run', 'curves.svg')}; model: ${model}; gallery of holdout images: ${path.join(out, 'gallery.html')}`,
  );
}

/** Predictions on a few holdout images, read back from their files like `pred` does. */
async function showPredictions(io: Io, data: string, model: string, first: { names: string[] }): Promise<void> {
  const tagger = await TaggerModel.load(model);
  const { imageSize: size, pad } = tagger.meta;
  io.out('\npredictions on holdout images (probability ≥ 0.5), true tags after "|":');
  for (const name of first.names.slice(0, 5)) {
    const file = path.join(data, name);
    const pixels = await preprocessImage(file, file, { size, pad, maxPixels: 1e8 });
    const { probs } = await tagger.run(pixels, 1);
    const predicted = [...probs]
      .map((p, j) => [p, j] as const)
      .filter(([p]) => p >= 0.5)
      .sort((a, b) => b[0] - a[0]);
    const truth = (await readTagFile(file.replace(/\.\w+$/, '.txt'))).filter((t) => tagger.meta.tags.includes(t));
    io.out(
      `  ${name}: ${predicted.map(([p, j]) => `${tagger.meta.tags[j]} ${p.toFixed(2)}`).join(', ') || '(none)'}\n      | ${truth.join(', ')}`,
    );
  }
  await tagger.release();
}

/** The mAP of a tagger that only knows each tag's frequency, on the holdout shards. */
async function holdoutBaseRate(shards: string, index: ShardIndexJson): Promise<{ base: number; n: number }> {
  const labels: Uint8Array[] = [];
  let n = 0;
  for (const h of index.shards.filter((s) => s.split === 'holdout')) {
    const s = await readShard(shards, h, index);
    labels.push(s.labels);
    n += s.count;
  }
  const base = baseRateMap(Buffer.concat(labels), n, index.tags.count);
  return { base, n };
}
