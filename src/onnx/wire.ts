// A model rewritten at the protobuf wire level: only the graph's node (field 1) and initializer
// (field 5) entries change; every other byte — fields this project's schema does not know (value_info,
// doc strings, functions, training info, metadata) included — is copied as it was. Field numbers as in
// onnx.proto: ModelProto.graph = 7; GraphProto.node = 1, GraphProto.initializer = 5.
import protobuf from 'protobufjs';

interface Field {
  no: number;
  start: number;
  end: number;
  /** The payload of a length-delimited field. */
  data?: Uint8Array;
}

/** The top-level fields of one message, in file order. */
function fields(bytes: Uint8Array, what: string): Field[] {
  const r = protobuf.Reader.create(bytes);
  const out: Field[] = [];
  try {
    while (r.pos < r.len) {
      const start = r.pos;
      const tag = r.uint32();
      const [no, wire] = [tag >>> 3, tag & 7];
      if (wire === 2) {
        const len = r.uint32();
        const at = r.pos;
        r.skip(len);
        out.push({ no, start, end: r.pos, data: bytes.subarray(at, at + len) });
      } else {
        r.skipType(wire);
        out.push({ no, start, end: r.pos });
      }
    }
  } catch (err) {
    throw new Error(`${what} is not a well-formed protobuf message (${(err as Error).message})`, { cause: err });
  }
  return out;
}

const field = (no: number, data: Uint8Array): Uint8Array => {
  const w = protobuf.Writer.create();
  w.uint32((no << 3) | 2).bytes(data);
  return w.finish();
};

export interface GraphEntries {
  /** Encoded NodeProtos, in the graph's (topological) order. */
  nodes: Uint8Array[];
  /** Encoded TensorProtos. */
  initializers: Uint8Array[];
  /** Encoded ValueInfoProtos of the graph's outputs (field 12); left as they are when an edit omits them. */
  outputs?: Uint8Array[];
}

function graphOf(model: Uint8Array): { top: Field[]; graph: Field[]; data: Uint8Array } & GraphEntries {
  const top = fields(model, 'the model');
  const graphs = top.filter((f) => f.no === 7 && f.data);
  if (graphs.length !== 1) throw new Error(`the model has ${graphs.length} graphs, expected 1`);
  const graph = fields(graphs[0]!.data!, 'the graph');
  const nodes = graph.filter((f) => f.no === 1 && f.data).map((f) => f.data!);
  const initializers = graph.filter((f) => f.no === 5 && f.data).map((f) => f.data!);
  const outputs = graph.filter((f) => f.no === 12 && f.data).map((f) => f.data!);
  return { top, graph, data: graphs[0]!.data!, nodes, initializers, outputs };
}

/** The graph's nodes and initializers as encoded in `model` (views into it, nothing decoded). */
export function graphEntries(model: Uint8Array): GraphEntries {
  const { nodes, initializers, outputs } = graphOf(model);
  return { nodes, initializers, outputs };
}

/**
 * `model` with its graph's nodes and initializers (and outputs, when `edit` returns them) replaced by
 * what `edit` returns from them; each replaced list sits where its first entry was.
 */
export function rewriteGraph(model: Uint8Array, edit: (g: GraphEntries) => GraphEntries): Uint8Array {
  const { top, graph, data, nodes, initializers, outputs } = graphOf(model);
  const next = edit({ nodes, initializers, outputs });
  const lists = new Map<number, Uint8Array[]>([
    [1, next.nodes],
    [5, next.initializers],
  ]);
  if (next.outputs) lists.set(12, next.outputs);
  const parts: Uint8Array[] = [];
  const written = new Set<number>();
  for (const f of graph) {
    const list = f.data ? lists.get(f.no) : undefined;
    if (!list) parts.push(data.subarray(f.start, f.end));
    else if (!written.has(f.no)) parts.push(...list.map((e) => field(f.no, e)));
    if (list) written.add(f.no);
  }
  for (const [no, list] of lists) if (!written.has(no)) parts.push(...list.map((e) => field(no, e)));
  const out: Uint8Array[] = [];
  for (const f of top) out.push(f.no === 7 && f.data ? field(7, Buffer.concat(parts)) : model.subarray(f.start, f.end));
  return Buffer.concat(out);
}

/** A StringStringEntryProto: key = 1, value = 2. */
function entry(key: string, value: string): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(key);
  w.uint32((2 << 3) | 2).string(value);
  return w.finish();
}

/**
 * `model` with metadata_props (ModelProto field 14) `props` set: entries of those keys replaced, the
 * others kept; every other byte as it was.
 */
export function withMetadataProps(model: Uint8Array, props: Record<string, string>): Uint8Array {
  const keys = new Set(Object.keys(props));
  const keyOf = (data: Uint8Array): string => {
    const f = fields(data, 'a metadata entry').find((x) => x.no === 1 && x.data);
    return f ? Buffer.from(f.data!).toString('utf8') : '';
  };
  const out: Uint8Array[] = [];
  for (const f of fields(model, 'the model'))
    if (!(f.no === 14 && f.data && keys.has(keyOf(f.data)))) out.push(model.subarray(f.start, f.end));
  for (const [k, v] of Object.entries(props)) out.push(field(14, entry(k, v)));
  return Buffer.concat(out);
}
