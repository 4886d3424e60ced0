// Static int8 quantization in ONNX's QDQ form, with activation ranges calibrated on images:
//   every activation a quantized layer reads or writes passes QuantizeLinear → DequantizeLinear at a
//   fixed uint8 scale and zero point (min/max over the calibration images, always holding 0);
//   weights are int8 per output channel on ±63 through DequantizeLinear; biases int32 at input scale ×
//   weight scale. ONNX Runtime's graph optimizer fuses DQ → Conv → Q into QLinearConv, DQ → MatMul → Q
//   into QLinearMatMul and DQ → Gemm → Q into QGemm (training/int8.ts builds our own export the
//   same way). Convolutions are quantized here too, except a first one reading ≤ 4 channels (an RGB
//   stem: its input is the image, its cost small, its error everywhere after it).
import {
  decodeNode,
  decodeTensor,
  decodeValueInfo,
  encodeTensor,
  encodeValueInfo,
  readOpsets,
  tensorToFloat32,
  type AttributeJson,
  type NodeJson,
  type TensorProtoJson,
} from '../onnx/proto.js';
import { tensorProto } from '../onnx/graph.js';
import { activationQuant, quantizeWeights } from '../../training/int8.js';
import { rewriteGraph } from '../onnx/wire.js';
import { isExternal } from '../model/external-data.js';
import { hasSubgraph, Rewrite } from '../onnx/rewrite.js';
import { MIN_DIM, moved, weightOf, type DynamicResult, type ExternalWeights, type QuantizedLayer } from './dynamic.js';

/** A layer static mode quantizes: its weight laid out [channels along `axis`], its activations. */
interface Planned {
  at: number;
  node: NodeJson;
  w: TensorProtoJson;
  /** The axis of the weight that holds the output channels. */
  axis: 0 | 1;
  layer: QuantizedLayer;
  /** The activations it reads and writes (the output after a Relu that alone reads the layer's). */
  tensors: [string, string];
}

export interface StaticPlan {
  layers: QuantizedLayer[];
  /** Each layer's input and output activation, in `layers`' order. */
  io: [string, string][];
  /** The activations to calibrate: each quantized layer's input and output. */
  tensors: string[];
}

export type Ranges = Map<string, { lo: number; hi: number }>;

const attr = (n: NodeJson, name: string): AttributeJson | undefined => n.attribute?.find((a) => a.name === name);

/** Weights read from inside the file or from the checked external bytes (a view, no copy). */
export function initializerMap(initializers: Uint8Array[], external?: ExternalWeights): Map<string, TensorProtoJson> {
  const map = new Map<string, TensorProtoJson>();
  for (const bytes of initializers) {
    const t = decodeTensor(bytes);
    const b = isExternal(t) ? external?.bytes.get(t.name ?? '') : undefined;
    map.set(t.name ?? '', b ? { ...t, raw_data: b, external_data: [], data_location: 0 } : t);
  }
  return map;
}

/** No bias, or a constant float one of one value per output channel (it goes int32). */
function constantBias(node: NodeJson, inits: Map<string, TensorProtoJson>, channels: number): boolean {
  if (!node.input[2]) return true;
  const b = inits.get(node.input[2]);
  return !!b && b.data_type === 1 && b.dims.length === 1 && Number(b.dims[0]) === channels;
}

function plan(nodes: NodeJson[], inits: Map<string, TensorProtoJson>, keepFloat: ReadonlySet<string>): Planned[] {
  const out: Planned[] = [];
  // A layer reading the graph's input directly stays float, like an RGB stem: the input is the image.
  const produced = new Set(nodes.flatMap((n) => n.output));
  const readers = new Map<string, NodeJson[]>();
  for (const n of nodes) for (const i of n.input) readers.set(i, [...(readers.get(i) ?? []), n]);
  // DQ → Conv → Relu → Q is one QLinearConv with the Relu in it: quantize after the Relu.
  const io = (n: NodeJson): [string, string] => {
    const r = readers.get(n.output[0]!);
    return [n.input[0]!, r?.length === 1 && r[0]!.op_type === 'Relu' ? r[0]!.output[0]! : n.output[0]!];
  };
  nodes.forEach((node, at) => {
    const name = node.name || node.output[0]!;
    if (!produced.has(node.input[0] ?? '') || keepFloat.has(name)) return;
    if (node.op_type === 'Conv') {
      const w = inits.get(node.input[1] ?? '');
      if (!w || w.data_type !== 1 || w.dims.length !== 4 || w.data_location === 1) return;
      const [m, cg, kh, kw] = w.dims.map(Number) as [number, number, number, number];
      const group = Number(attr(node, 'group')?.i ?? 1);
      if (m < MIN_DIM || cg * group <= 4) return;
      if (!constantBias(node, inits, m)) return;
      out.push({
        at,
        node,
        w,
        axis: 0,
        layer: { node: name, weight: w.name ?? '', op: 'Conv', k: cg * kh * kw, n: m },
        tensors: io(node),
      });
      return;
    }
    const found = weightOf(node, inits);
    if (!found) return;
    const [rows, cols] = found.w.dims.map(Number) as [number, number];
    const [k, n] = found.transB ? [cols, rows] : [rows, cols];
    if (!constantBias(node, inits, n)) return;
    out.push({
      at,
      node,
      w: found.w,
      axis: found.transB ? 0 : 1,
      layer: { node: name, weight: found.w.name ?? '', op: node.op_type as 'MatMul' | 'Gemm', k, n },
      tensors: io(node),
    });
  });
  return out;
}

function checkOpset(model: Uint8Array): void {
  const opsets = readOpsets(model);
  const opset = opsets.get('') ?? opsets.get('ai.onnx') ?? 0;
  if (opset < 13)
    throw new Error(
      `the model imports ONNX opset ${opset}; per-channel DequantizeLinear needs opset 13 or later (--mode dynamic needs 11)`,
    );
}

/** The layers static mode quantizes in `model` and the activations to calibrate for them. */
export function planStatic(model: Uint8Array, external?: ExternalWeights): StaticPlan {
  checkOpset(model);
  let planned: Planned[] = [];
  rewriteGraph(model, (g) => {
    planned = plan(g.nodes.map(decodeNode), initializerMap(g.initializers, external), new Set());
    return g;
  });
  const tensors = new Set(planned.flatMap((p) => p.tensors));
  return { layers: planned.map((p) => p.layer), io: planned.map((p) => p.tensors), tensors: [...tensors] };
}

/**
 * `model` with `tensors` added to its outputs (float, shape left to the runtime) and its external
 * weights inside, for the calibration run: it is never kept.
 */
export function calibrationModel(model: Uint8Array, tensors: string[], external?: ExternalWeights): Uint8Array {
  return rewriteGraph(model, (g) => {
    const have = new Set((g.outputs ?? []).map((o) => decodeValueInfo(o).name));
    const extra = tensors
      .filter((t) => !have.has(t))
      .map((name) => encodeValueInfo({ name, type: { tensor_type: { elem_type: 1 } } }));
    const initializers = g.initializers.map((b) => {
      const t = decodeTensor(b);
      const inside = isExternal(t) ? external?.bytes.get(t.name ?? '') : undefined;
      return inside ? encodeTensor({ ...t, raw_data: inside, external_data: [], data_location: 0 }) : b;
    });
    return { nodes: g.nodes, initializers, outputs: [...(g.outputs ?? []), ...extra] };
  });
}

/** Min and max of each calibrated activation over a run's outputs, folded into `ranges`. */
export function foldRanges(ranges: Ranges, outputs: Record<string, { data: unknown }>, tensors: string[]): void {
  for (const t of tensors) {
    const data = outputs[t]?.data;
    if (!(data instanceof Float32Array)) continue;
    let { lo, hi } = ranges.get(t) ?? { lo: 0, hi: 0 };
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < lo) lo = v;
      else if (v > hi) hi = v;
    }
    ranges.set(t, { lo, hi });
  }
}

/**
 * `model` with the planned layers, but for the nodes named in `keepFloat`, in int8 and their
 * activations at the calibrated `ranges`.
 */
export function quantizeStatic(
  model: Uint8Array,
  ranges: Ranges,
  external?: ExternalWeights,
  keepFloat: ReadonlySet<string> = new Set(),
): DynamicResult {
  checkOpset(model);
  const layers: QuantizedLayer[] = [];
  const data: Uint8Array[] = [];
  const bytes = rewriteGraph(model, ({ nodes, initializers, outputs }) => {
    const decoded = nodes.map(decodeNode);
    const inits = initializerMap(initializers, external);
    const planned = plan(decoded, inits, keepFloat);
    const missing = planned.flatMap((p) => p.tensors).find((t) => !ranges.has(t));
    if (missing !== undefined) throw new Error(`no calibrated range for ${missing}`);
    const r = new Rewrite(
      new Set([...inits.keys(), ...decoded.flatMap((n) => [...n.input, ...n.output, ...(n.name ? [n.name] : [])])]),
    );
    const q = new Qdq(r, ranges);
    const byAt = new Map(planned.map((p) => [p.at, p]));
    const calibrated = new Set(planned.flatMap((p) => p.tensors));
    const front: Uint8Array[] = []; // weights' DQ and the graph inputs' Q/DQ go first
    const weightRead = new Set<string>();
    const body: Uint8Array[] = [];
    decoded.forEach((node, at) => {
      const p = byAt.get(at);
      const input = node.input.map((i) => q.renamed.get(i) ?? i);
      if (p) {
        input[1] = q.weight(p, front);
        if (node.input[2]) input[2] = q.bias(p, inits.get(node.input[2])!, front);
        layers.push(p.layer);
      } else for (const i of node.input) weightRead.add(i);
      r.emitNode({ ...node, input }, body);
      for (const o of node.output) if (calibrated.has(o)) q.quantize(o, body);
    });
    // Float weights and biases only quantized layers read are dropped (all kept under subgraphs).
    const subgraphs = hasSubgraph(decoded);
    const replaced = new Set(planned.flatMap((p) => [p.w.name ?? '', p.node.input[2] ?? '']));
    const kept = initializers
      .map((b) => ({ b, t: decodeTensor(b) }))
      .filter(({ t }) => subgraphs || weightRead.has(t.name ?? '') || !replaced.has(t.name ?? ''))
      .map(({ b, t }) => (isExternal(t) && external ? moved(t, external, data) : b));
    return { nodes: [...front, ...body], initializers: [...kept, ...r.added.map(encodeTensor)], outputs };
  });
  return { bytes, layers, data };
}

/** The QDQ pieces of one rewrite: activations' Q/DQ pairs, int8 weights, int32 biases. */
class Qdq {
  /** Each quantized activation → the DequantizeLinear output its readers now take. */
  readonly renamed = new Map<string, string>();
  constructor(
    private readonly r: Rewrite,
    private readonly ranges: Ranges,
  ) {}

  private init(hint: string, t: (name: string) => TensorProtoJson): string {
    const name = this.r.fresh(hint);
    this.r.added.push(t(name));
    return name;
  }

  scaleOf(tensor: string): { scale: number; zero: number } {
    const { lo, hi } = this.ranges.get(tensor)!;
    return activationQuant(lo, hi);
  }

  /** Q → DQ after `tensor`, appended to `into`; its readers are renamed to the DQ output. */
  quantize(tensor: string, into: Uint8Array[]): void {
    if (this.renamed.has(tensor)) return;
    const { scale, zero } = this.scaleOf(tensor);
    const s = this.init(`${tensor}_scale`, (n) => tensorProto(n, 'float32', [], Float32Array.of(scale)));
    const z = this.init(`${tensor}_zero_point`, (n) => tensorProto(n, 'uint8', [], Uint8Array.of(zero)));
    const quantized = this.r.fresh(`${tensor}_quantized`);
    const dq = this.r.fresh(`${tensor}_dequantized`);
    this.r.emitNode({ op_type: 'QuantizeLinear', input: [tensor, s, z], output: [quantized] }, into);
    this.r.emitNode({ op_type: 'DequantizeLinear', input: [quantized, s, z], output: [dq] }, into);
    this.renamed.set(tensor, dq);
  }

  private wq = new Map<string, { name: string; scale: Float32Array }>();

  /** The layer's weight as int8 per output channel through DequantizeLinear (made once per weight). */
  weight(p: Planned, into: Uint8Array[]): string {
    const key = `${p.w.name}/${p.axis}`;
    const have = this.wq.get(key);
    if (have) return have.name;
    const dims = p.w.dims.map(Number);
    const [rows, cols] = [dims[0]!, dims.slice(1).reduce((a, b) => a * b, 1)];
    const w = quantizeWeights(tensorToFloat32(p.w), rows, cols, p.axis);
    const ch = w.scale.length;
    const base = p.w.name ?? 'w';
    const q = this.init(`${base}_quantized`, (n) => tensorProto(n, 'int8', dims, w.q));
    const s = this.init(`${base}_scale`, (n) => tensorProto(n, 'float32', [ch], w.scale));
    const z = this.init(`${base}_zero_point`, (n) => tensorProto(n, 'int8', [ch], new Int8Array(ch)));
    const name = this.r.fresh(`${base}_dequantized`);
    this.r.emitNode(
      { op_type: 'DequantizeLinear', input: [q, s, z], output: [name], attribute: [axisAttr(p.axis)] },
      into,
    );
    this.wq.set(key, { name, scale: w.scale });
    return name;
  }

  /** A bias as int32 at (input scale × weight scale), per output channel, through DequantizeLinear. */
  bias(p: Planned, b: TensorProtoJson, into: Uint8Array[]): string {
    const values = tensorToFloat32(b);
    const inScale = this.scaleOf(p.node.input[0]!).scale;
    const wScale = this.wq.get(`${p.w.name}/${p.axis}`)!.scale;
    const scale = Float32Array.from(wScale, (s) => s * inScale);
    const q = Int32Array.from(values, (v, i) => Math.round(v / scale[i]!));
    const base = `${b.name ?? 'bias'}_${p.layer.node}`;
    const qi = this.init(`${base}_quantized`, (n) => tensorProto(n, 'int32', [q.length], q));
    const s = this.init(`${base}_scale`, (n) => tensorProto(n, 'float32', [q.length], scale));
    const z = this.init(`${base}_zero_point`, (n) => tensorProto(n, 'int32', [q.length], new Int32Array(q.length)));
    const name = this.r.fresh(`${base}_dequantized`);
    this.r.emitNode({ op_type: 'DequantizeLinear', input: [qi, s, z], output: [name], attribute: [axisAttr(0)] }, into);
    return name;
  }
}

const axisAttr = (axis: number): AttributeJson => ({ name: 'axis', type: 2, i: axis });

/**
 * The share of the planned layers' multiply-adds that convolutions hold, from one calibration run's
 * outputs (each layer: its output's elements × its reduction length k).
 */
export function convShare(plan: StaticPlan, outputs: Record<string, { dims: readonly number[] }>): number {
  let conv = 0;
  let all = 0;
  plan.layers.forEach((l, i) => {
    const dims = outputs[plan.io[i]![1]]?.dims ?? [];
    const macs = dims.reduce((a, b) => a * b, 1) * l.k;
    all += macs;
    if (l.op === 'Conv') conv += macs;
  });
  return all > 0 ? conv / all : 0;
}
