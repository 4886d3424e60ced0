// `npm run bench -- native`: per-step time of the native TrainSession (state resident in the runtime)
// against the same fused step graph through onnxruntime-node (state copied in and out every step),
// for the tiny and the full-size model on one device, alternating, median of runs.
import { TrainSession } from '../src/train/train-session.js';
import type { Device } from '../src/runtime/providers.js';
import { randomBatch } from '../training/gradcheck.js';
import { HostTrainSession } from '../training/host-session.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS, type ModelConfig } from '../training/model.js';
import { median, saveResult } from './common.js';

async function timeSteps(c: ModelConfig, batch: number, runs: number, device: Device, withHost: boolean, tf32 = false): Promise<{ native: number[]; host: number[] }> {
  const params = initParams(c, 1);
  const data = randomBatch(c, batch, 1);
  const native = await TrainSession.create(c, { params }, { device, tf32 });
  const host = withHost ? await HostTrainSession.create(c, params, { fused: true, executionProviders: [device] }) : null;
  const out = { native: [] as number[], host: [] as number[] };
  const once = async (f: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await f();
    return (performance.now() - t0) / 1000;
  };
  await native.step(data.images, data.labels, batch, 0.001);
  await host?.trainStep(data, 0.001);
  for (let r = 0; r < runs; r++) {
    out.native.push(await once(() => native.step(data.images, data.labels, batch, 0.001)));
    if (host) out.host.push(await once(() => host.trainStep(data, 0.001)));
  }
  native.dispose();
  await host?.release();
  return out;
}

export async function benchNative(opts: { quick: boolean; device?: Device; batches?: number[] }): Promise<Record<string, unknown>> {
  const device = opts.device ?? 'cpu';
  const rows: Record<string, unknown> = {};
  const cases: { name: string; config: ModelConfig; batch: number; runs: number; host: boolean; tf32?: boolean }[] = [];
  if (device === 'cpu') {
    cases.push({ name: 'tiny', config: defaultConfig({ tags: 69, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 64, freeze: 0 }), batch: 32, runs: opts.quick ? 10 : 40, host: true });
    cases.push({ name: 'vgg16', config: defaultConfig({ tags: 5000 }), batch: 8, runs: opts.quick ? 2 : 5, host: true });
  } else {
    for (const batch of opts.batches ?? [32, 64]) {
      cases.push({ name: `vgg16-b${batch}`, config: defaultConfig({ tags: 5000 }), batch, runs: 10, host: batch === 32 });
      cases.push({ name: `vgg16-b${batch}-tf32`, config: defaultConfig({ tags: 5000 }), batch, runs: 10, host: false, tf32: true });
    }
  }
  for (const k of cases) {
    console.error(`native: ${k.name} on ${device}, batch ${k.batch}, ${k.runs} runs`);
    const t = await timeSteps(k.config, k.batch, k.runs, device, k.host, k.tf32);
    const nat = median(t.native);
    const host = t.host.length ? median(t.host) : null;
    rows[k.name] = { batch: k.batch, nativeSecondsPerStep: nat, hostSecondsPerStep: host, nativeImgPerS: k.batch / nat, hostImgPerS: host ? k.batch / host : null, speedup: host ? host / nat : null, runs: t };
    console.log(`| train step ${k.name}, batch ${k.batch}, ${device} | native ${(k.batch / nat).toFixed(2)} img/s (${(nat * 1000).toFixed(1)} ms) | onnxruntime-node ${host ? `${(k.batch / host).toFixed(2)} img/s (${(host * 1000).toFixed(1)} ms)` : '-'} | ${host ? `native ${(host / nat).toFixed(2)}× faster` : ''} |`);
  }
  const f = await saveResult(`native-${device}`, { device, rows });
  console.log(`  results in ${f}`);
  return rows;
}
