// ONNX Runtime's profiler output (a Chrome trace: one event per node run, with its op, time and input
// and output shapes) read into per-op totals, and the multiply-adds of each GEMM-like node counted
// from the shapes it actually ran with: the graph's FLOPs as executed, independent of any formula.
import { readFile } from 'node:fs/promises';

export interface NodeRun {
  node: string;
  op: string;
  /** The execution provider that ran it (CPUExecutionProvider, CUDAExecutionProvider, …). */
  provider: string;
  us: number;
  inputs: number[][];
  outputs: number[][];
}

type ShapeList = Record<string, number[]>[] | undefined;
const shapes = (list: ShapeList): number[][] => (list ?? []).map((o) => Object.values(o)[0] ?? []);

/** Node runs of a profile file (events of category Node ending in `_kernel_time`); `lastRun`: only those of the last session run. */
export async function readProfile(file: string, opts: { lastRun?: boolean } = {}): Promise<NodeRun[]> {
  const events = JSON.parse(await readFile(file, 'utf8')) as {
    cat?: string;
    name?: string;
    ts?: number;
    dur?: number;
    args?: Record<string, unknown>;
  }[];
  const last = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').at(-1);
  const inLast = (ts = 0): boolean => !opts.lastRun || !last || (ts >= last.ts! && ts <= last.ts! + last.dur!);
  return events
    .filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time') && inLast(e.ts))
    .map((e) => ({
      node: e.name!.replace(/_kernel_time$/, ''),
      op: String(e.args?.op_name ?? '?'),
      provider: String(e.args?.provider ?? '?'),
      us: e.dur ?? 0,
      inputs: shapes(e.args?.input_type_shape as ShapeList),
      outputs: shapes(e.args?.output_type_shape as ShapeList),
    }));
}

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const CONV = new Set(['Conv', 'FusedConv', 'NchwcConv', 'ConvTranspose']);
const GEMM = new Set(['MatMul', 'FusedMatMul', 'Gemm', 'FusedGemm']);

/** Multiply-adds of one node run (0 for ops that are not convolutions or matrix products). */
export function multiplyAdds(r: NodeRun): number {
  const out = r.outputs[0];
  if (!out) return 0;
  if (CONV.has(r.op)) {
    // N·Ho·Wo output positions, each a dot product over the whole kernel: for groups = 1, numel(W)
    // multiply-adds per position, whatever the layout (NCHW, or NCHWc with channels blocked last).
    const w = r.inputs[1];
    if (!w || out.length < 4) return 0;
    const positions = r.op === 'ConvTranspose' ? numel(r.inputs[0]!) / r.inputs[0]![1]! : out[0]! * out[2]! * out[3]!;
    return positions * numel(w);
  }
  if (GEMM.has(r.op)) {
    const a = r.inputs[0];
    if (!a || a.length < 2 || out.length < 2) return 0;
    const m = out.at(-2)!;
    const [ar, ac] = [a.at(-2)!, a.at(-1)!];
    const k = ar === m && ac !== m ? ac : ac === m && ar !== m ? ar : ac;
    return numel(out) * k;
  }
  return 0;
}

export interface OpShare {
  op: string;
  ms: number;
  share: number;
  gflop: number;
  runs: number;
}

/** Time per op type (summed over nodes), largest first, with the FLOPs (2 × multiply-adds) each did. */
export function opShares(runs: NodeRun[]): OpShare[] {
  const by = new Map<string, OpShare>();
  let total = 0;
  for (const r of runs) {
    const s = by.get(r.op) ?? { op: r.op, ms: 0, share: 0, gflop: 0, runs: 0 };
    s.ms += r.us / 1000;
    s.gflop += (2 * multiplyAdds(r)) / 1e9;
    s.runs += 1;
    by.set(r.op, s);
    total += r.us / 1000;
  }
  return [...by.values()].map((s) => ({ ...s, share: total > 0 ? s.ms / total : 0 })).sort((a, b) => b.ms - a.ms);
}
