// The "illustration to vector" and search over it: tag probabilities, hidden features or
// illustration2vec's binary hash per image; a `vec` index (.npy plus FILE.npy.json naming the rows)
// written and read back; nearest neighbours by cosine similarity, or Hamming distance for hashes.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { readInput, readJsonInput, writeFilesAtomic } from '../util/fsx.js';
import { decodeBatches, listImages } from '../predict/inputs.js';
import type { TaggerModel } from '../model/tagger.js';
import { encodeNpy, parseNpy, type NpyArray } from './npy.js';
import { NON_FINITE } from '../predict/tagging.js';

export const VEC_KINDS = ['probs', 'features', 'binary'] as const;
export type VecKind = (typeof VEC_KINDS)[number];

export interface VecIndexMeta {
  format: 'alt-i2v-ort/vec';
  model: string;
  kind: VecKind;
  dim: number;
  files: string[];
  /** The model's fingerprint (TaggerModel.fingerprint), so files fitted on these vectors can name it. */
  fingerprint?: string;
  /** Names of the dimensions: the tags for probs. */
  names?: string[];
  /** SHA-256 of the .npy it describes: the two are written as one unit, and read only together. */
  npySha256?: string;
}

export interface Vectors {
  files: string[];
  rows: (Float32Array | Uint8Array)[];
  /** Values per vector before packing (bits for binary). */
  dim: number;
}

/** illustration2vec's binary hash: features > 0, packed 8 per byte, most significant bit first (numpy.packbits). */
export function packBits(features: ArrayLike<number>, n: number, d: number): Uint8Array {
  const row = Math.ceil(d / 8);
  const out = new Uint8Array(n * row);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) if (features[i * d + j]! > 0) out[i * row + (j >> 3)]! |= 0x80 >> (j & 7);
  return out;
}

/** Vectors of the images in `args` (files, folders, stdin lists); unreadable images go to onFailure. */
export async function vectorize(
  model: TaggerModel,
  args: string[],
  kind: VecKind,
  batch: number,
  onFailure: (file: string, reason: string) => void,
): Promise<Vectors> {
  const files: string[] = [];
  const rows: (Float32Array | Uint8Array)[] = [];
  if (kind !== 'probs' && model.meta.hidden === 0)
    throw new UsageError(
      `Expected --kind probs for ${model.meta.source}: it has no features output (load it with its embedding for features and binary)`,
    );
  const dim = kind === 'probs' ? model.meta.tags.length : model.meta.hidden;
  for await (const b of decodeBatches(listImages(args), { ...model.preprocess, batch })) {
    for (const f of b.failures) onFailure(f.file, f.reason);
    if (b.files.length === 0) continue;
    const out = await model.run(b.images, b.files.length);
    const src = kind === 'probs' ? out.probs : out.features;
    for (let i = 0; i < b.files.length; i++) {
      if (out.nonFinite.includes(i)) {
        onFailure(b.files[i]!, NON_FINITE);
        continue;
      }
      const row = src.slice(i * dim, (i + 1) * dim);
      rows.push(kind === 'binary' ? packBits(row, 1, dim) : row);
      files.push(b.files[i]!);
    }
  }
  return { files, rows, dim };
}

/** One JSON line per vector: `{"file", "vector": [...]}` or `{"file", "hash": "hex"}`. */
export function vectorLines(v: Vectors, kind: VecKind): string[] {
  return v.files.map((file, i) =>
    JSON.stringify({
      file,
      [kind === 'binary' ? 'hash' : 'vector']:
        kind === 'binary' ? Buffer.from(v.rows[i]!).toString('hex') : Array.from(v.rows[i]!),
    }),
  );
}

/** FILE.npy (float32 rows, or uint8 packed bits) and FILE.npy.json naming the rows, the model and the kind. */
export async function writeVecIndex(
  file: string,
  v: Vectors,
  kind: VecKind,
  model: string,
  tagger?: TaggerModel,
): Promise<void> {
  const width = kind === 'binary' ? Math.ceil(v.dim / 8) : v.dim;
  const shape: [number, number] = [v.rows.length, width];
  const array: NpyArray =
    kind === 'binary'
      ? { dtype: 'u1', shape, data: new Uint8Array(v.rows.length * width) }
      : { dtype: 'f4', shape, data: new Float32Array(v.rows.length * width) };
  v.rows.forEach((row, i) => array.data.set(row, i * width));
  const npy = encodeNpy(array);
  const meta: VecIndexMeta = {
    format: 'alt-i2v-ort/vec',
    model: path.resolve(model),
    kind,
    dim: v.dim,
    files: v.files.map((f) => path.resolve(f)),
    ...(tagger ? { fingerprint: tagger.fingerprint, ...(kind === 'probs' ? { names: tagger.meta.tags } : {}) } : {}),
    npySha256: createHash('sha256').update(npy).digest('hex'),
  };
  // The .npy is renamed first, its description last: a kill between them leaves a description whose
  // checksum names the old array, which readVecIndex refuses.
  await writeFilesAtomic([
    [file, npy],
    [`${file}.json`, Buffer.from(JSON.stringify(meta))],
  ]);
}

export async function readVecIndex(file: string): Promise<{ meta: VecIndexMeta; index: NpyArray }> {
  const metaFile = `${file}.json`;
  const meta = await readJsonInput<VecIndexMeta>(
    metaFile,
    `${JSON.stringify(metaFile)} next to the index (written by \`vec --out FILE.npy\`)`,
  );
  const bad = (what: string): UsageError =>
    new UsageError(`Expected a vec index description in ${JSON.stringify(metaFile)} but ${what}`);
  if (meta?.format !== 'alt-i2v-ort/vec') throw bad('its format is not alt-i2v-ort/vec');
  if (!VEC_KINDS.includes(meta.kind))
    throw bad(`its kind is ${JSON.stringify(meta.kind)} (expected probs, features or binary)`);
  if (!Array.isArray(meta.files) || !meta.files.every((f) => typeof f === 'string'))
    throw bad('its files are not a list of paths');
  if (!Number.isInteger(meta.dim) || meta.dim < 1) throw bad('its dim is not a positive integer');
  if (meta.names !== undefined && (!Array.isArray(meta.names) || meta.names.length !== meta.dim))
    throw bad(`its names are not ${meta.dim} names, one per dimension`);
  if (meta.fingerprint !== undefined && typeof meta.fingerprint !== 'string')
    throw bad('its fingerprint is not a string');
  const bytes = await readInput(file, 'a .npy index');
  if (meta.npySha256 !== undefined && createHash('sha256').update(bytes).digest('hex') !== meta.npySha256)
    throw new UsageError(
      `Expected ${JSON.stringify(file)} to be the array ${JSON.stringify(metaFile)} describes but it is another (a \`vec\` run stopped between the two files?): run \`vec\` again`,
    );
  const index = parseNpy(bytes, file);
  if (index.shape[0] !== meta.files.length)
    throw new UsageError(
      `Expected ${meta.files.length} rows in ${JSON.stringify(file)} as its .json lists but it has ${index.shape[0]}`,
    );
  const [dtype, width] = meta.kind === 'binary' ? ['u1', Math.ceil(meta.dim / 8)] : ['f4', meta.dim];
  if (index.dtype !== dtype || index.shape[1] !== width)
    throw new UsageError(
      `Expected ${meta.kind} rows of ${width} ${dtype === 'f4' ? 'float32' : 'uint8'} values in ${JSON.stringify(file)} as its .json says but they are ${index.shape[1]} ${index.dtype === 'f4' ? 'float32' : 'uint8'}`,
    );
  return { meta, index };
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => i.toString(2).replace(/0/g, '').length);

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>, off = 0): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[off + i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export function hamming(a: ArrayLike<number>, b: ArrayLike<number>, off = 0): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += POPCOUNT[a[i]! ^ b[off + i]!]!;
  return d;
}

/** The k rows of `index` nearest to `query`: highest cosine first, or fewest differing bits for binary. */
export function nearest(
  query: Float32Array | Uint8Array,
  index: NpyArray,
  meta: VecIndexMeta,
  k: number,
): { file: string; score: number }[] {
  const width = index.shape[1];
  if (query.length !== width)
    throw new UsageError(
      `Expected the model's ${meta.kind} vectors to have ${width} values as in the index but they have ${query.length}`,
    );
  const binary = meta.kind === 'binary';
  const scored = meta.files.map((file, i) => ({
    file,
    score: binary ? hamming(query, index.data, i * width) : cosine(query, index.data, i * width),
  }));
  scored.sort((a, b) => (binary ? a.score - b.score : b.score - a.score));
  return scored.slice(0, k);
}
