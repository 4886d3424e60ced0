// Layer norms in the form ONNX Runtime's CPU kernels run fastest. ORT's LayerNormalization kernel
// sums each row in one scalar chain (no SIMD) and divides every element; its InstanceNormalization
// kernel does the same arithmetic vectorized. A layer norm over the last K values of each row is an
// instance norm of the rows seen as [rows, 1, K]:
//   Shape(x) → s;  Reshape(x, [-1, 1, K]) → InstanceNormalization(scale 1, bias 0, same epsilon)
//   → Reshape(·, s) → × γ → + β
// and where every reader of its output is a dense layer with a constant weight, γ and β go into that
// layer instead: (n ⊙ γ + β) · W + b = n · (diag(γ) W) + (β W + b). On the ConvNeXt-T bench stand-in
// (448 px, 2 cores, ORT's profiler) its 22 layer norms took 30 of the int8 model's 123 ms per image as
// LayerNormalization and take 5 ms this way (bench/quantize.ts).
// Where x is a Transpose's output (ConvNeXt's NCHW → NHWC after its depthwise convolution), s is read
// from Reshape(x, [0, …, 0]) instead: ORT moves a Shape of a Transpose above it, onto the convolution's
// output, which its blocked (NCHWc) layout would then convert back to NCHW for nothing (2 ms an image).
// A layer norm whose axis, scale or extra outputs do not fit this is left as it is.
import {
  decodeNode,
  decodeTensor,
  decodeValueInfo,
  encodeTensor,
  tensorToFloat32,
  type AttributeJson,
  type NodeJson,
  type TensorProtoJson,
} from '../onnx/proto.js';
import { tensorProto } from '../onnx/graph.js';
import { rewriteGraph } from '../onnx/wire.js';
import { isExternal } from '../model/external-data.js';
import { type ExternalWeights } from './dynamic.js';
import { hasSubgraph, Rewrite } from '../onnx/rewrite.js';
import { initializerMap } from './static.js';

export interface NormsResult {
  bytes: Uint8Array;
  /** Layer norms rewritten. */
  count: number;
  /** Of those, the ones whose γ and β went into the dense layers reading them. */
  folded: number;
}

const attr = (n: NodeJson, name: string): AttributeJson | undefined => n.attribute?.find((a) => a.name === name);
const floatInit = (t: TensorProtoJson | undefined): t is TensorProtoJson => !!t && t.data_type === 1 && !isExternal(t);

/** The normalized length K of layer norm `n`, or undefined where it is not a last-axes norm with γ spelling them out. */
function normLength(n: NodeJson, inits: Map<string, TensorProtoJson>): number | undefined {
  if ((n.domain ?? '') !== '' || n.op_type !== 'LayerNormalization') return undefined;
  if (n.output.slice(1).some((o) => o !== '')) return undefined; // mean / inverse std read by someone
  const gamma = inits.get(n.input[1] ?? '');
  const beta = n.input[2] ? inits.get(n.input[2]) : undefined;
  if (!floatInit(gamma) || (n.input[2] && !floatInit(beta))) return undefined;
  const dims = gamma.dims.map(Number);
  // γ must name every normalized axis (axis = −rank(γ)), none of them broadcast from 1.
  if (dims.length === 0 || dims.some((d) => d < 2)) return undefined;
  if (Number(attr(n, 'axis')?.i ?? -1) !== -dims.length) return undefined;
  if (beta && beta.dims.map(Number).join() !== dims.join()) return undefined;
  return dims.reduce((a, b) => a * b, 1);
}

/** A dense reader of the norm's output: its weight as [K, N] element (k, j) at `at(k, j)`, its bias tensor. */
interface Dense {
  node: NodeJson;
  w: TensorProtoJson;
  k: number;
  n: number;
  /** Index into the weight's values of element (k, j) of the [K, N] matrix the layer multiplies by. */
  at: (k: number, j: number) => number;
  /** The bias initializer's name and the node and input slot reading it (absent: Gemm without C). */
  bias?: { node: NodeJson; slot: number; t: TensorProtoJson };
}

/** `reader` as a dense layer whose γ/β fold is exact, or undefined. */
function dense(
  reader: NodeJson,
  y: string,
  k: number,
  inits: Map<string, TensorProtoJson>,
  readers: Map<string, NodeJson[]>,
): Dense | undefined {
  const w = inits.get(reader.input[1] ?? '');
  if (reader.input[0] !== y || reader.input[1] === y || !floatInit(w) || w.dims.length !== 2) return undefined;
  const [rows, cols] = w.dims.map(Number) as [number, number];
  const vector = (name: string | undefined, len: number): TensorProtoJson | undefined => {
    const t = inits.get(name ?? '');
    return floatInit(t) && t.dims.length === 1 && Number(t.dims[0]) === len ? t : undefined;
  };
  if (reader.op_type === 'MatMul' && rows === k) {
    const after = readers.get(reader.output[0]!) ?? [];
    const add = after.length === 1 && after[0]!.op_type === 'Add' ? after[0]! : undefined;
    const slot = add ? add.input.findIndex((i, s) => s < 2 && i !== reader.output[0] && vector(i, cols)) : -1;
    const bias = add && slot >= 0 ? { node: add, slot, t: vector(add.input[slot], cols)! } : undefined;
    return { node: reader, w, k, n: cols, at: (r, j) => r * cols + j, bias };
  }
  if (reader.op_type !== 'Gemm' || reader.domain) return undefined;
  const f = (name: string): number => attr(reader, name)?.f ?? 1;
  const i = (name: string): number => Number(attr(reader, name)?.i ?? 0);
  if (f('alpha') !== 1 || f('beta') !== 1 || i('transA') !== 0) return undefined;
  const transB = i('transB') === 1;
  const n = transB ? rows : cols;
  if ((transB ? cols : rows) !== k) return undefined;
  const c = reader.input[2] ? vector(reader.input[2], n) : undefined;
  if (reader.input[2] && !c) return undefined;
  return {
    node: reader,
    w,
    k,
    n,
    at: transB ? (r, j) => j * k + r : (r, j) => r * n + j,
    bias: c ? { node: reader, slot: 2, t: c } : undefined,
  };
}

/** The dense readers of `y` if every reader is one whose fold is exact (and `y` is no graph output). */
function foldable(
  y: string,
  k: number,
  inits: Map<string, TensorProtoJson>,
  readers: Map<string, NodeJson[]>,
  graphOutputs: Set<string>,
): Dense[] | undefined {
  const rs = readers.get(y) ?? [];
  if (rs.length === 0 || graphOutputs.has(y)) return undefined;
  const out = rs.map((r) => dense(r, y, k, inits, readers));
  return out.every((d) => d !== undefined) ? (out as Dense[]) : undefined;
}

interface FoldState {
  r: Rewrite;
  constant: (hint: string, t: (name: string) => TensorProtoJson) => string;
  /** Nodes rewritten in place: dense layers with folded weights, Adds with folded biases. */
  renamed: Map<NodeJson, NodeJson>;
  /** Nodes emitted right after a node: the Add of a new bias. */
  after: Map<NodeJson, NodeJson[]>;
  /** Initializers a fold replaced (dropped where nothing else reads them). */
  replaced: Set<string>;
}

/** γ and β of a layer norm folded into dense layer `d`: W' = diag(γ) W, b' = b + β W (float64 sums). */
function fold(d: Dense, gamma: Float32Array, beta: Float32Array | undefined, s: FoldState): void {
  const w = tensorToFloat32(d.w);
  const w2 = new Float32Array(w.length);
  const shift = new Float64Array(d.n);
  for (let k = 0; k < d.k; k++)
    for (let j = 0; j < d.n; j++) {
      const at = d.at(k, j);
      w2[at] = gamma[k]! * w[at]!;
      if (beta) shift[j] = shift[j]! + beta[k]! * w[at]!;
    }
  const node = s.renamed.get(d.node) ?? d.node;
  const wName = s.constant(`${d.w.name}_ln_folded`, (m) => tensorProto(m, 'float32', d.w.dims.map(Number), w2));
  s.replaced.add(d.w.name ?? '');
  s.renamed.set(d.node, { ...node, input: node.input.map((i, slot) => (slot === 1 ? wName : i)) });
  if (!beta || shift.every((v) => v === 0)) return;
  if (!d.bias) {
    // A MatMul without a bias Add, or a Gemm without C: β W is added after it.
    const out = d.node.output[0]!;
    const raw = s.r.fresh(`${out}_before_ln_shift`);
    const c = s.constant(`${d.w.name}_ln_shift`, (m) => tensorProto(m, 'float32', [d.n], Float32Array.from(shift)));
    const now = s.renamed.get(d.node)!;
    s.renamed.set(d.node, { ...now, output: [raw, ...now.output.slice(1)] });
    s.after.set(d.node, [{ op_type: 'Add', input: [raw, c], output: [out] }]);
    return;
  }
  const b = tensorToFloat32(d.bias.t);
  const c = s.constant(`${d.bias.t.name}_ln_folded`, (m) =>
    tensorProto(
      m,
      'float32',
      [d.n],
      Float32Array.from(b, (v, j) => v + shift[j]!),
    ),
  );
  s.replaced.add(d.bias.t.name ?? '');
  const bn = s.renamed.get(d.bias.node) ?? d.bias.node;
  s.renamed.set(d.bias.node, { ...bn, input: bn.input.map((i, slot) => (slot === d.bias!.slot ? c : i)) });
}

/**
 * `model` with its layer norms over the last axes as instance norms, γ and β folded into the dense
 * layers reading them where every reader is one. Weights in external data are read from `external`;
 * folded ones are new tensors inside the model (the int8 rewrite that follows quantizes them).
 */
export function fastNorms(model: Uint8Array, external?: ExternalWeights): NormsResult {
  let count = 0;
  let folded = 0;
  const bytes = rewriteGraph(model, ({ nodes, initializers, outputs }) => {
    const decoded = nodes.map(decodeNode);
    const inits = initializerMap(initializers, external);
    const readers = new Map<string, NodeJson[]>();
    for (const n of decoded) for (const i of n.input) readers.set(i, [...(readers.get(i) ?? []), n]);
    const graphOutputs = new Set((outputs ?? []).map((o) => decodeValueInfo(o).name));
    const producers = new Map(decoded.flatMap((n) => n.output.map((o) => [o, n] as const)));
    const r = new Rewrite(new Set([...inits.keys(), ...decoded.flatMap((n) => [...n.input, ...n.output])]));
    const added: TensorProtoJson[] = [];
    const constant = (hint: string, t: (name: string) => TensorProtoJson): string => {
      const name = r.fresh(hint);
      added.push(t(name));
      return name;
    };
    const s: FoldState = { r, constant, renamed: new Map(), after: new Map(), replaced: new Set() };
    const forms = new Map<NodeJson, NodeJson[]>(); // layer norm → its instance-norm form
    for (const n of decoded) {
      const k = normLength(n, inits);
      if (k === undefined) continue;
      const folds = foldable(n.output[0]!, k, inits, readers, graphOutputs);
      forms.set(n, instanceForm(n, k, !!folds, s, transposeRank(producers.get(n.input[0]!))));
      if (folds) {
        const beta = n.input[2] ? tensorToFloat32(inits.get(n.input[2])!) : undefined;
        for (const d of folds) fold(d, tensorToFloat32(inits.get(n.input[1]!)!), beta, s);
        for (const t of n.input.slice(1)) s.replaced.add(t);
        folded++;
      }
      count++;
    }
    if (count === 0) return { nodes, initializers };
    const body: Uint8Array[] = [];
    decoded.forEach((n, at) => {
      const form = forms.get(n);
      if (form) for (const m of form) r.emitNode(m, body);
      else if (s.renamed.has(n)) r.emitNode(s.renamed.get(n)!, body);
      else body.push(nodes[at]!);
      for (const m of s.after.get(n) ?? []) r.emitNode(m, body);
    });
    // What the folds replaced goes, unless another node (or a subgraph, which may read any) reads it.
    const emitted = decoded.flatMap((n) => forms.get(n) ?? [s.renamed.get(n) ?? n, ...(s.after.get(n) ?? [])]);
    const read = new Set(emitted.flatMap((m) => m.input));
    const subgraphs = hasSubgraph(decoded);
    const kept = initializers.filter((_, i) => {
      const name = decodeTensor(initializers[i]!).name ?? '';
      return subgraphs || read.has(name) || graphOutputs.has(name) || !s.replaced.has(name);
    });
    return { nodes: body, initializers: [...kept, ...added.map(encodeTensor)] };
  });
  return { bytes, count, folded };
}

/** Layer norm `n` over K values as Shape → Reshape [-1, 1, K] → InstanceNormalization → Reshape (→ × γ → + β). */
function instanceForm(n: NodeJson, k: number, folds: boolean, s: FoldState, rank?: number): NodeJson[] {
  const [x, g, b] = [n.input[0]!, n.input[1]!, n.input[2]];
  const y = n.output[0]!;
  const base = n.name || y;
  const v = (what: string): string => s.r.fresh(`${base}_${what}`);
  const [shape, rows, normed] = [v('shape'), v('rows'), v('normalized')];
  const out = folds ? y : v('unscaled');
  const rowsShape = s.constant(`${base}_rows_shape`, (m) =>
    tensorProto(m, 'int64', [3], BigInt64Array.of(-1n, 1n, BigInt(k))),
  );
  const one = s.constant(`${base}_one`, (m) => tensorProto(m, 'float32', [1], Float32Array.of(1)));
  const zero = s.constant(`${base}_zero`, (m) => tensorProto(m, 'float32', [1], Float32Array.of(0)));
  const form: NodeJson[] = [];
  let shapeOf = x;
  if (rank !== undefined) {
    shapeOf = v('same');
    const zeros = s.constant(`${base}_same_shape`, (m) => tensorProto(m, 'int64', [rank], new BigInt64Array(rank)));
    form.push({ op_type: 'Reshape', input: [x, zeros], output: [shapeOf] });
  }
  form.push(
    { op_type: 'Shape', input: [shapeOf], output: [shape] },
    { op_type: 'Reshape', input: [x, rowsShape], output: [rows] },
    {
      op_type: 'InstanceNormalization',
      input: [rows, one, zero],
      output: [normed],
      attribute: [{ name: 'epsilon', type: 1, f: attr(n, 'epsilon')?.f ?? 1e-5 }],
    },
    { op_type: 'Reshape', input: [normed, shape], output: [out] },
  );
  if (folds) return form;
  const scaled = b ? v('scaled') : y;
  form.push({ op_type: 'Mul', input: [out, g], output: [scaled] });
  if (b) form.push({ op_type: 'Add', input: [scaled, b], output: [y] });
  return form;
}

/** The rank of a Transpose's output (its perm's length), where `n` is one. */
function transposeRank(n: NodeJson | undefined): number | undefined {
  if (!n || n.op_type !== 'Transpose' || (n.domain ?? '') !== '') return undefined;
  return attr(n, 'perm')?.ints?.length;
}
