// A small ONNX graph builder: named values, initializers, graph inputs/outputs with shapes (symbolic
// dims as strings), and `op()` that adds a node and returns its output names. Opset 17 unless asked.
import {
  AttrType,
  DataType,
  encodeModel,
  type AttributeJson,
  type DType,
  type ModelJson,
  type NodeJson,
  type TensorProtoJson,
  type ValueInfoJson,
} from './proto.js';

export const OPSET = 17;
export const IR_VERSION = 8;

export type Dim = number | string;
export type Attr =
  | { kind: 'i'; v: number }
  | { kind: 'f'; v: number }
  | { kind: 's'; v: string }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 't'; v: TensorProtoJson };

/** Attribute constructors: `A.i(1)`, `A.f(0.5)`, `A.ints([3, 3])`, `A.s('DCR')`. */
export const A = {
  i: (v: number): Attr => ({ kind: 'i', v }),
  f: (v: number): Attr => ({ kind: 'f', v }),
  s: (v: string): Attr => ({ kind: 's', v }),
  ints: (v: number[]): Attr => ({ kind: 'ints', v }),
  floats: (v: number[]): Attr => ({ kind: 'floats', v }),
};

function toAttribute(name: string, a: Attr): AttributeJson {
  switch (a.kind) {
    case 'i':
      return { name, type: AttrType.INT, i: a.v };
    case 'f':
      return { name, type: AttrType.FLOAT, f: a.v };
    case 's':
      return { name, type: AttrType.STRING, s: new TextEncoder().encode(a.v) };
    case 'ints':
      return { name, type: AttrType.INTS, ints: a.v };
    case 'floats':
      return { name, type: AttrType.FLOATS, floats: a.v };
    case 't':
      return { name, type: AttrType.TENSOR, t: a.v };
  }
}

export type TypedData = Float32Array | Float64Array | Uint8Array | Int8Array | BigInt64Array | Int32Array;

export function tensorProto(name: string, dtype: DType, dims: number[], data: TypedData): TensorProtoJson {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, dims, data_type: DataType[dtype], raw_data: raw };
}

/** A value's type; a null shape leaves the rank open (any tensor of that element type). */
function valueInfo(name: string, dtype: DType, shape: Dim[] | null): ValueInfoJson {
  const dims = shape?.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: DataType[dtype], ...(dims ? { shape: { dim: dims } } : {}) } } };
}

export class Graph {
  private readonly nodes: NodeJson[] = [];
  private readonly inits: TensorProtoJson[] = [];
  private readonly inputs: ValueInfoJson[] = [];
  private readonly outputs: ValueInfoJson[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  constructor(
    readonly name: string,
    /** The default ONNX opset of the model (17; a graph that needs a newer operator version asks for it). */
    readonly opset = OPSET,
  ) {}

  /** A fresh value name starting with `hint`. */
  fresh(hint: string): string {
    let name = hint;
    while (this.used.has(name)) name = `${hint}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Dim[] | null): string {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: value ${name} already exists`);
    this.used.add(name);
    this.inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Expose `value` as graph output `name` (through an Identity when the names differ). */
  output(value: string, name: string, dtype: DType, shape: Dim[] | null): string {
    if (value !== name) {
      if (this.used.has(name)) throw new Error(`graph ${this.name}: output name ${name} already exists`);
      this.used.add(name);
      this.nodes.push({ op_type: 'Identity', input: [value], output: [name], name: `out_${name}` });
    }
    this.outputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  initializer(name: string, dtype: DType, dims: number[], data: TypedData): string {
    const n = this.fresh(name);
    this.inits.push(tensorProto(n, dtype, dims, data));
    return n;
  }

  /** A constant initializer, shared between uses of the same value. */
  const(values: number | number[], dtype: 'int64' | 'float32' = 'int64', dims?: number[]): string {
    const list = typeof values === 'number' ? [values] : values;
    const shape = dims ?? (typeof values === 'number' ? [] : [list.length]);
    const key = `${dtype}:${shape}:${list}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const data = dtype === 'int64' ? BigInt64Array.from(list.map((v) => BigInt(v))) : Float32Array.from(list);
    const name = this.initializer(
      `c_${dtype === 'int64' ? 'i' : 'f'}_${list
        .slice(0, 4)
        .join('_')
        .replace(/[^0-9_]/g, 'm')}`,
      dtype,
      shape,
      data,
    );
    this.constCache.set(key, name);
    return name;
  }

  /** Add a node; returns its output names. */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    outputs: number | string[] = 1,
    hint = op.toLowerCase(),
  ): string[] {
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.fresh(hint))
        : outputs.map((o) => this.fresh(o));
    const attribute = Object.entries(attrs).map(([k, v]) => toAttribute(k, v));
    this.nodes.push({
      op_type: op,
      input: inputs,
      output: outs,
      name: `${op}_${this.nodes.length}`,
      ...(attribute.length ? { attribute } : {}),
    });
    return outs;
  }

  /** Add a single-output node. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, hint?: string): string {
    return this.node(op, inputs, attrs, 1, hint)[0]!;
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  toJson(metadata: Record<string, string> = {}): ModelJson {
    return {
      ir_version: IR_VERSION,
      producer_name: 'alt-i2v-ort',
      opset_import: [{ domain: '', version: this.opset }],
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
      metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    };
  }

  encode(metadata: Record<string, string> = {}): Uint8Array {
    return encodeModel(this.toJson(metadata));
  }
}
