// `npm run bench -- coverage [--device cuda]`: every graph the trainer and `export` build (the train
// step in float32 and float16, eval, int8 calibration, the float32 and float16 inference exports), as
// both engines load them (src/train/engine.ts), run in ONNX Runtime with its profiler on the device:
// which execution provider ran each node — the nodes off the device named, with the Memcpy copies they
// cost — and the train steps' ops by time, the top ten with their share. On CUDA, bench/gpu.sh runs it
// with CUDA_LAUNCH_BLOCKING=1: the profiler times a node's launch, and only blocking launches make that
// its kernels' time. On the CPU (the dry run) every node is the CPU provider's by definition; the run
// checks the path and the output.
import {
  profileGraph,
  PLACEMENT_MODEL,
  placementGraphs,
  trainStepGraph,
  type GraphCoverage,
} from '../src/train/placement.js';
import type { OpShare } from '../src/runtime/profile.js';
import { defaultConfig } from '../training/params.js';
import { saveResult } from './common.js';

export async function benchCoverage(opts: {
  device?: 'cpu' | 'cuda';
  /** bench/gpu.sh --dry-run: the device run's steps on the CPU, its results named as the device run's. */
  rehearse?: boolean;
}): Promise<Record<string, unknown>> {
  const device = opts.device ?? 'cpu';
  const small = device === 'cpu';
  const rehearse = small && opts.rehearse === true;
  // Where nodes run does not depend on the widths: the tiny model's graphs show it in seconds. The op
  // profile is the full model's train step (on the device; the tiny one's on the CPU).
  const full = small ? PLACEMENT_MODEL : defaultConfig({ tags: 5000 });
  const graphs = placementGraphs(device);
  const coverage: GraphCoverage[] = [];
  console.log('| graph (tiny model) | nodes | off the device | copies |\n|---|---|---|---|');
  for (const [name, bytes] of graphs) {
    const c = await profileGraph(name, bytes(), device, 4);
    coverage.push(c);
    const off = c.offDevice.length ? c.offDevice.map((n) => `${n.op} (${n.provider})`).join(', ') : 'none';
    console.log(`| ${name} | ${c.nodes} | ${off} | ${c.copies} |`);
  }
  const batch = small ? 4 : 16;
  const profile: { graph: string; batch: number; top: OpShare[] }[] = [];
  for (const fp16 of [false, true]) {
    const graph = `train step ${small ? 'tiny' : 'VGG16'}, ${fp16 ? 'float16' : 'float32'}`;
    const { top } = await profileGraph(graph, trainStepGraph(full, device, fp16), device, batch);
    profile.push({ graph, batch, top });
    console.log(`${graph}, batch ${batch}: ${top.map((t) => `${t.op} ${(100 * t.share).toFixed(0)}%`).join(', ')}`);
  }
  const file = await saveResult(`coverage-${rehearse ? 'cuda' : device}`, {
    device,
    rehearsal: rehearse,
    launchBlocking: process.env.CUDA_LAUNCH_BLOCKING === '1',
    coverage,
    profile,
  });
  console.log(`results: ${file}`);
  return { coverage, profile };
}
