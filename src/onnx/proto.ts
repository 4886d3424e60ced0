// ONNX protobuf encode/decode through protobufjs with a proto2 schema of just the onnx.proto fields we
// use (field numbers as in onnx.proto, ONNX 1.17). Decoding skips fields it does not know.
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  optional int32 type = 20;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string domain = 7;
}
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}
message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}
// ModelProto's metadata alone: decoding it skips the graph (field 7) without reading its tensors.
message ModelMetadataProto {
  repeated StringStringEntryProto metadata_props = 14;
}
// ModelProto's operator sets alone, the same way.
message ModelOpsetProto {
  repeated OperatorSetIdProto opset_import = 8;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  repeated int64 dims = 1 [packed = true];
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');
const ModelMetadataProto = root.lookupType('onnx.ModelMetadataProto');
const ModelOpsetProto = root.lookupType('onnx.ModelOpsetProto');
const NodeProto = root.lookupType('onnx.NodeProto');
const TensorProto = root.lookupType('onnx.TensorProto');
const ValueInfoProto = root.lookupType('onnx.ValueInfoProto');

/** TensorProto.DataType values. */
export const DataType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
} as const;
export type DType = keyof typeof DataType;

export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export interface TensorProtoJson {
  name?: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: (number | { toNumber(): number })[];
  external_data?: { key: string; value: string }[];
  data_location?: number;
}

export interface AttributeJson {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProtoJson;
  floats?: number[];
  ints?: number[];
}

export interface NodeJson {
  op_type: string;
  input: string[];
  output: string[];
  name?: string;
  attribute?: AttributeJson[];
  /** The operator set of op_type: absent or '' for ONNX's own. */
  domain?: string;
}

export interface ValueInfoJson {
  name: string;
  type: { tensor_type: { elem_type: number; shape?: { dim: ({ dim_value: number } | { dim_param: string })[] } } };
}

export interface GraphJson {
  name: string;
  node: NodeJson[];
  initializer: TensorProtoJson[];
  input: ValueInfoJson[];
  output: ValueInfoJson[];
}

export interface ModelJson {
  ir_version: number;
  producer_name: string;
  producer_version?: string;
  opset_import: { domain: string; version: number }[];
  graph: GraphJson;
  metadata_props?: { key: string; value: string }[];
}

export function encodeModel(model: ModelJson): Uint8Array {
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** Decode a model; int64 fields come back as plain numbers. */
export function decodeModel(bytes: Uint8Array): ModelJson {
  const msg = ModelProto.decode(bytes);
  return ModelProto.toObject(msg, { longs: Number, defaults: false, arrays: true }) as unknown as ModelJson;
}

/** A model's metadata_props, without decoding its graph. */
export function readMetadataProps(bytes: Uint8Array): Map<string, string> {
  const msg = ModelMetadataProto.toObject(ModelMetadataProto.decode(bytes), { arrays: true }) as {
    metadata_props: { key?: string; value?: string }[];
  };
  return new Map(msg.metadata_props.map((e) => [e.key ?? '', e.value ?? '']));
}

/** A model's operator sets (domain '' is ONNX's own), without decoding its graph. */
export function readOpsets(bytes: Uint8Array): Map<string, number> {
  const msg = ModelOpsetProto.toObject(ModelOpsetProto.decode(bytes), { arrays: true, longs: Number }) as {
    opset_import: { domain?: string; version?: number }[];
  };
  return new Map(msg.opset_import.map((o) => [o.domain ?? '', o.version ?? 0]));
}

/** One NodeProto or TensorProto on its own (a graph's entries, rewritten one at a time). */
export function decodeNode(bytes: Uint8Array): NodeJson {
  return NodeProto.toObject(NodeProto.decode(bytes), { longs: Number, arrays: true }) as unknown as NodeJson;
}
export function encodeNode(node: NodeJson): Uint8Array {
  return NodeProto.encode(NodeProto.fromObject(node)).finish();
}
export function encodeValueInfo(v: ValueInfoJson): Uint8Array {
  return ValueInfoProto.encode(ValueInfoProto.fromObject(v)).finish();
}
export function decodeValueInfo(bytes: Uint8Array): ValueInfoJson {
  return ValueInfoProto.toObject(ValueInfoProto.decode(bytes), {
    longs: Number,
    arrays: true,
  }) as unknown as ValueInfoJson;
}
export function decodeTensor(bytes: Uint8Array): TensorProtoJson {
  return TensorProto.toObject(TensorProto.decode(bytes), { longs: Number, arrays: true }) as unknown as TensorProtoJson;
}
export function encodeTensor(t: TensorProtoJson): Uint8Array {
  return TensorProto.encode(TensorProto.fromObject(t)).finish();
}

const BYTES: Record<number, number> = { 1: 4, 2: 1, 6: 4, 7: 8, 9: 1, 11: 8 };

/** The float32 values of an initializer, from raw_data or float_data. */
export function tensorToFloat32(t: TensorProtoJson): Float32Array {
  const n = t.dims.reduce((a, b) => a * Number(b), 1);
  if (t.data_location === 1 || (t.external_data && t.external_data.length > 0)) {
    throw new Error(`tensor ${t.name} keeps its data in an external file; save the model with its weights inside`);
  }
  if (t.data_type !== DataType.float32)
    throw new Error(`tensor ${t.name} has data type ${t.data_type}, expected float32 (1)`);
  if (t.raw_data && t.raw_data.length > 0) {
    if (t.raw_data.length !== n * BYTES[1]!)
      throw new Error(`tensor ${t.name} has ${t.raw_data.length} bytes for ${n} floats`);
    const copy = new Uint8Array(t.raw_data); // aligned copy
    return new Float32Array(copy.buffer, 0, n);
  }
  const f = Float32Array.from(t.float_data ?? []);
  if (f.length !== n) throw new Error(`tensor ${t.name} has ${f.length} values for shape [${t.dims}]`);
  return f;
}
