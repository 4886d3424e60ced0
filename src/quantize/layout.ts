// Residual adds moved into the layout of the branch they add. A ConvNeXt block runs its depthwise
// convolution in NCHW, transposes to NHWC for its layer norm and dense layers, and transposes back to
// add the block's input:  h + Transpose(m, P).  Adding in the branch's layout instead,
//   Transpose(Transpose(h, P⁻¹) + m, P)
// gives the same numbers (a transpose only relabels axes, and an elementwise add with broadcasting is
// per axis), and along a stage the NHWC sum of one block is the NHWC operand of the next block's add,
// so each stage transposes its residual stream once instead of once a block: on the ConvNeXt-T bench
// stand-in (448 px, 2 cores, ORT's profiler) the int8 model's 18 per-block Transposes go, ~4 ms an
// image. The Transpose back to P stays for the readers of the old sum (the next block's convolution).
// An add is rewritten only where its rank is known to equal P's: the other operand is a Conv's output
// (rank of its weight) or a sum already rewritten with the same P; a graph with subgraphs (which may
// read any name) is left as it is.
import { decodeNode, decodeTensor, decodeValueInfo, type AttributeJson, type NodeJson } from '../onnx/proto.js';
import { rewriteGraph } from '../onnx/wire.js';
import { hasSubgraph, Rewrite, standardDomain } from '../onnx/rewrite.js';

export interface LayoutResult {
  bytes: Uint8Array;
  /** Residual adds now in their branch's layout. */
  count: number;
}

const permOf = (n: NodeJson): number[] | undefined => n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
const permAttr = (perm: number[]): AttributeJson[] => [{ name: 'perm', type: 7, ints: perm }];

/** The rewrite of `model` (an ONNX ModelProto); unchanged bytes where no add fits. */
export function residualLayout(model: Uint8Array): LayoutResult {
  let count = 0;
  const bytes = rewriteGraph(model, ({ nodes, initializers, outputs }) => {
    const decoded = nodes.map(decodeNode);
    if (hasSubgraph(decoded)) return { nodes, initializers };
    const graphOutputs = new Set((outputs ?? []).map((o) => decodeValueInfo(o).name));
    const producer = new Map(decoded.flatMap((n) => n.output.map((o) => [o, n] as const)));
    const readers = new Map<string, number>();
    for (const n of decoded) for (const i of n.input) readers.set(i, (readers.get(i) ?? 0) + 1);
    const rank = convRanks(decoded, initializers);
    const r = new Rewrite(new Set(decoded.flatMap((n) => [n.name ?? '', ...n.input, ...n.output])));
    const forms = new Map<NodeJson, NodeJson[]>();
    const dropped = new Set<NodeJson>();
    const inBranch = new Map<string, { sum: string; perm: string }>(); // rewritten sum → its P-layout form
    for (const add of decoded) {
      const fit = residual(add, producer, readers, graphOutputs, inBranch, rank);
      if (!fit) continue;
      const { side, t, perm } = fit;
      const base = add.name || add.output[0]!;
      const form: NodeJson[] = [];
      let a = inBranch.get(add.input[1 - side]!)?.sum;
      if (a === undefined) {
        a = r.fresh(`${base}_in_branch_layout`);
        form.push({
          op_type: 'Transpose',
          input: [add.input[1 - side]!],
          output: [a],
          attribute: permAttr(inverse(perm)),
        });
      }
      const sum = r.fresh(`${base}_sum`);
      const operands = side === 1 ? [a, t.input[0]!] : [t.input[0]!, a];
      form.push({ ...add, input: operands, output: [sum] });
      form.push({ op_type: 'Transpose', input: [sum], output: [add.output[0]!], attribute: permAttr(perm) });
      forms.set(add, form);
      dropped.add(t);
      inBranch.set(add.output[0]!, { sum, perm: perm.join() });
      count++;
    }
    if (count === 0) return { nodes, initializers };
    // A Transpose back that nothing reads any more (the next add took the sum in the branch's layout) goes.
    const emitted = decoded.flatMap((n) => (dropped.has(n) ? [] : (forms.get(n) ?? [n])));
    const read = new Set(emitted.flatMap((n) => n.input));
    const body: Uint8Array[] = [];
    decoded.forEach((n, at) => {
      if (dropped.has(n)) return;
      const form = forms.get(n);
      if (!form) return body.push(nodes[at]!);
      for (const m of form) {
        const back = m === form.at(-1) && !read.has(n.output[0]!) && !graphOutputs.has(n.output[0]!);
        if (!back) r.emitNode(m, body);
      }
    });
    return { nodes: body, initializers };
  });
  return { bytes, count };
}

/** The rank of each standard Conv's output, by name: its weight's rank (a constant weight's dims). */
function convRanks(decoded: NodeJson[], initializers: Uint8Array[]): Map<string, number> {
  const weights = new Set(
    decoded.filter((n) => n.op_type === 'Conv' && standardDomain(n)).map((n) => n.input[1] ?? ''),
  );
  const dims = new Map<string, number>();
  for (const b of initializers) {
    const t = decodeTensor(b);
    if (weights.has(t.name ?? '')) dims.set(t.name ?? '', t.dims.length);
  }
  const ranks = new Map<string, number>();
  for (const n of decoded)
    if (n.op_type === 'Conv' && standardDomain(n) && dims.has(n.input[1] ?? ''))
      ranks.set(n.output[0]!, dims.get(n.input[1]!)!);
  return ranks;
}

/**
 * `add` as h + Transpose(m, P) (or the other way round) whose rewrite is exact: the Transpose read by this
 * add alone, not a graph output, P of rank ≥ 3; h of P's rank: a Conv's output (the rank of its constant
 * weight) or a sum already rewritten with the same P.
 */
function residual(
  add: NodeJson,
  producer: Map<string, NodeJson>,
  readers: Map<string, number>,
  graphOutputs: Set<string>,
  inBranch: Map<string, { sum: string; perm: string }>,
  convRank: Map<string, number>,
): { side: number; t: NodeJson; perm: number[] } | undefined {
  if (add.op_type !== 'Add' || !standardDomain(add) || add.input.length !== 2 || add.input[0] === add.input[1])
    return undefined;
  for (const side of [1, 0]) {
    const t = producer.get(add.input[side]!);
    const other = add.input[1 - side]!;
    if (!t || t.op_type !== 'Transpose' || !standardDomain(t)) continue;
    const perm = permOf(t);
    if (!perm || perm.length < 3 || readers.get(t.output[0]!) !== 1 || graphOutputs.has(t.output[0]!)) continue;
    const chained = inBranch.get(other);
    if (chained ? chained.perm === perm.join() : convRank.get(other) === perm.length) return { side, t, perm };
  }
  return undefined;
}

const inverse = (perm: number[]): number[] => perm.map((_, i) => perm.indexOf(i));
