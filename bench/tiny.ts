// `npm run bench -- tiny`: the small-model training step (vgg16-tiny, 64 px, batch 32, the demo's head:
// 30 tags, hidden 128, nothing frozen) through the native TrainSession against PyTorch CPU on the same
// shapes, alternating, medians; and a fresh session's first steps against its steady step (the first
// round's slowness). Without python3-torch (see --with-reference) the PyTorch side is skipped.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { TrainSession } from '../src/train/train-session.js';
import { trainStepFlops } from '../training/flops.js';
import { randomBatch } from '../training/gradcheck.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS } from '../training/params.js';
import { profileTrainStep } from './torch.js';
import { hasPython, KEEP_MEMORY, machineLimit, median, ofLimit, saveResult } from './common.js';

export async function benchTiny(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const batch = 32;
  const c = defaultConfig({ tags: 30, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 128, freeze: 0 });
  const runs = opts.quick ? 3 : 7;
  const steps = opts.quick ? 15 : 40;
  const torch = hasPython(['torch']);
  if (!torch) console.error('tiny: PyTorch reference skipped (python3-torch not installed; run with --with-reference)');
  const data = randomBatch(c, batch, 1);
  const ours: number[] = [];
  const ref: number[] = [];
  const firsts: number[][] = [];
  let version = '';
  for (let r = 0; r < runs; r++) {
    // A fresh session each run: its first steps are what a run's first round pays.
    const s = await TrainSession.create(c, { params: initParams(c, r + 1) });
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await s.step(data.images, data.labels, batch, 0.001);
      times.push((performance.now() - t) / 1000);
    }
    s.dispose();
    firsts.push(times.slice(0, 3));
    ours.push(median(times.slice(3)));
    if (torch) {
      const args = [
        String(os.availableParallelism()),
        String(batch),
        String(c.tags),
        String(c.hidden),
        c.widths.join(','),
        String(c.imageSize),
        String(c.freeze),
        String(steps),
      ];
      const p = spawnSync('/usr/bin/python3', [path.resolve('bench', 'torch_ref.py'), ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...KEEP_MEMORY },
      });
      if (p.status !== 0) throw new Error(`PyTorch reference failed: ${p.stderr}`);
      const j = JSON.parse(p.stdout.trim().split('\n').at(-1)!);
      ref.push(j.train_s);
      version = j.torch;
    }
  }
  const step = median(ours);
  const first = [0, 1, 2].map((i) => median(firsts.map((f) => f[i]!)));
  const limit = await machineLimit();
  const flop = trainStepFlops(c);
  const profile = await profileTrainStep(c, initParams(c, 1), batch);
  const row = {
    batch,
    config: c,
    imgPerS: batch / step,
    torch: version || null,
    torchImgPerS: torch ? batch / median(ref) : null,
    firstStepsVsSteady: first.map((f) => f / step),
    limit,
    profile,
    runs: { ours, ref, firsts },
  };
  const f = await saveResult('tiny', row);
  const vs = row.torchImgPerS ? `${(row.imgPerS / row.torchImgPerS).toFixed(2)}×` : 'skipped';
  console.log(
    `| train step, tiny model 64 px, batch 32, 30 tags, native TrainSession (\`tiny\`) | ${row.imgPerS.toFixed(0)} img/s | PyTorch ${version || '-'} ${row.torchImgPerS?.toFixed(0) ?? 'skipped'} img/s | ${vs} | ${ofLimit(row.imgPerS, flop, limit)} |`,
  );
  console.log(
    `| tiny: a fresh session's steps 1, 2, 3 against its steady step (\`tiny\`) | ${row.firstStepsVsSteady.map((x) => `${x.toFixed(2)}×`).join(', ')} | | | |`,
  );
  const total = profile.reduce((a, p) => a + p.ms, 0);
  console.log(
    `  tiny train graph profile (${total.toFixed(1)} ms in ops of a ${(step * 1000).toFixed(1)} ms step): ${profile
      .slice(0, 8)
      .map((p) => `${p.op} ${(100 * p.share).toFixed(0)}%`)
      .join(', ')}`,
  );
  console.log(`  results in ${f}`);
  return row;
}
