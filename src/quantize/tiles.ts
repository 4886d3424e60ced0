// Expansion MLPs run a tile of rows at a time. A transformer or ConvNeXt block widens each row 4× —
// MatMul [C, H] (+ bias) → GELU → MatMul [H, C'] (+ bias) — and its hidden activation, written by the
// first MatMul, rewritten by the GELU and read again by the second, is 19 MB a block at ConvNeXt-T's first
// stage at 448 px: past the caches, so those passes run at memory speed. Cut into tiles of rows, each
// tile's hidden activation stays in cache between the ops that write and read it:
//   X → Reshape [-1, C] → Split into near-equal row ranges (bounds ⌊R·t / tiles⌋ computed at run time, so
//   any batch) → per tile: the same MatMul → elementwise ops → MatMul (→ bias) → Concat → Reshape to X's
//   shape with C'
// Every op in between works row by row (elementwise, its other inputs constants of one value or one per
// hidden unit), so the numbers are those of the original. In int8 each tile's activations are quantized
// at their own range; the weights are shared. Split and Concat copy the narrow ends (~0.2 ms a block)
// and each tile reads both weights again, so only an MLP whose hidden activation for one image is over
// TILE_MIN_BYTES and that has TILE_MIN_ROWS_PER_CHANNEL rows per input channel is tiled, into tiles of
// about TILE_BYTES; `quantize` measures the rows in one run of the model (quantize.ts). On the ConvNeXt-T bench
// stand-in (448 px, 2 cores, ORT's profiler, int8) tiling stages 1–2 took ~102 → ~91 ms an image (GELU
// 19 → 11, DynamicQuantizeMatMul 48 → 42); tiling every stage gained nothing (stages 3–4 fit the caches).
// Left alone: models at default-domain opset < 13 (Split takes its sizes as an input from 13), a hidden
// value read outside the block, an op not known to work row by row, graphs with subgraphs.
import {
  decodeNode,
  decodeTensor,
  decodeValueInfo,
  encodeTensor,
  type NodeJson,
  readOpsets,
  type TensorProtoJson,
} from '../onnx/proto.js';
import { tensorProto } from '../onnx/graph.js';
import { graphEntries, rewriteGraph } from '../onnx/wire.js';
import { hasSubgraph, Rewrite, standardDomain } from '../onnx/rewrite.js';

export interface TilesResult {
  bytes: Uint8Array;
  /** MLPs now run a tile of rows at a time. */
  count: number;
}

/** An MLP is tiled when its hidden activation for one image is over this many bytes... */
export const TILE_MIN_BYTES = 8 * 2 ** 20;
/** ...into tiles of about this many bytes of it (measured on the bench stand-ins: see the header). */
export const TILE_BYTES = 4 * 2 ** 20;

/**
 * Each tile reads the whole of both weights again, so an MLP is tiled only where it has at least this many
 * rows per input channel (its hidden activation ≥ 16× its int8 weights): ConvNeXt-T's stages 1–2 at 448
 * have 130 and 16, ViT-B/16's 785 tokens of 768 channels 1 (tiled, it ran 4% slower).
 */
export const TILE_MIN_ROWS_PER_CHANNEL = 8;

/** The row tiles for an MLP of `rows` rows, `channels` in, a hidden `width` wide (float32): 1 leaves it as it is. */
export function tileCount(rows: number, channels: number, width: number): number {
  const bytes = rows * width * 4;
  if (bytes <= TILE_MIN_BYTES || rows < TILE_MIN_ROWS_PER_CHANNEL * channels) return 1;
  return Math.min(64, Math.ceil(bytes / TILE_BYTES));
}

/** The expansion MLPs of `model`: each one's input (the value to measure the rows of), its channels and hidden width. */
export function expansionMlps(model: Uint8Array): { input: string; channels: number; width: number }[] {
  if ((readOpsets(model).get('') ?? 0) < 13) return [];
  const g = graphEntries(model);
  const a = analyse(g.nodes.map(decodeNode), g.initializers, g.outputs ?? []);
  return (a?.mlps ?? []).map((m) => ({ input: m.first.input[0]!, channels: m.c, width: m.k }));
}

/** Ops that work on each row alone when their other inputs are constants broadcast along the last axis. */
const ROWWISE = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Erf',
  'Relu',
  'Sigmoid',
  'Tanh',
  'Gelu',
  'FastGelu',
  'Softplus',
  'LeakyRelu',
  'Identity',
]);
const known = (n: NodeJson): boolean =>
  standardDomain(n) || (n.domain === 'com.microsoft' && (n.op_type === 'Gelu' || n.op_type === 'FastGelu'));

/** One expansion MLP: the first and second MatMul, the ops between, the hidden width and output width. */
interface Mlp {
  /** Input width C, hidden width k (H), output width n (C'). */
  c: number;
  first: NodeJson;
  ops: NodeJson[];
  second: NodeJson;
  /** An Add of a constant [C'] that alone reads the second MatMul's output. */
  bias?: NodeJson;
  k: number;
  n: number;
}

/** The graph's expansion MLPs, none sharing a node; undefined for a graph with subgraphs. */
function analyse(decoded: NodeJson[], initializers: Uint8Array[], outputs: Uint8Array[]): { mlps: Mlp[] } | undefined {
  if (hasSubgraph(decoded)) return undefined;
  const dims = constantDims(decoded, initializers);
  const order = new Map(decoded.map((n, i) => [n, i]));
  const graphOutputs = new Set(outputs.map((o) => decodeValueInfo(o).name));
  const readers = new Map<string, NodeJson[]>();
  for (const n of decoded) for (const i of n.input) readers.set(i, [...(readers.get(i) ?? []), n]);
  const mlps: Mlp[] = [];
  const used = new Set<NodeJson>();
  for (const n of decoded) {
    const mlp = expansion(n, dims, readers, graphOutputs, order);
    const all = mlp ? [mlp.first, ...mlp.ops, mlp.second, ...(mlp.bias ? [mlp.bias] : [])] : [];
    if (!mlp || all.some((m) => used.has(m))) continue;
    for (const m of all) used.add(m);
    mlps.push(mlp);
  }
  return { mlps };
}

/** `model` with each expansion MLP cut into `tilesOf(its input)` row tiles (1: left as it is). */
export function tileMlps(model: Uint8Array, tilesOf: (input: string) => number): TilesResult {
  let count = 0;
  if ((readOpsets(model).get('') ?? 0) < 13) return { bytes: model, count };
  const bytes = rewriteGraph(model, ({ nodes, initializers, outputs }) => {
    const decoded = nodes.map(decodeNode);
    const a = analyse(decoded, initializers, outputs ?? []);
    if (!a) return { nodes, initializers };
    const r = new Rewrite(new Set(decoded.flatMap((n) => [n.name ?? '', ...n.input, ...n.output])));
    const added: TensorProtoJson[] = [];
    const constant = (hint: string, values: bigint[]): string => {
      const name = r.fresh(hint);
      added.push(tensorProto(name, 'int64', [values.length], BigInt64Array.from(values)));
      return name;
    };
    const forms = new Map<NodeJson, NodeJson[]>();
    const taken = new Set<NodeJson>();
    for (const mlp of a.mlps) {
      const tiles = tilesOf(mlp.first.input[0]!);
      if (!(tiles >= 2)) continue;
      const last = mlp.bias ?? mlp.second;
      for (const m of [mlp.first, ...mlp.ops, mlp.second]) if (m !== last) taken.add(m);
      forms.set(last, tiled(mlp, tiles, r, constant)); // where the last was: all it needs is written by then
      count++;
    }
    if (count === 0) return { nodes, initializers };
    const body: Uint8Array[] = [];
    decoded.forEach((n, at) => {
      if (forms.has(n)) for (const m of forms.get(n)!) r.emitNode(m, body);
      else if (!taken.has(n)) body.push(nodes[at]!);
    });
    return { nodes: body, initializers: [...initializers, ...added.map(encodeTensor)] };
  });
  return { bytes, count };
}

/** The dims of each constant: initializers and Constant nodes' tensors, by name. */
function constantDims(decoded: NodeJson[], initializers: Uint8Array[]): Map<string, number[]> {
  const dims = new Map<string, number[]>();
  for (const b of initializers) {
    const t = decodeTensor(b);
    if (t.data_type === 1) dims.set(t.name ?? '', t.dims.map(Number));
  }
  for (const n of decoded) {
    const value =
      n.op_type === 'Constant' && standardDomain(n) ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (value && value.data_type === 1) dims.set(n.output[0]!, value.dims.map(Number));
  }
  return dims;
}

/** A constant float weight [rows, cols] read as `n`'s second input. */
function weight(n: NodeJson, dims: Map<string, number[]>): [number, number] | undefined {
  const d = dims.get(n.input[1] ?? '');
  return n.op_type === 'MatMul' && standardDomain(n) && d?.length === 2 ? (d as [number, number]) : undefined;
}

/**
 * Whether constant `name` broadcasts along the last axis only: one value, or one per hidden unit, of rank
 * ≤ 1 (a constant of more axes could add axes to the result, which the tiles' Reshape back would drop).
 */
const rowConstant = (name: string, dims: Map<string, number[]>, k: number): boolean => {
  const d = dims.get(name);
  return !!d && d.length <= 1 && (d.length === 0 || d[0] === 1 || d[0] === k);
};

/**
 * `first` as the start of an expansion MLP: a MatMul by a constant [C, H] with H ≥ 2C, whose output is read
 * (through row-wise ops whose other inputs are row constants, every value read inside the block alone) by
 * exactly one MatMul by a constant [H, C'] at the end.
 */
function expansion(
  first: NodeJson,
  dims: Map<string, number[]>,
  readers: Map<string, NodeJson[]>,
  graphOutputs: Set<string>,
  order: Map<NodeJson, number>,
): Mlp | undefined {
  const w = weight(first, dims);
  if (!w || w[1] < 2 * w[0] || first.input[0] === first.input[1]) return undefined;
  const k = w[1];
  const inside = new Set<string>([first.output[0]!]);
  const ops: NodeJson[] = [];
  let second: NodeJson | undefined;
  const pending = [first.output[0]!];
  while (pending.length > 0) {
    const v = pending.shift()!;
    if (graphOutputs.has(v)) return undefined;
    for (const m of readers.get(v) ?? []) {
      if (ops.includes(m) || m === second) continue;
      const end = weight(m, dims);
      if (end && m.input[0] === v && end[0] === k && !inside.has(m.input[1]!)) {
        if (second) return undefined;
        second = m;
        continue;
      }
      if (!known(m) || !ROWWISE.has(m.op_type) || m.output.length !== 1 || ops.length >= 16) return undefined;
      ops.push(m);
      inside.add(m.output[0]!);
      pending.push(m.output[0]!);
    }
  }
  if (!second || graphOutputs.has(second.output[0]!)) return undefined;
  const n = weight(second, dims)![1];
  // The second MatMul's bias goes into the tile too (ONNX Runtime fuses it into the MatMul there).
  const after = readers.get(second.output[0]!) ?? [];
  const b = after[0];
  const bias =
    after.length === 1 &&
    b!.op_type === 'Add' &&
    standardDomain(b!) &&
    b!.input.some((i) => i !== second.output[0] && dims.get(i)?.join() === `${n}`)
      ? b
      : undefined;
  // Every block op's inputs are block values or row constants (checked after the walk: all block values known).
  for (const m of ops) if (!m.input.every((i) => inside.has(i) || rowConstant(i, dims, k))) return undefined;
  ops.sort((a, b) => order.get(a)! - order.get(b)!);
  return { c: w[0], first, ops, second, bias, k, n };
}

/**
 * `mlp` a tile of rows at a time: X → Reshape [-1, C] → Split at row bounds ⌊R·t / tiles⌋ → the block per
 * tile → Concat → Reshape to X's shape with the last dim C'. The block's values get a `_tile<t>` suffix.
 */
function tiled(mlp: Mlp, tiles: number, r: Rewrite, constant: (hint: string, values: bigint[]) => string): NodeJson[] {
  const x = mlp.first.input[0]!;
  const y = (mlp.bias ?? mlp.second).output[0]!;
  const base = mlp.first.name || y;
  const v = (what: string): string => r.fresh(`${base}_${what}`);
  const c = (what: string, values: number[]): string => constant(`${base}_${what}`, values.map(BigInt));
  const op = (op_type: string, input: string[], output: string[], axis?: number): NodeJson => ({
    op_type,
    input,
    output,
    ...(axis === undefined ? {} : { attribute: [{ name: 'axis', type: 2, i: axis }] }),
  });
  const [flat, flatShape, rows, scaled, bounds, hi, lo, sizes, xShape, lead, outShape, joined] = [
    'rows',
    'rows_shape',
    'row_count',
    'row_scaled',
    'bounds',
    'bounds_hi',
    'bounds_lo',
    'tile_rows',
    'in_shape',
    'lead_shape',
    'out_shape',
    'tiles_joined',
  ].map(v) as [string, string, string, string, string, string, string, string, string, string, string, string];
  const steps = Array.from({ length: tiles + 1 }, (_, t) => t);
  const parts = Array.from({ length: tiles }, (_, t) => v(`tile${t}_in`));
  const form: NodeJson[] = [
    op('Reshape', [x, c('flat', [-1, mlp.c])], [flat]),
    op('Shape', [flat], [flatShape]),
    op('Slice', [flatShape, c('zero', [0]), c('one', [1])], [rows]),
    op('Mul', [rows, c('steps', steps)], [scaled]),
    op('Div', [scaled, c('tiles', [tiles])], [bounds]),
    op('Slice', [bounds, c('one', [1]), c('end', [tiles + 1])], [hi]),
    op('Slice', [bounds, c('zero', [0]), c('last', [tiles])], [lo]),
    op('Sub', [hi, lo], [sizes]),
    op('Split', [flat, sizes], parts, 0),
  ];
  const outs: string[] = [];
  parts.forEach((part, t) => {
    const renamed = new Map<string, string>([[x, part]]);
    for (const m of [mlp.first, ...mlp.ops, mlp.second, ...(mlp.bias ? [mlp.bias] : [])]) {
      const output = m.output.map((o) => r.fresh(`${o}_tile${t}`));
      m.output.forEach((o, i) => renamed.set(o, output[i]!));
      form.push({
        ...m,
        name: m.name ? r.fresh(`${m.name}_tile${t}`) : undefined,
        input: m.input.map((i) => renamed.get(i) ?? i),
        output,
      });
    }
    outs.push(renamed.get(y)!);
  });
  form.push(
    op('Concat', outs, [joined], 0),
    op('Shape', [x], [xShape]),
    op('Slice', [xShape, c('zero', [0]), c('minus_one', [-1])], [lead]),
    op('Concat', [lead, c('width', [mlp.n])], [outShape], 0),
    op('Reshape', [joined, outShape], [y]),
  );
  return form;
}
