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
}

/** `model` with its graph's nodes and initializers replaced by what `edit` returns from them. */
export function rewriteGraph(model: Uint8Array, edit: (g: GraphEntries) => GraphEntries): Uint8Array {
  const top = fields(model, 'the model');
  const graphs = top.filter((f) => f.no === 7 && f.data);
  if (graphs.length !== 1) throw new Error(`the model has ${graphs.length} graphs, expected 1`);
  const graph = fields(graphs[0]!.data!, 'the graph');
  const nodes = graph.filter((f) => f.no === 1 && f.data).map((f) => f.data!);
  const initializers = graph.filter((f) => f.no === 5 && f.data).map((f) => f.data!);
  const next = edit({ nodes, initializers });
  const parts: Uint8Array[] = [];
  let nodesOut = false;
  let initsOut = false;
  for (const f of graph) {
    if (f.no === 1 && f.data) {
      if (!nodesOut) parts.push(...next.nodes.map((n) => field(1, n)));
      nodesOut = true;
    } else if (f.no === 5 && f.data) {
      if (!initsOut) parts.push(...next.initializers.map((t) => field(5, t)));
      initsOut = true;
    } else parts.push(graphs[0]!.data!.subarray(f.start, f.end));
  }
  if (!nodesOut) parts.push(...next.nodes.map((n) => field(1, n)));
  if (!initsOut) parts.push(...next.initializers.map((t) => field(5, t)));
  const out: Uint8Array[] = [];
  for (const f of top) out.push(f.no === 7 && f.data ? field(7, Buffer.concat(parts)) : model.subarray(f.start, f.end));
  return Buffer.concat(out);
}
