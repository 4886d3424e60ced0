// safetensors read/write: 8-byte little-endian header length, JSON header, raw little-endian bytes.
// Writes are atomic (util/fsx.ts): a file under its final name is complete.
import { open } from 'node:fs/promises';
import { UsageError } from '../util/errors.js';
import { fsReason, writeAll, writeAtomic } from '../util/fsx.js';

export type Dtype = 'U8' | 'F32' | 'F64' | 'I64' | 'I32';
const DTYPE_BYTES: Record<Dtype, number> = { U8: 1, F32: 4, F64: 8, I64: 8, I32: 4 };

export interface TensorSpec {
  dtype: Dtype;
  shape: number[];
  /** The bytes, in order; several chunks are concatenated (no copy is made). */
  chunks: readonly Uint8Array[];
}

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** File offset where the data section starts. */
  dataStart: number;
}

/** Write tensors (in the given order) and string metadata atomically to `file`. */
export async function writeSafetensors(file: string, tensors: Record<string, TensorSpec>, metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.chunks.reduce((s, c) => s + c.byteLength, 0);
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (bytes !== want) throw new Error(`tensor ${name}: ${bytes} bytes for shape [${t.shape}] ${t.dtype} (want ${want})`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8; // keeps the data section 8-byte aligned
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const all: Uint8Array[] = [prefix, json];
  for (const t of Object.values(tensors)) all.push(...t.chunks);
  await writeAtomic(file, (fh) => writeAll(fh, all));
}

/** Read and validate the header of a safetensors file; the error names the file and what is wrong. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await open(file, 'r').catch((err: unknown) => {
    throw new UsageError(`Expected a safetensors file but ${JSON.stringify(file)} cannot be read (${fsReason(err)})`);
  });
  try {
    const { size } = await fh.stat();
    const bad = (what: string): UsageError => new UsageError(`Expected a safetensors file but ${JSON.stringify(file)} ${what}`);
    if (size < 8) throw bad(`is ${size} bytes long`);
    const prefix = Buffer.alloc(8);
    await fh.read(prefix, 0, 8, 0);
    const len = Number(prefix.readBigUInt64LE());
    if (len > 100_000_000 || 8 + len > size) throw bad(`declares a ${len}-byte header in a ${size}-byte file (truncated?)`);
    const json = Buffer.alloc(len);
    await fh.read(json, 0, len, 8);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(json.toString('utf8'));
    } catch {
      throw bad('has a header that is not JSON');
    }
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    let dataEnd = 0;
    for (const [name, value] of Object.entries(parsed)) {
      if (name === '__metadata__') {
        metadata = value as Record<string, string>;
        continue;
      }
      const v = value as { dtype: Dtype; shape: number[]; data_offsets: [number, number] };
      const [begin, end] = v.data_offsets ?? [];
      const bytes = DTYPE_BYTES[v.dtype];
      if (!bytes || !Array.isArray(v.shape) || typeof begin !== 'number' || typeof end !== 'number') throw bad(`has a malformed entry for ${name}`);
      if (end - begin !== v.shape.reduce((a, b) => a * b, 1) * bytes) throw bad(`has a size mismatch for ${name}`);
      tensors.set(name, { dtype: v.dtype, shape: v.shape, begin, end });
      dataEnd = Math.max(dataEnd, end);
    }
    const dataStart = 8 + len;
    if (dataStart + dataEnd !== size) throw bad(`is ${size} bytes but its header describes ${dataStart + dataEnd} (truncated?)`);
    return { tensors, metadata, dataStart };
  } finally {
    await fh.close();
  }
}

/**
 * Read whole tensors by name from a safetensors file (validated header). `into` supplies a buffer per
 * tensor to read into (its first bytes; it must be large enough), so callers can reuse memory.
 */
export async function readSafetensors(file: string, names?: readonly string[], into?: (name: string, bytes: number) => Buffer): Promise<{ header: SafetensorsHeader; data: Map<string, Buffer> }> {
  const header = await readSafetensorsHeader(file);
  const data = new Map<string, Buffer>();
  const fh = await open(file, 'r');
  try {
    for (const name of names ?? [...header.tensors.keys()]) {
      const info = header.tensors.get(name);
      if (!info) throw new UsageError(`Expected a tensor named ${name} in ${JSON.stringify(file)} but it has ${[...header.tensors.keys()].join(', ') || 'none'}`);
      const bytes = info.end - info.begin;
      const buf = into ? into(name, bytes).subarray(0, bytes) : Buffer.alloc(bytes);
      await fh.read(buf, 0, buf.length, header.dataStart + info.begin);
      data.set(name, buf);
    }
  } finally {
    await fh.close();
  }
  return { header, data };
}
