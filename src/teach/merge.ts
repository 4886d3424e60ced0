// One model out of a base tagger and a head taught on its embedding: the base's graph kept as it is
// encoded (its weights byte for byte, rewritten at the wire level), the head's nodes appended reading the
// base's embedding (pooled and flattened as withEmbeddingOutput does, then rounded to float16: exactly
// what the head trained on), and the scores output now the base's scores followed by the new tags' —
// or, where a taught tag replaces a base tag or only the new tags are wanted, those columns gathered.
import {
  AttrType,
  DataType,
  decodeNode,
  decodeTensor,
  decodeValueInfo,
  encodeNode,
  encodeTensor,
  encodeValueInfo,
  type GraphJson,
  type NodeJson,
} from '../onnx/proto.js';
import { graphEntries, rewriteGraph } from '../onnx/wire.js';
import type { EmbeddingCut } from '../model/embedding.js';
import { UsageError } from '../util/errors.js';

/** Every name the merge adds starts with this; a model that already has one is a merged model. */
export const MERGE_PREFIX = 'alt_i2v_head/';

export interface MergeInput {
  base: Uint8Array;
  /** The base's file, for messages. */
  file: string;
  cut: EmbeddingCut;
  /** The base's scores output. */
  scores: string;
  /** The head alone (training/graphs.ts buildHeadGraph): input `input`, output `output`. */
  head: GraphJson;
  input: string;
  output: string;
  /** Columns of the merged scores: indices into [base scores…, head scores…]; absent = all, in order. */
  columns?: number[];
  /** The number of columns of the merged scores, for the output's declared shape. */
  width: number;
}

const attr = {
  i: (name: string, i: number) => ({ name, type: AttrType.INT, i }),
};

export function mergeHead(m: MergeInput): Uint8Array {
  const { nodes, initializers } = graphEntries(m.base);
  const where = JSON.stringify(m.file);
  const taken = new Set<string>();
  for (const n of nodes) for (const o of decodeNode(n).output) taken.add(o);
  for (const t of initializers) taken.add(decodeTensor(t).name ?? '');
  if ([...taken].some((t) => t.startsWith(MERGE_PREFIX)))
    throw new UsageError(
      `Expected a base tagger in ${where} but it already holds a taught head (names ${MERGE_PREFIX}…); teach its own base model instead`,
    );
  const own = (n: string): string => (n === '' ? '' : `${MERGE_PREFIX}${n}`);
  const baseScores = `${MERGE_PREFIX}base_scores`;
  // The base's scores tensor is renamed where it is made and read; the merged scores take its name.
  const renamed = nodes.map((bytes) => {
    const n = decodeNode(bytes);
    if (!n.output.includes(m.scores) && !n.input.includes(m.scores)) return bytes;
    const swap = (x: string): string => (x === m.scores ? baseScores : x);
    return encodeNode({ ...n, input: n.input.map(swap), output: n.output.map(swap) });
  });
  const added: NodeJson[] = [];
  const node = (op_type: string, input: string[], output: string, attribute: NodeJson['attribute'] = []): string => {
    added.push({ op_type, input, output: [output], name: output, attribute });
    return output;
  };
  let e = m.cut.tensor;
  if (m.cut.layer.op === 'Conv') e = node('GlobalAveragePool', [e], own('embedding_pooled'));
  e = node('Flatten', [e], own('embedding_flat'), [attr.i('axis', 1)]);
  node('Cast', [e], own(m.input), [attr.i('to', DataType.float16)]);
  for (const n of m.head.node)
    added.push({ ...n, name: own(n.name ?? ''), input: n.input.map(own), output: n.output.map(own) });
  const flat = node('Flatten', [baseScores], own('base_scores_2d'), [attr.i('axis', 1)]);
  const both = [flat, own(m.output)];
  if (m.columns) {
    const cat = node('Concat', both, own('concat'), [attr.i('axis', 1)]);
    const idx = own('columns');
    added.push({
      op_type: 'Gather',
      input: [cat, idx],
      output: [m.scores],
      name: own('gather'),
      attribute: [attr.i('axis', 1)],
    });
    const head = m.head.initializer.map((t) => ({ ...t, name: own(t.name ?? '') }));
    head.push({
      name: idx,
      dims: [m.columns.length],
      data_type: DataType.int64,
      raw_data: new Uint8Array(BigInt64Array.from(m.columns.map(BigInt)).buffer),
    });
    return write(m, renamed, added, head, initializers);
  }
  added.push({
    op_type: 'Concat',
    input: both,
    output: [m.scores],
    name: own('concat'),
    attribute: [attr.i('axis', 1)],
  });
  return write(
    m,
    renamed,
    added,
    m.head.initializer.map((t) => ({ ...t, name: own(t.name ?? '') })),
    initializers,
  );
}

function write(
  m: MergeInput,
  nodes: Uint8Array[],
  added: NodeJson[],
  head: GraphJson['initializer'],
  initializers: Uint8Array[],
): Uint8Array {
  return rewriteGraph(m.base, (g) => ({
    nodes: [...nodes, ...added.map(encodeNode)],
    initializers: [...initializers, ...head.map(encodeTensor)],
    outputs: (g.outputs ?? []).map((bytes) => {
      const v = decodeValueInfo(bytes);
      if (v.name !== m.scores) return bytes;
      const batch = v.type?.tensor_type?.shape?.dim?.[0] ?? { dim_param: 'N' };
      return encodeValueInfo({
        name: m.scores,
        type: { tensor_type: { elem_type: DataType.float32, shape: { dim: [batch, { dim_value: m.width }] } } },
      });
    }),
  }));
}
