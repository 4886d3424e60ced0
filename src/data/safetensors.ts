// safetensors read/write: 8-byte little-endian header length, JSON header, raw little-endian bytes.
// Writes are atomic (util/fsx.ts): a file under its final name is complete.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { UsageError } from '../util/errors.js';
import { fsReason, writeAll, writeAtomic } from '../util/fsx.js';
import { parseJson } from '../util/json.js';

export type Dtype = 'U8' | 'F16' | 'F32' | 'F64' | 'I64' | 'I32';
const DTYPE_BYTES: Record<Dtype, number> = { U8: 1, F16: 2, F32: 4, F64: 8, I64: 8, I32: 4 };

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
export async function writeSafetensors(
  file: string,
  tensors: Record<string, TensorSpec>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.chunks.reduce((s, c) => s + c.byteLength, 0);
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (bytes !== want)
      throw new Error(`tensor ${name}: ${bytes} bytes for shape [${t.shape}] ${t.dtype} (want ${want})`);
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

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * The tensors and metadata of a parsed header, checked: known dtypes, shapes of non-negative integers,
 * offsets non-negative, in bounds, matching the shape, not overlapping and covering the whole data
 * section (so no byte is unaccounted for), metadata values strings.
 */
function parseEntries(
  parsed: unknown,
  dataBytes: number,
  bad: (what: string) => UsageError,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw bad('has a header that is not a JSON object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string'))
        throw bad('has __metadata__ that is not a map of strings');
      metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bytes = DTYPE_BYTES[v?.dtype as Dtype];
    if (!bytes)
      throw bad(
        `has tensor ${name} with dtype ${JSON.stringify(v?.dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    if (!Array.isArray(v.shape) || !v.shape.every(isCount))
      throw bad(`has tensor ${name} with shape ${JSON.stringify(v.shape)} (expected non-negative integers)`);
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0]! > offsets[1]!) {
      throw bad(
        `has tensor ${name} with data_offsets ${JSON.stringify(offsets)} (expected [begin, end], 0 ≤ begin ≤ end)`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataBytes)
      throw bad(`has tensor ${name} ending at byte ${end} of a ${dataBytes}-byte data section (truncated?)`);
    if (end - begin !== (v.shape as number[]).reduce((x, y) => x * y, 1) * bytes)
      throw bad(`has tensor ${name} whose ${end - begin} bytes do not fit shape [${v.shape}] ${v.dtype}`);
    tensors.set(name, { dtype: v.dtype as Dtype, shape: v.shape as number[], begin, end });
  }
  const spans = [...tensors].sort((x, y) => x[1].begin - y[1].begin || x[1].end - y[1].end);
  let at = 0;
  for (const [name, t] of spans) {
    if (t.begin < at) throw bad(`has tensor ${name} overlapping the one before it (bytes ${t.begin}–${t.end})`);
    if (t.begin > at) throw bad(`has ${t.begin - at} bytes before tensor ${name} that no tensor covers`);
    at = t.end;
  }
  if (at !== dataBytes)
    throw bad(
      `is ${dataBytes - at} bytes longer than its header describes (expected ${at} data bytes, found ${dataBytes})`,
    );
  return { tensors, metadata };
}

let integrity = true;

/** Whether shard and checkpoint reads verify their SHA-256 (on by default; `--no-verify` turns it off). */
export function setIntegrityCheck(on: boolean): void {
  integrity = on;
}

export function integrityCheck(): boolean {
  return integrity;
}

/** SHA-256 (hex) of byte chunks in order: the integrity hash of a shard's or checkpoint's data. */
export function sha256Hex(chunks: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Read and validate the header of a safetensors file; the error names the file and what is wrong. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await open(file, 'r').catch((err: unknown) => {
    throw new UsageError(`Expected a safetensors file but ${JSON.stringify(file)} cannot be read (${fsReason(err)})`);
  });
  try {
    const { size } = await fh.stat();
    const bad = (what: string): UsageError =>
      new UsageError(`Expected a safetensors file but ${JSON.stringify(file)} ${what}`);
    if (size < 8) throw bad(`is ${size} bytes long`);
    const prefix = Buffer.alloc(8);
    await fh.read(prefix, 0, 8, 0);
    const len = Number(prefix.readBigUInt64LE());
    if (len > 100_000_000 || 8 + len > size)
      throw bad(`declares a ${len}-byte header in a ${size}-byte file (truncated?)`);
    const json = Buffer.alloc(len);
    await fh.read(json, 0, len, 8);
    let parsed: Record<string, unknown>;
    try {
      parsed = parseJson(json.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw bad('has a header that is not JSON');
    }
    const dataStart = 8 + len;
    const { tensors, metadata } = parseEntries(parsed, size - dataStart, bad);
    return { tensors, metadata, dataStart };
  } finally {
    await fh.close();
  }
}

/**
 * Read whole tensors by name from a safetensors file (validated header). `into` supplies a buffer per
 * tensor to read into (its first bytes; it must be large enough), so callers can reuse memory.
 */
export async function readSafetensors(
  file: string,
  names?: readonly string[],
  into?: (name: string, bytes: number) => Buffer,
): Promise<{ header: SafetensorsHeader; data: Map<string, Buffer> }> {
  const header = await readSafetensorsHeader(file);
  const data = new Map<string, Buffer>();
  const fh = await open(file, 'r');
  try {
    for (const name of names ?? [...header.tensors.keys()]) {
      const info = header.tensors.get(name);
      if (!info)
        throw new UsageError(
          `Expected a tensor named ${name} in ${JSON.stringify(file)} but it has ${[...header.tensors.keys()].join(', ') || 'none'}`,
        );
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
