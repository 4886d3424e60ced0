// `npm run bench -- trainloop`: what `train` costs on top of the bare TrainSession step loop (rotation,
// shuffling, batch assembly, logging) for the full-size model on CPU, batch 8; and peak RSS of `train`
// over 4 shards against 1 shard (only the current and the next shard may be in memory).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ShardWriter, SHARDS_FORMAT, SHARDS_VERSION, type ShardIndexJson } from '../src/data/shards.js';
import { trainRun } from '../src/train/run.js';
import { modelConfigFor } from '../src/train/run-config.js';
import { TrainSession } from '../src/train/train-session.js';
import { Rng } from '../training/rng.js';
import { initParams } from '../training/params.js';
import { benchTrainOptions, median, runWithPeakRss, saveResult } from './common.js';

/** Shards of random pixels and labels: `shards` training shards of `perShard` images and one holdout shard. */
export async function randomShards(
  dir: string,
  shards: number,
  perShard: number,
  size: number,
  tags: number,
  holdout: number,
): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const rng = new Rng(5);
  const names = Array.from({ length: tags }, (_, i) => `tag_${i}`);
  const index: ShardIndexJson = {
    format: SHARDS_FORMAT,
    version: SHARDS_VERSION,
    imageSize: size,
    pad: 'center',
    maxPixels: 1e8,
    shardSize: perShard,
    holdout: 0,
    tags: { sha256: 'bench', count: tags, names, categories: names.map(() => 0) },
    dataset: 'random',
    shards: [],
    progress: { sourcesDone: 0, lastSource: null, complete: true },
    stats: { kept: 0, skipped: {}, orphanTagFiles: 0 },
  };
  for (let s = 0; s <= shards; s++) {
    const n = s < shards ? perShard : holdout;
    const w = new ShardWriter(size, tags);
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(size * size * 3);
      for (let j = 0; j < px.length; j += 4) px.writeUInt32LE(rng.uint32(), j);
      const lab = Buffer.alloc(tags);
      for (let j = 0; j < tags; j++) lab[j] = rng.next() < 0.01 ? 1 : 0;
      w.add(`img-${s}-${i}`, px, lab);
    }
    const file = `shard-${String(s).padStart(5, '0')}.safetensors`;
    await w.flush(path.join(dir, file), 'bench');
    index.shards.push({ file, split: s < shards ? 'train' : 'holdout', count: n });
  }
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
}

export async function benchTrainloop(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const tmp = path.join(os.tmpdir(), 'alt-i2v-bench-trainloop');
  const batch = 8;
  const perShard = opts.quick ? 16 : 48;
  const shardsDir = path.join(tmp, 'shards');
  await randomShards(shardsDir, 2, perShard, 224, 5000, 8);

  // Bare loop: the same number of steps on ready-made batches.
  const config = modelConfigFor('vgg16', 5000, 224, 5000, undefined);
  const session = await TrainSession.create(config, { params: initParams(config, 1) });
  const rng = new Rng(1);
  const images = Uint8Array.from({ length: batch * 224 * 224 * 3 }, () => rng.uint32() & 255);
  const labels = new Uint8Array(batch * 5000);
  await session.step(images, labels, batch, 0.001);
  const bare: number[] = [];
  for (let i = 0; i < (2 * perShard) / batch; i++) {
    const t0 = performance.now();
    await session.step(images, labels, batch, 0.001);
    bare.push(batch / ((performance.now() - t0) / 1000));
  }
  session.dispose();

  // `train`: 2 rounds over the 2 shards; in-round img/s as it logs them, and whole rounds.
  const run = path.join(tmp, 'run');
  await rm(run, { recursive: true, force: true });
  // Step to step inside a round, so batch assembly and logging count but the first step (warm-up,
  // excluded from the bare loop too) and the per-round evaluation and checkpoint do not.
  const inRound: number[] = [];
  let lastStep = 0;
  let lastDone = 0;
  const t0 = performance.now();
  await trainRun(benchTrainOptions(shardsDir, run, 2, batch), {
    roundStart: () => (lastStep = 0),
    step: (done) => {
      const now = performance.now();
      if (lastStep > 0) inRound.push((done - lastDone) / ((now - lastStep) / 1000));
      lastStep = now;
      lastDone = done;
    },
  });
  const wholeSeconds = (performance.now() - t0) / 1000;
  const { readFile } = await import('node:fs/promises');
  const roundsLog = (await readFile(path.join(run, 'log.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'round');
  const runtimeShare = roundsLog.map((e) => e.runtimeShare as number);

  // Peak RSS: tiny model at 224 px over 1, 2, 4 and 8 shards of 120 images (17 MiB each). From 2 on
  // the next shard is read during a round, so 2 is the plateau that 4 and 8 must not exceed.
  const memDir = path.join(tmp, 'mem');
  await randomShards(memDir, 8, 120, 224, 200, 8);
  const rss: Record<string, number> = {};
  for (const rounds of [1, 2, 4, 8]) {
    await rm(path.join(tmp, `run-mem-${rounds}`), { recursive: true, force: true });
    rss[`${rounds}shard`] = runWithPeakRss(process.execPath, [
      'dist/src/cli/main.js',
      'train',
      memDir,
      '--out',
      path.join(tmp, `run-mem-${rounds}`),
      '--backbone',
      'vgg16-tiny',
      '--hidden',
      '64',
      '--batch',
      '16',
      '--rounds',
      String(rounds),
    ]).peakMiB;
  }
  await rm(tmp, { recursive: true, force: true });

  const row = {
    batch,
    bareImgPerS: median(bare),
    trainInRoundImgPerS: median(inRound),
    overhead: 1 - median(inRound) / median(bare),
    wholeRunSeconds: wholeSeconds,
    runs: { bare, inRound },
    peakRssMiB: rss,
    runtimeShare,
    loopOverhead: 1 - Math.min(...runtimeShare),
  };
  const f = await saveResult('trainloop', row);
  console.log(
    `| train loop, full VGG16, batch 8, CPU | train ${row.trainInRoundImgPerS.toFixed(2)} img/s step to step (log every step) | bare TrainSession ${row.bareImgPerS.toFixed(2)} img/s | overhead ${(100 * row.overhead).toFixed(1)}% |`,
  );
  console.log(
    `| train loop time outside the runtime's steps (batches, shuffling, logging every step) | ${(100 * row.loopOverhead).toFixed(2)}% of the round | | |`,
  );
  console.log(
    `| train peak RSS, tiny model 224 px, 120-image (17 MiB) shards | ${[1, 2, 4, 8].map((r) => `${r} shard${r > 1 ? 's' : ''} ${rss[`${r}shard`]!.toFixed(0)} MiB`).join(', ')} | | |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
