// `npm run bench -- train`: one full-size training step (VGG16 + the seed head, 8 convs frozen, random
// init, batch 8) through onnxruntime-node, train + optimizer graphs vs the fused step graph, median
// of alternating runs (PyTorch's step is the `torch` bench's row, measured side by side there).
import { HostTrainSession } from '../training/host-session.js';
import { defaultConfig, initParams, paramSpecs, numel } from '../training/params.js';
import { randomBatch } from '../training/gradcheck.js';
import { trainStepFlops } from '../training/flops.js';
import { machineLimit, median, ofLimit, saveResult } from './common.js';

export async function benchTrain(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const batch = 8;
  const runs = opts.quick ? 2 : 5;
  const c = defaultConfig({ tags: 5000 });
  const trainable = paramSpecs(c)
    .filter((s) => s.role === 'trainable')
    .reduce((a, s) => a + numel(s.shape), 0);
  console.error(
    `train: full-size model, ${trainable.toLocaleString('en')} trainable parameters, batch ${batch}, ${runs} runs each`,
  );
  const params = initParams(c, 1);
  const variants = {
    separate: await HostTrainSession.create(c, params),
    fused: await HostTrainSession.create(c, params, { fused: true }),
  };
  const data = randomBatch(c, batch, 3);
  const times: Record<string, number[]> = { separate: [], fused: [] };
  for (const s of Object.values(variants)) await s.trainStep(data, 0.001); // warm-up
  for (let r = 0; r < runs; r++) {
    for (const [name, s] of Object.entries(variants)) {
      const t0 = performance.now();
      await s.trainStep(data, 0.001);
      times[name]!.push((performance.now() - t0) / 1000);
    }
  }
  for (const s of Object.values(variants)) await s.release();
  const imgS = (name: string): number => batch / median(times[name]!);
  const limit = await machineLimit();
  const flop = trainStepFlops(c);
  const row = {
    batch,
    gflopPerImage: flop / 1e9,
    limit,
    secondsPerStep: { separate: median(times.separate!), fused: median(times.fused!) },
    imgPerS: { separate: imgS('separate'), fused: imgS('fused') },
    runs: times,
  };
  const f = await saveResult('train', row);
  console.log(
    `| train graphs through onnxruntime-node: fused step vs train + Adam graphs, full model, batch 8 (\`train\`) | ${row.imgPerS.fused.toFixed(2)} img/s | ${row.imgPerS.separate.toFixed(2)} img/s | ${(row.imgPerS.fused / row.imgPerS.separate).toFixed(2)}× | ${ofLimit(row.imgPerS.fused, flop, limit)} |`,
  );
  console.log(`  results in ${f}`);
  return row;
}
