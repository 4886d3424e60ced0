// `npm run bench -- native`: per-step time of the native TrainSession (state resident in the runtime)
// against the same fused step graph through onnxruntime-node (state copied in and out every step),
// and on the CPU its in-place Adam against Adam in the step graph, for the tiny and the full-size
// model on one device, alternating turns, medians.
import { TrainSession } from '../src/train/train-session.js';
import type { Device } from '../src/runtime/providers.js';
import { randomBatch } from '../training/gradcheck.js';
import { HostTrainSession } from '../training/host-session.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS, type ModelConfig } from '../training/model.js';
import { median, saveResult } from './common.js';

type Side = 'native' | 'fused' | 'host';

/**
 * Seconds per step of the native session (its default Adam: in place on the CPU), the native session
 * with Adam fused into the step graph (CPU: the in-place pass's baseline), and onnxruntime-node's
 * fused step. Turns of 3 steps per side, the median of each turn: memory left idle while another side
 * runs comes back slowly on this project's VM, so each side gets back to its steady state in its turn.
 */
async function timeSteps(c: ModelConfig, batch: number, runs: number, device: Device, withHost: boolean, tf32 = false): Promise<Record<Side, number[]>> {
  const params = initParams(c, 1);
  const data = randomBatch(c, batch, 1);
  const sides = new Map<Side, () => Promise<unknown>>();
  const native = await TrainSession.create(c, { params }, { device, tf32 });
  sides.set('native', () => native.step(data.images, data.labels, batch, 0.001));
  const fused = device === 'cpu' ? await TrainSession.create(c, { params }, { device, adam: 'fused' }) : null;
  if (fused) sides.set('fused', () => fused.step(data.images, data.labels, batch, 0.001));
  const host = withHost ? await HostTrainSession.create(c, params, { fused: true, executionProviders: [device] }) : null;
  if (host) sides.set('host', () => host.trainStep(data, 0.001));
  const out: Record<Side, number[]> = { native: [], fused: [], host: [] };
  for (const f of sides.values()) await f();
  for (let r = 0; r < runs; r++) {
    for (const [side, f] of sides) {
      const turn: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await f();
        turn.push((performance.now() - t0) / 1000);
      }
      out[side].push(median(turn));
    }
  }
  native.dispose();
  fused?.dispose();
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
    const fused = t.fused.length ? median(t.fused) : null;
    rows[k.name] = {
      batch: k.batch, nativeSecondsPerStep: nat, fusedSecondsPerStep: fused, hostSecondsPerStep: host, nativeImgPerS: k.batch / nat,
      fusedImgPerS: fused ? k.batch / fused : null, hostImgPerS: host ? k.batch / host : null, speedup: host ? host / nat : null, inPlaceSpeedup: fused ? fused / nat : null, runs: t,
    };
    const img = (sec: number): string => `${(k.batch / sec).toFixed(2)} img/s (${(sec * 1000).toFixed(1)} ms)`;
    console.log(`| train step ${k.name}, batch ${k.batch}, ${device} | native ${img(nat)} | onnxruntime-node ${host ? img(host) : '-'} | ${host ? `native ${(host / nat).toFixed(2)}× faster` : ''} |`);
    if (fused) console.log(`| train step ${k.name}, batch ${k.batch}, ${device}: in-place Adam vs Adam in the step graph (both native) | ${img(nat)} | ${img(fused)} | in place ${(fused / nat).toFixed(2)}× faster |`);
  }
  const f = await saveResult(`native-${device}`, { device, rows });
  console.log(`  results in ${f}`);
  return rows;
}
