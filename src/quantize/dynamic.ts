// Dynamic int8 quantization of any tagger's MatMul and Gemm layers, in the form ONNX Runtime's own
// quantize_dynamic writes and its CPU graph optimizer fuses into one DynamicQuantizeMatMul kernel:
//   A → DynamicQuantizeLinear → (A_q uint8, a_scale, a_zero) ;
//   MatMulInteger(A_q, W_q int8 [K, N], a_zero, 0) → int32 → Cast float → × (a_scale · w_scale[N]) (+ C).
// Activations are quantized per tensor at run time (no calibration images); weights once, symmetric,
// one scale per output column, on 7 bits (±63: exact on CPUs without VNNI too, see
// training/int8.ts). Layers whose weight is not a constant 2-D float32 initializer (attention's
// activation × activation products), small ones, and everything else stay float.
import {
  decodeNode,
  decodeTensor,
  encodeTensor,
  readOpsets,
  tensorToFloat32,
  type AttributeJson,
  type NodeJson,
  type TensorProtoJson,
} from '../onnx/proto.js';
import { tensorProto } from '../onnx/graph.js';
import { quantizeWeights } from '../../training/int8.js';
import { rewriteGraph } from '../onnx/wire.js';
import { hasSubgraph, Rewrite } from '../onnx/rewrite.js';
import { isExternal } from '../model/external-data.js';

/** Weights with fewer rows or columns than this stay float (too small to gain). */
export const MIN_DIM = 16;

export interface QuantizedLayer {
  node: string;
  /** The weight's initializer: a layer tiled into several nodes (tiles.ts) shares one. */
  weight: string;
  op: 'MatMul' | 'Gemm' | 'Conv';
  k: number;
  n: number;
}

export interface DynamicResult {
  bytes: Uint8Array;
  layers: QuantizedLayer[];
  /** The external data file's bytes, in order (the float tensors that were external stay external). */
  data: Uint8Array[];
}

/** A model whose weights sit in external data files (src/model/external-data.ts). */
export interface ExternalWeights {
  /** The checked bytes of each external tensor, by name. */
  bytes: Map<string, Uint8Array>;
  /** The data file the result's external tensors name, beside the result. */
  dataFile: string;
}

/** Offsets in the data file are multiples of this, so ONNX Runtime can map the tensors instead of copying. */
export const DATA_ALIGN = 4096;

const attr = (n: NodeJson, name: string): AttributeJson | undefined => n.attribute?.find((a) => a.name === name);
const A = {
  i: (name: string, i: number): AttributeJson => ({ name, type: 2, i }),
};

/** The weight of a MatMul or Gemm that can go int8: [K, N] as stored, and whether Gemm transposes it. */
export function weightOf(
  n: NodeJson,
  inits: Map<string, TensorProtoJson>,
): { w: TensorProtoJson; transB: boolean } | undefined {
  const w = inits.get(n.input[1] ?? '');
  if (!w || w.data_type !== 1 || w.dims.length !== 2 || w.data_location === 1) return undefined;
  if (w.dims.some((d) => Number(d) < MIN_DIM)) return undefined;
  if (n.op_type === 'MatMul' && n.input.length === 2) return { w, transB: false };
  if (n.op_type !== 'Gemm') return undefined;
  const f = (name: string, d: number): number => attr(n, name)?.f ?? d;
  const i = (name: string): number => Number(attr(n, name)?.i ?? 0);
  if (f('alpha', 1) !== 1 || f('beta', 1) !== 1 || i('transA') !== 0) return undefined;
  return { w, transB: i('transB') === 1 };
}

interface QuantizedWeight {
  q: string;
  scale: string;
  zero: string;
}

/** A rewrite that also makes int8 weights: once per weight and layout. */
export class QuantizeRewrite extends Rewrite {
  readonly weights = new Map<string, QuantizedWeight>();

  /** The int8 form of `w` ([K, N] after Gemm's transpose), made once per weight and layout. */
  weight(w: TensorProtoJson, transB: boolean): QuantizedWeight {
    const key = `${w.name}/${transB}`;
    const have = this.weights.get(key);
    if (have) return have;
    const [rows, cols] = w.dims.map(Number) as [number, number];
    const [k, n] = transB ? [cols, rows] : [rows, cols];
    const { q, scale } = quantizeWeights(tensorToFloat32(w), rows, cols, transB ? 0 : 1);
    const made = {
      q: this.fresh(`${w.name}_quantized`),
      scale: this.fresh(`${w.name}_scale`),
      zero: this.fresh(`${w.name}_zero_point`),
    };
    this.added.push(tensorProto(made.q, 'int8', [k, n], transB ? transpose(q, rows, cols) : q));
    this.added.push(tensorProto(made.scale, 'float32', [n], scale));
    this.added.push(tensorProto(made.zero, 'int8', [n], new Int8Array(n)));
    this.weights.set(key, made);
    return made;
  }

  /** The nodes that replace MatMul/Gemm `node` whose weight is `w`. */
  layer(node: NodeJson, w: TensorProtoJson, transB: boolean): void {
    const qw = this.weight(w, transB);
    const base = node.name || node.output[0]!;
    const v = (s: string): string => this.fresh(`${base}_${s}`);
    const [aq, as, az, yi, yf, s] = ['a_quantized', 'a_scale', 'a_zero_point', 'int32', 'float', 'scale'].map(v) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const y = node.input[2] ? v('no_bias') : node.output[0]!;
    this.emit(base, 'DynamicQuantizeLinear', [node.input[0]!], [aq, as, az]);
    this.emit(base, 'MatMulInteger', [aq, qw.q, az, qw.zero], [yi]);
    this.emit(base, 'Cast', [yi], [yf], [A.i('to', 1)]);
    this.emit(base, 'Mul', [as, qw.scale], [s]);
    this.emit(base, 'Mul', [yf, s], [y]);
    if (node.input[2]) this.emit(base, 'Add', [y, node.input[2]], [node.output[0]!]);
  }
}

/**
 * `model` with its eligible MatMul and Gemm layers in int8, but for the nodes named in `keepFloat`;
 * refused (Error) where the model cannot be.
 */
export function quantizeDynamic(
  model: Uint8Array,
  external?: ExternalWeights,
  keepFloat: ReadonlySet<string> = new Set(),
): DynamicResult {
  const opsets = readOpsets(model);
  const opset = opsets.get('') ?? opsets.get('ai.onnx') ?? 0;
  if (opset < 11)
    throw new Error(`the model imports ONNX opset ${opset}; DynamicQuantizeLinear needs opset 11 or later`);
  const layers: QuantizedLayer[] = [];
  const data: Uint8Array[] = [];
  const bytes = rewriteGraph(model, ({ nodes, initializers }) => {
    const decodedInits = initializers.map(decodeTensor);
    // External weights are read as if they were inside (a view of the checked bytes, no copy).
    const inside = (t: TensorProtoJson): TensorProtoJson => {
      const b = isExternal(t) ? external?.bytes.get(t.name ?? '') : undefined;
      return b ? { ...t, raw_data: b, external_data: [], data_location: 0 } : t;
    };
    const inits = new Map<string, TensorProtoJson>(decodedInits.map((t) => [t.name ?? '', inside(t)]));
    const decoded = nodes.map(decodeNode);
    const r = new QuantizeRewrite(new Set([...inits.keys(), ...decoded.flatMap((n) => [...n.input, ...n.output])]));
    const read = new Set<string>(); // what the nodes left as they were read
    decoded.forEach((node, at) => {
      const found = keepFloat.has(node.name || node.output[0]!) ? undefined : weightOf(node, inits);
      if (!found) {
        r.nodes.push(nodes[at]!);
        for (const i of node.input) read.add(i);
        return;
      }
      r.layer(node, found.w, found.transB);
      const [rows, cols] = found.w.dims.map(Number) as [number, number];
      const [k, n] = found.transB ? [cols, rows] : [rows, cols];
      layers.push({
        node: node.name || node.output[0]!,
        weight: found.w.name ?? '',
        op: node.op_type as 'MatMul' | 'Gemm',
        k,
        n,
      });
    });
    // Float weights that only quantized layers read are dropped (Gemm biases stay: Add reads them),
    // unless a node has a subgraph (If, Loop, Scan), which may read any initializer by name.
    const subgraphs = hasSubgraph(decoded);
    const gone = (name: string): boolean =>
      !subgraphs && !read.has(name) && (r.weights.has(`${name}/false`) || r.weights.has(`${name}/true`));
    const kept = initializers
      .map((bytes, i) => ({ bytes, t: decodedInits[i]! }))
      .filter(({ t }) => !gone(t.name ?? ''))
      .map(({ bytes, t }) => (isExternal(t) && external ? moved(t, external, data) : bytes));
    return { nodes: r.nodes, initializers: [...kept, ...r.added.map(encodeTensor)] };
  });
  return { bytes, layers, data };
}

/** `t`, an external float tensor kept as it was, re-pointed at its bytes appended to the new data file. */
export function moved(t: TensorProtoJson, external: ExternalWeights, data: Uint8Array[]): Uint8Array {
  const at = data.reduce((a, b) => a + b.length, 0);
  const pad = (DATA_ALIGN - (at % DATA_ALIGN)) % DATA_ALIGN;
  if (pad) data.push(new Uint8Array(pad));
  const b = external.bytes.get(t.name ?? '');
  if (!b) throw new Error(`the external data of tensor ${t.name} was not read`);
  data.push(b);
  const entries = { location: external.dataFile, offset: String(at + pad), length: String(b.length) };
  return encodeTensor({
    ...t,
    external_data: Object.entries(entries).map(([key, value]) => ({ key, value })),
    data_location: 1,
  });
}

export function transpose(q: Int8Array, rows: number, cols: number): Int8Array {
  const out = new Int8Array(q.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = q[r * cols + c]!;
  return out;
}
