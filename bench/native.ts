// `npm run bench -- native`: per-step time of TrainSession on NativeEngine (state resident in the runtime)
// against the same fused step graph on OrtEngine (onnxruntime-node, state copied in and out every step), and
// on the CPU its two CPU defaults against the graphs they replace: Adam in place against Adam in the
// step graph, frozen convs baked into the graphs against frozen convs as inputs. Tiny and full-size
// model on one device, alternating turns, medians.
import { TrainSession, type TrainSessionOptions } from '../src/train/train-session.js';
import type { Device } from '../src/runtime/providers.js';
import { randomBatch } from '../training/gradcheck.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS, type ModelConfig } from '../training/params.js';
import { spawnSync } from 'node:child_process';
import { trainStepFlops } from '../training/flops.js';
import { median, saveResult } from './common.js';

type Side = { name: string; native?: TrainSessionOptions };

/** Dense peak TFLOP/s by GPU name (NVIDIA's datasheets: H100/H200 SXM 67 fp32, 495 TF32, 989 fp16). */
const PEAKS: { match: RegExp; fp32: number; tf32: number; fp16: number }[] = [
  { match: /H100|H200/, fp32: 67, tf32: 495, fp16: 989 },
];

/** The first GPU's name, from nvidia-smi (undefined where there is none). */
function gpuName(): string | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]!.trim() : undefined;
}

/** TFLOP/s of a side's steps, and the share of this GPU's dense peak in its precision (where known). */
function rate(c: ModelConfig, imgPerS: number, side: Side, gpu: string | undefined) {
  const tflops = (trainStepFlops(c) * imgPerS) / 1e12;
  const precision = side.native?.fp16 ? 'fp16' : side.native?.tf32 ? 'tf32' : 'fp32';
  const peak = PEAKS.find((p) => gpu && p.match.test(gpu))?.[precision];
  return { precision, tflops, peakPercent: peak ? (100 * tflops) / peak : undefined };
}

/** "N TFLOP/s, P% of the dense peak" for a side's precision on this GPU. */
function throughput(c: ModelConfig, imgPerS: number, side: Side, gpu: string | undefined): string {
  const r = rate(c, imgPerS, side, gpu);
  return `${r.tflops.toFixed(1)} TFLOP/s${r.peakPercent ? `, ${r.peakPercent.toFixed(0)}% of ${gpu}'s ${r.precision} peak` : ''}`;
}

/**
 * Seconds per step of each side, alternating turns of 3 steps per side, the median of each turn:
 * memory left idle while another side runs comes back slowly on this project's VM, so each side gets
 * back to its steady state in its turn. Sessions are made one side after another and all freed at the end.
 */
async function timeSteps(
  c: ModelConfig,
  batch: number,
  runs: number,
  device: Device,
  sides: Side[],
): Promise<Record<string, number[]>> {
  const params = initParams(c, 1);
  const data = randomBatch(c, batch, 1);
  const steps = new Map<string, () => Promise<unknown>>();
  const frees: (() => Promise<void> | void)[] = [];
  for (const side of sides) {
    const s = await TrainSession.create(c, { params }, { device, ...side.native });
    steps.set(side.name, () => s.step(data.images, data.labels, batch, 0.001));
    frees.push(() => s.dispose());
  }
  const out: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s.name, []]));
  for (const f of steps.values()) await f();
  for (let r = 0; r < runs; r++) {
    for (const [name, f] of steps) {
      const turn: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await f();
        turn.push((performance.now() - t0) / 1000);
      }
      out[name]!.push(median(turn));
    }
  }
  for (const free of frees) await free();
  return out;
}

interface Case {
  name: string;
  config: ModelConfig;
  batch: number;
  runs: number;
  /** Each comparison: [ours, reference] sides and the row's words. */
  rows: { label: string; ours: Side; ref: Side }[];
}

export async function benchNative(opts: {
  quick: boolean;
  device?: Device;
  batches?: number[];
  /** bench/gpu.sh --dry-run: the CUDA cases and rows, with the tiny model, on the CPU. */
  rehearse?: boolean;
}): Promise<Record<string, unknown>> {
  const device = opts.device ?? 'cpu';
  const rehearse = opts.rehearse === true && device === 'cpu';
  const gpu = device === 'cuda' ? gpuName() : undefined;
  const results: Record<string, unknown> = {};
  const cases: Case[] = [];
  const native: Side = { name: 'native' };
  const host: Side = { name: 'onnxruntime-node', native: { engine: 'ort' } };
  const engines = { label: 'native vs onnxruntime-node', ours: native, ref: host };
  if (device === 'cpu' && !rehearse) {
    const inPlace = {
      label: 'in-place Adam vs Adam in the step graph (both native)',
      ours: native,
      ref: { name: 'Adam in the graph', native: { adam: 'fused' } },
    } as const;
    const baked = {
      label: 'frozen convs baked into the graphs vs as inputs (both native)',
      ours: native,
      ref: { name: 'frozen as inputs', native: { bakeFrozen: false } },
    } as const;
    const tiny = defaultConfig({ tags: 69, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 64, freeze: 0 });
    cases.push({ name: 'tiny', config: tiny, batch: 32, runs: opts.quick ? 10 : 40, rows: [engines, inPlace] });
    const full = defaultConfig({ tags: 5000 });
    // Two cases for the full model: three full-size sessions at once would need ~15 GB.
    cases.push({ name: 'vgg16', config: full, batch: 8, runs: opts.quick ? 2 : 5, rows: [engines, inPlace] });
    cases.push({ name: 'vgg16-baked', config: full, batch: 8, runs: opts.quick ? 2 : 5, rows: [baked] });
  } else {
    // The device run's cases: float32, TF32 and float16 (mixed, with loss scaling) per batch; rehearsed
    // on the CPU with the tiny model (TF32 is a CUDA mode: the CPU runs that row in float32).
    const config = (): ModelConfig =>
      rehearse
        ? defaultConfig({ tags: 69, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 64, freeze: 0 })
        : defaultConfig({ tags: 5000 });
    const runs = rehearse ? 2 : 6;
    for (const batch of opts.batches ?? [32, 64]) {
      const sides: [string, Side][] = [
        // OrtEngine trains on the CPU only: on CUDA each row stands alone.
        ['float32', native],
        ['TF32', { name: 'tf32', native: { tf32: !rehearse } }],
        ['float16', { name: 'fp16', native: { fp16: true } }],
      ];
      for (const [label, side] of sides)
        cases.push({
          name: `${rehearse ? 'tiny' : 'vgg16'}-b${batch}${side === native ? '' : `-${side.name}`}`,
          config: config(),
          batch,
          runs,
          rows: [{ label, ours: side, ref: side }],
        });
    }
  }
  for (const k of cases) {
    const sides = [...new Map(k.rows.flatMap((r) => [r.ours, r.ref]).map((s) => [s.name, s])).values()];
    console.error(
      `native: ${k.name} on ${device}, batch ${k.batch}, ${k.runs} turns of ${sides.map((s) => s.name).join(', ')}`,
    );
    const t = await timeSteps(k.config, k.batch, k.runs, device, sides);
    const sec = Object.fromEntries(Object.entries(t).map(([name, xs]) => [name, median(xs)]));
    const ours = k.rows[0]!.ours;
    results[k.name] = {
      batch: k.batch,
      secondsPerStep: sec,
      imgPerS: Object.fromEntries(Object.entries(sec).map(([n, s]) => [n, k.batch / s])),
      // The first row's own side, as bench/gpu-report.ts tabulates it.
      ...rate(k.config, k.batch / sec[ours.name]!, ours, gpu),
      side: ours.name,
      runs: t,
    };
    const img = (s: number): string => `${(k.batch / s).toFixed(2)} img/s (${(s * 1000).toFixed(1)} ms)`;
    for (const r of k.rows) {
      const [a, b] = [sec[r.ours.name]!, sec[r.ref.name]!];
      const vs = r.ours === r.ref ? '' : `${(b / a).toFixed(2)}×`;
      console.log(
        `| train step ${k.name}, batch ${k.batch}, ${device}: ${r.label} (\`native\`) | ${img(a)} | ${r.ours === r.ref ? '' : `${r.ref.name}: ${img(b)}`} | ${vs} | ${device === 'cuda' || rehearse ? throughput(k.config, k.batch / a, r.ours, gpu) : ''} |`,
      );
    }
  }
  const f = await saveResult(`native-${rehearse ? 'cuda' : device}`, {
    device,
    gpu,
    rehearsal: rehearse,
    rows: results,
  });
  console.log(`  results in ${f}`);
  return results;
}
