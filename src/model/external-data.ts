// Models that keep their weights in external data files (ONNX's form for models over protobuf's 2 GB:
// a TensorProto with data_location = EXTERNAL and external_data {location, offset, length}). Nothing
// in such a file is trusted: every location must name a file inside the model's own folder (relative,
// no "..", not absolute), every range must lie inside that file and hold exactly the bytes the
// tensor's shape and type need — checked here before ONNX Runtime or `quantize` reads a byte of it.
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodeTensor, type TensorProtoJson } from '../onnx/proto.js';
import { graphEntries } from '../onnx/wire.js';
import { UsageError } from '../util/errors.js';
import { fsReason } from '../util/fsx.js';

/** Bytes per element of the fixed-size ONNX data types (TensorProto.DataType). */
const ELEMENT_BYTES: Record<number, number> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  16: 2,
};

export interface ExternalRef {
  tensor: string;
  /** The location as written in the model. */
  location: string;
  /** The file it names, beside the model. */
  file: string;
  offset: number;
  length: number;
}

/** Whether `t` keeps its data in an external file. */
export const isExternal = (t: TensorProtoJson): boolean => t.data_location === 1;

function bad(model: string, tensor: string, what: string): UsageError {
  return new UsageError(
    `Expected the external data of tensor ${JSON.stringify(tensor)} in ${JSON.stringify(model)} ${what}`,
  );
}

/** The checked reference of one external tensor (the file's size is checked by `checkExternalData`). */
function refOf(t: TensorProtoJson, model: string): ExternalRef {
  const name = t.name ?? '';
  const kv = new Map((t.external_data ?? []).map((e) => [e.key, e.value]));
  const location = kv.get('location') ?? '';
  const parts = location.split(/[\\/]/);
  if (
    !location ||
    location.includes('\0') ||
    path.isAbsolute(location) ||
    /^[A-Za-z]:/.test(location) ||
    parts.some((p) => p === '..')
  )
    throw bad(model, name, `to name a file inside the model's folder but its location is ${JSON.stringify(location)}`);
  const int = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    if (!/^\d{1,15}$/.test(v)) throw bad(model, name, `to give a whole number ${key} but it is ${JSON.stringify(v)}`);
    return Number(v);
  };
  const size = ELEMENT_BYTES[t.data_type];
  if (size === undefined) throw bad(model, name, `to be of a fixed-size data type but its type is ${t.data_type}`);
  const need = t.dims.reduce((a, b) => a * Number(b), 1) * size;
  const length = int('length') ?? need;
  if (length !== need)
    throw bad(model, name, `to be ${need} bytes (shape [${t.dims.join(', ')}]) but its length is ${length}`);
  return { tensor: name, location, file: path.join(path.dirname(model), location), offset: int('offset') ?? 0, length };
}

/**
 * The external references of `bytes` (the model read from `model`), each checked against the file it
 * names; [] for a model that keeps its weights inside. Throws a UsageError naming the tensor.
 */
export async function checkExternalData(bytes: Uint8Array, model: string): Promise<ExternalRef[]> {
  let tensors: TensorProtoJson[];
  try {
    tensors = graphEntries(bytes).initializers.map(decodeTensor);
  } catch {
    throw new UsageError(`Expected an ONNX model in ${JSON.stringify(model)} but it does not parse`);
  }
  const refs = tensors.filter(isExternal).map((t) => refOf(t, model));
  const sizes = new Map<string, number>();
  for (const r of refs) {
    let size = sizes.get(r.file);
    if (size === undefined) {
      const s = await stat(r.file).catch((e: unknown) => e as Error);
      if (s instanceof Error || !s.isFile())
        throw bad(
          model,
          r.tensor,
          `in ${JSON.stringify(r.file)} but that ${s instanceof Error ? `cannot be read (${fsReason(s)})` : 'is not a file'}`,
        );
      sizes.set(r.file, (size = s.size));
    }
    if (r.offset + r.length > size)
      throw bad(
        model,
        r.tensor,
        `at bytes ${r.offset}…${r.offset + r.length} of ${JSON.stringify(r.file)} but it has ${size}`,
      );
  }
  return refs;
}

/** The bytes of each checked reference, by tensor name. */
export async function readExternalData(refs: ExternalRef[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const byFile = new Map<string, ExternalRef[]>();
  for (const r of refs) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
  for (const [file, list] of byFile) {
    const fh = await open(file, 'r');
    try {
      for (const r of list) {
        const buf = Buffer.allocUnsafe(r.length);
        const { bytesRead } = await fh.read(buf, 0, r.length, r.offset);
        if (bytesRead !== r.length)
          throw new UsageError(
            `Expected ${r.length} bytes at ${r.offset} of ${JSON.stringify(file)} but it ended early`,
          );
        out.set(r.tensor, buf);
      }
    } finally {
      await fh.close();
    }
  }
  return out;
}
