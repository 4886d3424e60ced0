// Where a tagger's embedding is: the input of its final scoring layer, found by walking back from the
// scores output through what only reshapes, scales, biases or squashes the scores (Sigmoid, Add of a
// constant, Reshape, Flatten, …) to the last MatMul, Gemm or 1×1 Conv whose weights are constants. A
// head trained on that tensor sees what the tagger's own last layer sees (issue: teach any tagger new
// tags). Reads the graph's nodes and the weight's header only, never the weights' bytes.
import {
  AttrType,
  DataType,
  decodeNode,
  decodeTensor,
  encodeNode,
  encodeValueInfo,
  type NodeJson,
} from '../onnx/proto.js';
import { graphEntries, rewriteGraph } from '../onnx/wire.js';
import { UsageError } from '../util/errors.js';

export interface EmbeddingCut {
  /** The tensor the scoring layer reads: the embedding. */
  tensor: string;
  /** The scoring layer (with --embedding: the node that makes the tensor): its node name (or #index) and op. */
  layer: { node: string; op: string };
  /** The embedding's width, from the scoring layer's weight where it says (K of a K×N MatMul weight). */
  width?: number;
}

/** Ops that pass the scores through unchanged in what they mean (shape, bias, scale, squashing). */
const PASS = new Set([
  'Sigmoid',
  'Softmax',
  'Identity',
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Cast',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'GlobalAveragePool',
]);

/**
 * The embedding of `model` for its scores output `scores`, or `override` when given (checked to be a
 * tensor of the graph). A model where none is found is refused, naming `file`, what stopped the walk
 * and the tensors to pass with --embedding.
 */
export function findEmbedding(model: Uint8Array, scores: string, file: string, override?: string): EmbeddingCut {
  const { nodes: encoded, initializers } = graphEntries(model);
  const nodes = encoded.map(decodeNode);
  const constants = new Set<string>();
  const weights = new Map<string, Uint8Array>();
  for (const t of initializers) {
    const name = decodeTensor(t).name ?? '';
    constants.add(name);
    weights.set(name, t);
  }
  for (const n of nodes) if (n.op_type === 'Constant') n.output.forEach((o) => constants.add(o));
  const producer = new Map<string, { node: NodeJson; index: number }>();
  nodes.forEach((node, index) => node.output.forEach((o) => producer.set(o, { node, index })));
  const where = JSON.stringify(file);
  if (override !== undefined) {
    const p = producer.get(override);
    if (!p)
      throw new UsageError(
        `Expected --embedding to name a tensor of ${where} made by one of its nodes but it has no ${JSON.stringify(override)}`,
      );
    return { tensor: override, layer: { node: p.node.name || `#${p.index}`, op: p.node.op_type } };
  }
  const refuse = (why: string): never => {
    throw new UsageError(
      `Expected a final scoring layer (a MatMul, Gemm or 1×1 Conv with constant weights) before the scores output ${JSON.stringify(scores)} of ${where} but ${why}; name the embedding with --embedding TENSOR`,
    );
  };
  let at = scores;
  for (let hops = 0; hops < 64; hops++) {
    const p = producer.get(at);
    if (!p) return refuse(`${JSON.stringify(at)} is not made by a node (a graph input or a constant)`);
    const { node, index } = p;
    const name = node.name || `#${index}`;
    const data = node.input.filter((i) => i !== '' && !constants.has(i));
    if (node.op_type === 'MatMul' || node.op_type === 'Gemm' || node.op_type === 'Conv') {
      const [x, w] = node.input;
      if (!x || !w || !constants.has(w) || constants.has(x))
        return refuse(`its ${node.op_type} ${name} multiplies two computed tensors`);
      const dims = weights.has(w) ? decodeTensor(weights.get(w)!).dims.map(Number) : undefined;
      if (node.op_type === 'Conv' && dims && !(dims.length === 4 && dims[2] === 1 && dims[3] === 1))
        return refuse(`its last layer ${name} is a ${dims.slice(2).join('×')} Conv, not 1×1`);
      const transB = node.attribute?.find((a) => a.name === 'transB')?.i === 1;
      const width = !dims
        ? undefined
        : node.op_type === 'Conv'
          ? dims[1]
          : node.op_type === 'Gemm' && transB
            ? dims[1]
            : dims[0];
      return { tensor: x, layer: { node: name, op: node.op_type }, width };
    }
    if (!PASS.has(node.op_type) || data.length !== 1)
      return refuse(`the walk back from it stops at ${node.op_type} ${name}, which is not a scoring layer`);
    at = data[0]!;
  }
  return refuse('the walk back from it is longer than 64 nodes');
}

/** The graph output `withEmbeddingOutput` adds. */
export const EMBEDDING_OUTPUT = 'alt_i2v_embedding';

/**
 * `model` with the embedding `cut` names as one more graph output, EMBEDDING_OUTPUT, one row per image:
 * flattened from the first axis on (a MatMul's or Gemm's 2-D input stays as it is); a 1×1 Conv's
 * feature map averaged over its pixels first (the pooling a 1×1 head before global pooling commutes
 * with), so its width is the map's channels.
 */
export function withEmbeddingOutput(model: Uint8Array, cut: EmbeddingCut): Uint8Array {
  const node = (op: string, input: string, output: string, attribute: NodeJson['attribute'] = []): Uint8Array =>
    encodeNode({ op_type: op, input: [input], output: [output], name: output, attribute });
  const pooled = `${EMBEDDING_OUTPUT}_pooled`;
  const added =
    cut.layer.op === 'Conv'
      ? [node('GlobalAveragePool', cut.tensor, pooled), node('Flatten', pooled, EMBEDDING_OUTPUT, [AXIS_1])]
      : [node('Flatten', cut.tensor, EMBEDDING_OUTPUT, [AXIS_1])];
  return rewriteGraph(model, (g) => ({
    ...g,
    nodes: [...g.nodes, ...added],
    outputs: [
      ...(g.outputs ?? []),
      encodeValueInfo({ name: EMBEDDING_OUTPUT, type: { tensor_type: { elem_type: DataType.float32 } } }),
    ],
  }));
}

const AXIS_1 = { name: 'axis', type: AttrType.INT, i: 1 };
