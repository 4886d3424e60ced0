// Mixed precision for the train graphs: which op types run in the half type (float16) and which stay
// float32, as one table, and the pass that rewrites a float32 graph accordingly. Master weights, Adam
// moments, batch-norm statistics, the loss and every graph input and output stay float32; the
// convolutions and GEMMs (forward, dX and dW) take float16 operands; ops that only move, select or
// compare values run in whatever type reaches them, so Conv → Relu → MaxPool → Conv stays float16.
import { DataType, type ModelJson, type NodeJson } from '../src/onnx/proto.js';

/** How an op type runs under mixed precision. */
export type OpPrecision =
  /** in the half type: its float inputs are cast down (tensor-core work) */
  | 'half'
  /** in the half type when every non-constant float input already is, else float32 */
  | 'follow'
  /** float32 always (reductions, batch norm, the loss, Adam, element-wise arithmetic) */
  | 'float';

/** Every op type of our train and eval graphs (a test builds each variant and checks none is missing). */
export const OP_PRECISION: Readonly<Record<string, OpPrecision>> = {
  Conv: 'half',
  Gemm: 'half',
  MatMul: 'half',
  Relu: 'follow',
  MaxPool: 'follow',
  Transpose: 'follow',
  Reshape: 'follow',
  Flatten: 'follow',
  Slice: 'follow',
  Concat: 'follow',
  Pad: 'follow',
  Squeeze: 'follow',
  Unsqueeze: 'follow',
  Identity: 'follow',
  SpaceToDepth: 'follow',
  DepthToSpace: 'follow',
  Gather: 'follow',
  Greater: 'follow',
  Where: 'follow',
  BatchNormalization: 'float',
  ReduceMean: 'float',
  ReduceSum: 'float',
  Add: 'float',
  Sub: 'float',
  Mul: 'float',
  Div: 'float',
  Sqrt: 'float',
  Reciprocal: 'float',
  Abs: 'float',
  Neg: 'float',
  Softplus: 'float',
  Sigmoid: 'float',
  Cast: 'float',
  Shape: 'float',
  Size: 'float',
  ArgMax: 'float',
  Equal: 'float',
  MaxUnpool: 'float',
  IsNaN: 'float',
  IsInf: 'float',
  Not: 'float',
  Or: 'float',
};

/** Ops whose outputs are never float, whatever their inputs; MaxPool's second output (Indices) neither. */
const NON_FLOAT_RESULT = new Set(['Shape', 'Size', 'ArgMax', 'Greater', 'Equal', 'IsNaN', 'IsInf', 'Not', 'Or']);

export type HalfType = 'float16';
const HALF: Record<HalfType, number> = { float16: 10 };

export interface MixedPrecisionReport {
  /** Nodes by op type that run in the half type. */
  half: Record<string, number>;
  /** Cast nodes added (down and up). */
  casts: number;
}

/**
 * The graph with the op types OP_PRECISION marks run in `half`, casts inserted where float32 and half
 * values meet (and unused ones dropped). Graph inputs, outputs and initializers keep their types.
 */
export function mixedPrecision(
  model: ModelJson,
  half: HalfType = 'float16',
): { model: ModelJson; report: MixedPrecisionReport } {
  const g = model.graph;
  const isFloat = new Set<string>();
  for (const v of g.input) if (v.type.tensor_type.elem_type === DataType.float32) isFloat.add(v.name);
  const constants = new Set<string>();
  for (const t of g.initializer)
    if (t.data_type === DataType.float32) {
      isFloat.add(t.name!);
      constants.add(t.name!);
    }
  const used = new Set<string>([...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name!)]);
  for (const n of g.node) for (const o of n.output) used.add(o);
  const fresh = (hint: string): string => {
    let name = hint;
    for (let i = 1; used.has(name); i++) name = `${hint}_${i}`;
    used.add(name);
    return name;
  };
  const halfOf = new Map<string, string>();
  const nodes: NodeJson[] = [];
  const added = new Set<NodeJson>();
  const report: MixedPrecisionReport = { half: {}, casts: 0 };
  const cast = (input: string, output: string, to: number): void => {
    const node = {
      op_type: 'Cast',
      input: [input],
      output: [output],
      name: fresh(`amp_cast_${output}`),
      attribute: [{ name: 'to', type: 2, i: to }],
    };
    nodes.push(node);
    added.add(node);
  };
  const toHalf = (v: string): string => {
    let h = halfOf.get(v);
    if (!h) {
      h = fresh(`${v}_fp16`);
      cast(v, h, HALF[half]);
      halfOf.set(v, h);
    }
    return h;
  };
  for (const n of g.node) {
    const rule = OP_PRECISION[n.op_type];
    if (!rule)
      throw new Error(`mixed precision: no rule for op type ${n.op_type} (node ${n.name}); add it to OP_PRECISION`);
    const floatIns = n.input.filter((v) => isFloat.has(v));
    const live = floatIns.filter((v) => !constants.has(v));
    const runHalf =
      rule === 'half' ? floatIns.length > 0 : rule === 'follow' && live.length > 0 && live.every((v) => halfOf.has(v));
    const floatOuts = floatOutputs(n, floatIns.length > 0);
    for (const o of floatOuts) isFloat.add(o);
    if (!runHalf) {
      nodes.push(n);
      continue;
    }
    report.half[n.op_type] = (report.half[n.op_type] ?? 0) + 1;
    const input = n.input.map((v) => (isFloat.has(v) ? toHalf(v) : v));
    const renamed = new Map(floatOuts.map((o) => [o, fresh(`${o}_fp16`)]));
    nodes.push({ ...n, input, output: n.output.map((o) => renamed.get(o) ?? o) });
    for (const [o, h] of renamed) {
      cast(h, o, DataType.float32);
      halfOf.set(o, h);
    }
  }
  const kept = dropUnread(nodes, added, new Set(g.output.map((v) => v.name)));
  report.casts = kept.filter((n) => added.has(n)).length;
  return { model: { ...model, graph: { ...g, node: kept } }, report };
}

/** The outputs of `n` that are float32 when it runs in float32 (`floatIn`: some input is float). */
function floatOutputs(n: NodeJson, floatIn: boolean): string[] {
  if (NON_FLOAT_RESULT.has(n.op_type)) return [];
  if (n.op_type === 'Cast') return n.attribute?.find((a) => a.name === 'to')?.i === DataType.float32 ? n.output : [];
  if (!floatIn) return [];
  return n.op_type === 'MaxPool' ? n.output.slice(0, 1) : n.output;
}

/** `nodes` without the `added` ones whose output nobody reads (repeated until none is left). */
function dropUnread(nodes: NodeJson[], added: Set<NodeJson>, outputs: Set<string>): NodeJson[] {
  let kept = nodes;
  for (;;) {
    const read = new Set(kept.flatMap((n) => n.input));
    const next = kept.filter((n) => !added.has(n) || read.has(n.output[0]!) || outputs.has(n.output[0]!));
    if (next.length === kept.length) return kept;
    kept = next;
  }
}
