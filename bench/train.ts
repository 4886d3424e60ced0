// `npm run bench -- train`: one full-size training step (VGG16 + the seed head, 8 convs frozen, random
// init, batch 8) through onnxruntime-node, train + optimizer graphs vs the fused step graph, median
// of alternating runs, against PyTorch CPU (1.32 img/s measured on this machine when the project started).
import { HostTrainSession } from '../training/host-session.js';
import { defaultConfig, initParams, paramSpecs, numel } from '../training/model.js';
import { randomBatch } from '../training/gradcheck.js';
import { median, saveResult } from './common.js';

const PYTORCH_TRAIN_IMG_S = 1.32;
const TRAIN_GFLOP_PER_IMG = 37;

export async function benchTrain(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const batch = 8;
  const runs = opts.quick ? 2 : 5;
  const c = defaultConfig({ tags: 5000 });
  const trainable = paramSpecs(c).filter((s) => s.role === 'trainable').reduce((a, s) => a + numel(s.shape), 0);
  console.error(`train: full-size model, ${trainable.toLocaleString('en')} trainable parameters, batch ${batch}, ${runs} runs each`);
  const params = initParams(c, 1);
  const variants = { separate: await HostTrainSession.create(c, params), fused: await HostTrainSession.create(c, params, { fused: true }) };
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
  const row = {
    batch,
    secondsPerStep: { separate: median(times.separate!), fused: median(times.fused!) },
    imgPerS: { separate: imgS('separate'), fused: imgS('fused') },
    runs: times,
    pytorchImgPerS: PYTORCH_TRAIN_IMG_S,
    ratioVsPytorch: { separate: imgS('separate') / PYTORCH_TRAIN_IMG_S, fused: imgS('fused') / PYTORCH_TRAIN_IMG_S },
    gflopPerS: { separate: imgS('separate') * TRAIN_GFLOP_PER_IMG, fused: imgS('fused') * TRAIN_GFLOP_PER_IMG },
  };
  const f = await saveResult('train', row);
  console.log(`| train step, full VGG16, batch 8, CPU (onnxruntime-node, host copies) | separate ${row.imgPerS.separate.toFixed(2)} img/s | fused ${row.imgPerS.fused.toFixed(2)} img/s | PyTorch ${PYTORCH_TRAIN_IMG_S} img/s | ratio ${row.ratioVsPytorch.separate.toFixed(2)}× / ${row.ratioVsPytorch.fused.toFixed(2)}× |`);
  console.log(`  ${row.gflopPerS.separate.toFixed(0)} / ${row.gflopPerS.fused.toFixed(0)} GFLOP/s at 37 GFLOP/img; results in ${f}`);
  return row;
}
