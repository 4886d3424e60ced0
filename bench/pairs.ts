// `npm run bench -- pairs`: images/s of `pairs` on 850×1200 JPEGs against the seed's PIL method
// (paste top-left on a black square, resize to 224) in one process, median of alternating runs;
// plus where the time goes and peak memory over 1 and over 4 shards.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { makeShards } from '../src/data/make-shards.js';
import { TagIndex } from '../src/data/tags.js';
import { Rng } from '../training/rng.js';
import { synthItem } from '../src/data/synth.js';
import { hasPython, median, runWithPeakRss, saveResult } from './common.js';

const W = 850;
const H = 1200;

/** Illustration-like 850×1200 JPEGs: synth shapes at full size over textured noise, q90. */
export async function makeJpegs(dir: string, count: number): Promise<void> {
  if (existsSync(path.join(dir, `${count - 1}.txt`))) return;
  await mkdir(dir, { recursive: true });
  const rng = new Rng(42);
  const noise = Buffer.alloc(W * H * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = rng.uint32() & 0x3f;
  for (let i = 0; i < count; i++) {
    const item = synthItem(rng);
    const svg = item.svg.replace(
      /<svg([^>]*)width="\d+" height="\d+"/,
      `<svg$1width="${W}" height="${H}" viewBox="0 0 ${item.width} ${item.height}" preserveAspectRatio="none"`,
    );
    const base = await sharp(Buffer.from(svg)).flatten().raw().toBuffer();
    for (let k = 0; k < base.length; k++)
      base[k] = Math.min(255, base[k]! * 0.8 + noise[(k + i * 3001) % noise.length]!);
    await writeFile(
      path.join(dir, `${i}.jpg`),
      await sharp(base, { raw: { width: W, height: H, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    await writeFile(path.join(dir, `${i}.txt`), item.tags.join(' '));
  }
}

const PIL_SCRIPT = `
import sys, time, glob
import numpy as np
from PIL import Image
files = sorted(glob.glob(sys.argv[1] + '/*.jpg'))
t0 = time.perf_counter()
for f in files:
    img = Image.open(f).convert('RGB')
    side = max(img.size)
    sq = Image.new('RGB', (side, side), (0, 0, 0))
    sq.paste(img, (0, 0))
    x = np.asarray(sq.resize((224, 224)), dtype=np.float64) / 255.0
print(len(files) / (time.perf_counter() - t0))
`;

export async function benchPairs(opts: { quick: boolean; withReference?: boolean }): Promise<Record<string, unknown>> {
  if (opts.withReference && !hasPython(['PIL', 'numpy'])) {
    console.error('pairs: installing python3-pil python3-numpy from Debian (--with-reference)');
    spawnSync(
      'bash',
      ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pil python3-numpy'],
      { stdio: 'inherit' },
    );
  }
  const count = opts.quick ? 60 : 240;
  const runs = opts.quick ? 3 : 5;
  const root = path.resolve('bench', 'data');
  const data = path.join(root, `jpeg-${W}x${H}-${count}`);
  console.error(`pairs: preparing ${count} ${W}×${H} JPEGs in ${data}`);
  await makeJpegs(data, count);
  const tagsFile = path.join(root, `tags-${count}.csv`);
  const tagsRun = spawnSync(process.execPath, ['dist/src/cli/main.js', 'tags', data, '--out', tagsFile], {
    encoding: 'utf8',
  });
  if (tagsRun.status !== 0) throw new Error(tagsRun.stderr);
  const tags = await TagIndex.load(tagsFile);
  const pil = hasPython(['PIL', 'numpy']);
  if (!pil)
    console.error('pairs: PIL reference skipped (install python3-pil python3-numpy, or run with --with-reference)');

  const ours: number[] = [];
  const ref: number[] = [];
  const out = path.join(os.tmpdir(), 'alt-i2v-bench-shards');
  const once = async (): Promise<number> => {
    await rm(out, { recursive: true, force: true });
    const t0 = performance.now();
    await makeShards({
      dataset: data,
      tags,
      out,
      shardSize: 15000,
      imageSize: 224,
      holdout: 0.01,
      pad: 'center',
      maxPixels: 178_956_970,
    });
    return count / ((performance.now() - t0) / 1000);
  };
  await once(); // warm-up
  for (let r = 0; r < runs; r++) {
    ours.push(await once());
    if (pil) {
      const p = spawnSync('/usr/bin/python3', ['-c', PIL_SCRIPT, data], { encoding: 'utf8' });
      if (p.status !== 0) throw new Error(p.stderr);
      ref.push(Number(p.stdout.trim()));
    }
  }

  // Where the time goes: one image at a time on one libvips thread.
  const file = path.join(data, '0.jpg');
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await fn();
    return (performance.now() - t0) / 20;
  };
  sharp.concurrency(1);
  const fullDecodeMs = await time(() => sharp(file).raw().toBuffer());
  const pipelineMs = await time(() =>
    sharp(file).rotate().flatten().resize(224, 224, { fit: 'contain' }).raw().toBuffer(),
  );
  sharp.concurrency(0);

  // Peak memory: shard size 40 over 1 shard's worth of images and over 4.
  const memory: Record<string, number> = {};
  for (const n of [1, 4]) {
    const sub = path.join(root, `mem-${n}`);
    await rm(sub, { recursive: true, force: true });
    await mkdir(sub, { recursive: true });
    for (let i = 0; i < 40 * n; i++) {
      for (const ext of ['jpg', 'txt'])
        await copyFile(path.join(data, `${i % count}.${ext}`), path.join(sub, `${i}.${ext}`));
    }
    await rm(out, { recursive: true, force: true });
    memory[`${n}shard`] = runWithPeakRss(process.execPath, [
      'dist/src/cli/main.js',
      'pairs',
      sub,
      '--tags',
      tagsFile,
      '--out',
      out,
      '--shard-size',
      '40',
      '--holdout',
      '0',
    ]).peakMiB;
  }
  await rm(out, { recursive: true, force: true });

  const row = {
    oursImgPerS: median(ours),
    pilImgPerS: pil ? median(ref) : null,
    ratio: pil ? median(ours) / median(ref) : null,
    runs: { ours, pil: ref },
    perImageMs: { fullDecode: fullDecodeMs, pipelineWithShrinkOnLoad: pipelineMs },
    peakRssMiB: memory,
    memoryBoundMiB: (40 * 150528) / 2 ** 20 + 300,
    images: count,
    cores: os.availableParallelism(),
  };
  const f = await saveResult('pairs', row);
  console.log(
    `| pairs 850×1200 JPEG → 224 | ours ${row.oursImgPerS.toFixed(1)} img/s | PIL ${row.pilImgPerS?.toFixed(1) ?? 'skipped'} img/s | ratio ${row.ratio?.toFixed(2) ?? '-'}× | peak RSS 1 shard ${memory['1shard']!.toFixed(0)} MiB, 4 shards ${memory['4shard']!.toFixed(0)} MiB |`,
  );
  console.log(
    `  per image, one thread: full decode ${fullDecodeMs.toFixed(1)} ms, our pipeline ${pipelineMs.toFixed(1)} ms (JPEG shrink-on-load); results in ${f}`,
  );
  return row;
}
