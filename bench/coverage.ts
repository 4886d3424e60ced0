// `npm run bench -- coverage [--device cuda]`: every graph the trainer and `export` build (the train
// step in float32 and float16, eval, int8 calibration, the float32 and float16 inference exports), as
// both engines load them (src/train/engine.ts), run in ONNX Runtime with its profiler on the device:
// which execution provider ran each node — the nodes off the device named, with the Memcpy copies they
// cost — and the train steps' ops by time, the top ten with their share. On CUDA, bench/gpu.sh runs it
// with CUDA_LAUNCH_BLOCKING=1: the profiler times a node's launch, and only blocking launches make that
// its kernels' time. On the CPU (the dry run) every node is the CPU provider's by definition; the run
// checks the path and the output.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { opShares, readProfile, type OpShare } from '../src/runtime/profile.js';
import { engineOptions } from '../src/train/engine.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { buildCalibrationGraph } from '../training/graphs.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS, type ModelConfig } from '../training/params.js';
import { saveResult } from './common.js';

const PROVIDER = { cpu: 'CPUExecutionProvider', cuda: 'CUDAExecutionProvider' } as const;
const COPIES = new Set(['MemcpyFromHost', 'MemcpyToHost']);

export interface GraphCoverage {
  graph: string;
  nodes: number;
  /** Node runs per execution provider. */
  providers: Record<string, number>;
  /** Nodes another provider than the device's ran (Memcpy copies apart), by op. */
  offDevice: { op: string; node: string; provider: string }[];
  /** Host ↔ device copies ONNX Runtime inserted around them. */
  copies: number;
  /** Ops by time, the ten largest. */
  top: OpShare[];
}

/** Random values of every input of `session` (symbolic dimensions: `batch`), as the profiler needs. */
function feedsOf(session: ort.InferenceSession, batch: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor) throw new Error(`coverage: input ${m.name} is not a tensor`);
    const dims = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : batch));
    const n = dims.reduce((a, b) => a * b, 1);
    const data =
      m.type === 'float32'
        ? Float32Array.from({ length: n }, () => (Math.random() - 0.5) * 0.1 + (dims.length === 0 ? 1 : 0))
        : m.type === 'uint8'
          ? Uint8Array.from({ length: n }, () => (Math.random() < 0.5 ? 1 : 0))
          : m.type === 'int64'
            ? BigInt64Array.from({ length: n }, () => 1n)
            : m.type === 'bool'
              ? Uint8Array.from({ length: n }, () => 1)
              : m.type === 'float16'
                ? new Uint16Array(n)
                : undefined;
    if (!data) throw new Error(`coverage: no random values for input ${m.name} of type ${m.type}`);
    feeds[m.name] = new ort.Tensor(m.type as 'float32', data as Float32Array, dims);
  }
  return feeds;
}

/** One graph run twice on `device` with the profiler; its providers, off-device nodes and top ops from the second run. */
async function profileGraph(
  graph: string,
  bytes: Uint8Array,
  device: 'cpu' | 'cuda',
  batch: number,
): Promise<GraphCoverage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-coverage-'));
  try {
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: device === 'cuda' ? [{ name: 'cuda' }, 'cpu'] : ['cpu'],
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'run'),
    });
    const feeds = feedsOf(session, batch);
    for (let i = 0; i < 2; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const file = (await readdir(dir)).find((f) => f.endsWith('.json'));
    if (!file) throw new Error(`coverage: ${graph}: the profiler wrote no file`);
    const runs = await readProfile(path.join(dir, file), { lastRun: true });
    const providers: Record<string, number> = {};
    for (const r of runs) providers[r.provider] = (providers[r.provider] ?? 0) + 1;
    return {
      graph,
      nodes: runs.length,
      providers,
      offDevice: runs
        .filter((r) => r.provider !== PROVIDER[device] && !COPIES.has(r.op))
        .map((r) => ({ op: r.op, node: r.node, provider: r.provider })),
      copies: runs.filter((r) => COPIES.has(r.op)).length,
      top: opShares(runs).slice(0, 10),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchCoverage(opts: {
  device?: 'cpu' | 'cuda';
  /** bench/gpu.sh --dry-run: the device run's steps on the CPU, its results named as the device run's. */
  rehearse?: boolean;
}): Promise<Record<string, unknown>> {
  const device = opts.device ?? 'cpu';
  const small = device === 'cpu';
  const rehearse = small && opts.rehearse === true;
  // Where nodes run does not depend on the widths: the tiny model's graphs show it in seconds. The op
  // profile is the full model's train step (on the device; the tiny one's in the dry run).
  const tiny = defaultConfig({ tags: 69, widths: [...VGG16_TINY_WIDTHS], imageSize: 64, hidden: 64, freeze: 0 });
  const full = small ? tiny : defaultConfig({ tags: 5000 });
  const train = (config: ModelConfig, fp16: boolean) => engineOptions(config, { device, adam: 'in-place', fp16 });
  const params = initParams(tiny, 1);
  const tags = Array.from({ length: tiny.tags }, (_, i) => `t${i}`);
  const meta = { tags, categories: tags.map(() => 0), pad: 'center' as const, source: 'coverage' };
  const graphs: [string, () => Uint8Array][] = [
    ['train step, float32', () => train(tiny, false).trainModel],
    ['train step, float16', () => train(tiny, true).trainModel],
    ['eval', () => train(tiny, false).evalModel],
    ['int8 calibration', () => buildCalibrationGraph(tiny, params).encode()],
    ['inference export, float32', () => encodeInferenceModel(tiny, params, meta)],
    ['inference export, float16', () => encodeInferenceModel(tiny, params, { ...meta, fp16: true })],
  ];
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
    const { top } = await profileGraph(graph, train(full, fp16).trainModel, device, batch);
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
