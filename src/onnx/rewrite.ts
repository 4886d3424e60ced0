// The graph-rewrite kit every float and int8 rewrite shares: fresh names that collide with nothing in
// the graph, nodes encoded as they are emitted, the tensors added; and the two checks each rewrite
// makes before touching a node (a subgraph may read any name; only ONNX's default domain is ours to
// rewrite).
import { encodeNode, type AttributeJson, type NodeJson, type TensorProtoJson } from './proto.js';

/** Whether a node has a subgraph (If, Loop, Scan: attribute types GRAPH, GRAPHS), which may read any name of the graph. */
export const hasSubgraph = (decoded: NodeJson[]): boolean =>
  decoded.some((n) => n.attribute?.some((a) => a.type === 5 || a.type === 10));

/** Whether `n` is in ONNX's default domain. */
export const standardDomain = (n: NodeJson): boolean => (n.domain ?? '') === '' || n.domain === 'ai.onnx';

/** The state of one graph's rewrite: fresh names, the tensors added, the nodes written. */
export class Rewrite {
  readonly added: TensorProtoJson[] = [];
  readonly nodes: Uint8Array[] = [];
  constructor(private readonly names: Set<string>) {}

  fresh(hint: string): string {
    let name = hint;
    for (let i = 1; this.names.has(name); i++) name = `${hint}_${i}`;
    this.names.add(name);
    return name;
  }

  /** `node` encoded into `into`; one without a name gets a fresh one from its first output. */
  emitNode(node: NodeJson, into: Uint8Array[]): void {
    into.push(encodeNode(node.name ? node : { ...node, name: this.fresh(`${node.output[0]}_${node.op_type}`) }));
  }

  emit(base: string, op_type: string, input: string[], output: string[], attribute?: AttributeJson[]): void {
    const name = this.fresh(`${base}_${op_type}`);
    this.nodes.push(encodeNode({ op_type, input, output, name, ...(attribute ? { attribute } : {}) }));
  }
}
