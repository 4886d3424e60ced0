// Where ONNX Runtime runs each node of our graphs on a device (`doctor --plan`, and the GPU run's
// coverage step, bench/coverage.ts): a graph run twice with the profiler, each node's execution
// provider read from the profile, the nodes off the device named with the Memcpy copies they cost, and
// the ops by time. The graphs are those the trainer and `export` build (engine.ts): the train step in
// float32 and float16, eval, int8 calibration, the float32 and float16 inference exports — of the tiny
// model, since where a node runs does not depend on the widths.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { opShares, readProfile } from '../runtime/profile.js';
import type { NodeRun, OpShare } from '../runtime/profile.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { buildCalibrationGraph } from '../../training/graphs.js';
import { defaultConfig, initParams, VGG16_TINY_WIDTHS, type ModelConfig } from '../../training/params.js';
import { engineOptions } from './engine.js';

const PROVIDER = { cpu: 'CPUExecutionProvider', cuda: 'CUDAExecutionProvider' } as const;
const COPIES = new Set(['MemcpyFromHost', 'MemcpyToHost']);

export interface GraphCoverage {
  graph: string;
  nodes: number;
  /** Node runs per execution provider. */
  providers: Record<string, number>;
  /** Nodes another provider than the device's ran (the Memcpy copies are the device provider's kernels). */
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
export async function profileGraph(
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
    return placementOf(graph, await readProfile(path.join(dir, file), { lastRun: true }), device);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A graph's placement from its node runs: per provider, those off `device`, the copies, the top ten ops. */
export function placementOf(graph: string, runs: readonly NodeRun[], device: 'cpu' | 'cuda'): GraphCoverage {
  const providers: Record<string, number> = {};
  for (const r of runs) providers[r.provider] = (providers[r.provider] ?? 0) + 1;
  return {
    graph,
    nodes: runs.length,
    providers,
    offDevice: runs
      .filter((r) => r.provider !== PROVIDER[device])
      .map((r) => ({ op: r.op, node: r.node, provider: r.provider })),
    copies: runs.filter((r) => COPIES.has(r.op)).length,
    top: opShares([...runs]).slice(0, 10),
  };
}

/** The tiny model, whose graphs hold every node type of the full one. */
export const PLACEMENT_MODEL: ModelConfig = defaultConfig({
  tags: 69,
  widths: [...VGG16_TINY_WIDTHS],
  imageSize: 64,
  hidden: 64,
  freeze: 0,
});

/** The train step of `config` on `device` as both engines load it, in float32 or float16. */
export const trainStepGraph = (config: ModelConfig, device: 'cpu' | 'cuda', fp16: boolean): Uint8Array =>
  engineOptions(config, { device, adam: 'in-place', fp16 }).trainModel;

/** Every graph the trainer and `export` build, of the tiny model, by name (built when called). */
export function placementGraphs(device: 'cpu' | 'cuda'): [string, () => Uint8Array][] {
  const c = PLACEMENT_MODEL;
  const params = initParams(c, 1);
  const tags = Array.from({ length: c.tags }, (_, i) => `t${i}`);
  const meta = { tags, categories: tags.map(() => 0), pad: 'center' as const, source: 'placement' };
  return [
    ['train step, float32', () => trainStepGraph(c, device, false)],
    ['train step, float16', () => trainStepGraph(c, device, true)],
    ['eval', () => engineOptions(c, { device, adam: 'in-place' }).evalModel],
    ['int8 calibration', () => buildCalibrationGraph(c, params).encode()],
    ['inference export, float32', () => encodeInferenceModel(c, params, meta)],
    ['inference export, float16', () => encodeInferenceModel(c, params, { ...meta, fp16: true })],
  ];
}

/** One line of a graph's placement: its nodes, those off the device by op, the copies. */
export function placementLine(g: GraphCoverage): string {
  const by = new Map<string, number>();
  for (const n of g.offDevice) by.set(`${n.op} (${n.provider})`, (by.get(`${n.op} (${n.provider})`) ?? 0) + 1);
  const off = by.size ? [...by].map(([k, n]) => (n > 1 ? `${n}× ${k}` : k)).join(', ') : 'none';
  return `${g.graph}: ${g.nodes} nodes, off the device: ${off}; host ↔ device copies: ${g.copies}`;
}
