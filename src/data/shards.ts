// Training shards (docs/ARCHITECTURE.md, "Files"): SHARDS/index.json plus shard-NNNNN.safetensors
// holding `images` uint8 [N, S, S, 3] (or, made with `pairs --backbone`, `embeddings` float16 [N, D]: a
// frozen tagger's embedding) and `labels` uint8 [N, K]: the format, its reader and writer, and batches over
// shards. Making shards from a dataset is make-shards.ts.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { readJsonInput, writeFileAtomic } from '../util/fsx.js';
import type { PadRule, SkipReason } from './images.js';
import { integrityCheck, readSafetensors, sha256Hex, writeSafetensors } from './safetensors.js';

export const SHARDS_FORMAT = 'alt-i2v-ort/shards';
export const SHARDS_VERSION = 1;

export type Split = 'train' | 'holdout';
export type SkipKind = SkipReason | 'no-tag-file' | 'no-known-tags' | 'bad-tag-file';

export interface ShardEntry {
  file: string;
  split: Split;
  count: number;
  /** SHA-256 of the shard's data section (images then labels), checked on read. */
  sha256?: string;
}

/** What `pairs --backbone` embedded with: the base tagger, recorded so a head is joined to no other. */
export interface EmbeddingSource {
  /** The model as resolved (a file path). */
  model: string;
  /** modelSha256 of it (the .onnx and its external data). */
  sha256: string;
  /** --embedding as given, or null: found by walking back from the scores (src/model/embedding.ts). */
  tensor: string | null;
  /** Numbers per embedding. */
  width: number;
  /** How the base was loaded (its tags file, preset or contract, overrides): export loads it the same way. */
  load: { tags?: string; preset?: string; contract?: string; channels?: string; scale?: number; padColor?: string };
  /** The input contract, in words (describeContract). */
  contract: string;
}

export interface ShardIndexJson {
  format: typeof SHARDS_FORMAT;
  version: number;
  imageSize: number;
  pad: PadRule;
  maxPixels: number;
  shardSize: number;
  holdout: number;
  tags: { sha256: string; count: number; names: string[]; categories: number[] };
  dataset: string;
  shards: ShardEntry[];
  progress: { sourcesDone: number; lastSource: string | null; complete: boolean };
  stats: { kept: number; skipped: Partial<Record<SkipKind, number>>; orphanTagFiles: number };
  /** Present in shards of embeddings instead of images. */
  embedding?: EmbeddingSource;
}

/** A shard's input tensor: its name, dtype and the shape of one item. */
export function shardInput(index: ShardIndexJson): { name: string; dtype: 'U8' | 'F16'; dims: number[] } {
  if (index.embedding) return { name: 'embeddings', dtype: 'F16', dims: [index.embedding.width] };
  return { name: 'images', dtype: 'U8', dims: [index.imageSize, index.imageSize, 3] };
}

export interface Shard {
  names: string[];
  count: number;
  imageSize: number;
  tagCount: number;
  /** The inputs: uint8 images, or float16 embeddings of embedding shards (shardInput). */
  images: Buffer;
  labels: Buffer;
}

/** True when `name` falls in the holdout fraction: a hash of the item's relative path, so it never moves. */
export function isHoldout(name: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  const h = createHash('sha1').update(name).digest().readUInt32BE(0);
  return h / 4294967296 < fraction;
}

/** Collects one shard in memory as a list of per-image buffers (no large contiguous allocation). */
export class ShardWriter {
  private images: Buffer[] = [];
  private labels: Buffer[] = [];
  private names: string[] = [];

  constructor(
    readonly imageSize: number,
    readonly tagCount: number,
  ) {}

  get count(): number {
    return this.names.length;
  }

  add(name: string, pixels: Buffer, label: Buffer): void {
    this.names.push(name);
    this.images.push(pixels);
    this.labels.push(label);
  }

  /** Write the shard atomically to `file` and empty the writer. */
  async flush(file: string, tagsHash: string): Promise<{ count: number; sha256: string }> {
    const n = this.count;
    const s = this.imageSize;
    await writeSafetensors(
      file,
      {
        images: { dtype: 'U8', shape: [n, s, s, 3], chunks: this.images },
        labels: { dtype: 'U8', shape: [n, this.tagCount], chunks: this.labels },
      },
      { format: 'alt-i2v-ort/shard', image_size: String(s), tags_sha256: tagsHash, files: JSON.stringify(this.names) },
    );
    const sha256 = sha256Hex([...this.images, ...this.labels]);
    this.images = [];
    this.labels = [];
    this.names = [];
    return { count: n, sha256 };
  }
}

export const INDEX = 'index.json';

export async function readShardIndex(dir: string): Promise<ShardIndexJson> {
  const file = path.join(dir, INDEX);
  const json = await readJsonInput<ShardIndexJson>(file, 'a shards folder with index.json for SHARDS');
  if (json?.format !== SHARDS_FORMAT || json.version !== SHARDS_VERSION) {
    throw new UsageError(
      `Expected ${SHARDS_FORMAT} version ${SHARDS_VERSION} in ${JSON.stringify(file)} but found ${JSON.stringify(json?.format)} version ${JSON.stringify(json?.version)}`,
    );
  }
  checkIndexFields(json, file);
  return json;
}

/** The fields readers rely on, typed; a shard name is a plain file name in the folder (no path). */
function checkIndexFields(j: ShardIndexJson, file: string): void {
  const fail = (field: string, what: string): never => {
    throw new UsageError(
      `Expected ${what} for ${field} in ${JSON.stringify(file)} but it is ${JSON.stringify(field.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], j))?.slice(0, 60)}`,
    );
  };
  const int = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!int(j.imageSize) || j.imageSize < 1) fail('imageSize', 'a positive integer');
  if (j.pad !== 'center' && j.pad !== 'topleft') fail('pad', 'center or topleft');
  if (typeof j.tags?.sha256 !== 'string') fail('tags.sha256', 'a hash string');
  if (
    !Array.isArray(j.tags?.names) ||
    !j.tags.names.every((n) => typeof n === 'string') ||
    j.tags.names.length !== j.tags.count
  )
    fail('tags.names', `a list of tags.count strings`);
  if (!Array.isArray(j.shards)) fail('shards', 'a list');
  j.shards.forEach((e, i) => {
    if (typeof e?.file !== 'string' || !/^shard-\d{5,}\.safetensors$/.test(e.file))
      fail(`shards.${i}.file`, 'a name like shard-00000.safetensors');
    if (e.split !== 'train' && e.split !== 'holdout') fail(`shards.${i}.split`, 'train or holdout');
    if (!int(e.count)) fail(`shards.${i}.count`, 'a non-negative integer');
    if (e.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(e.sha256)) fail(`shards.${i}.sha256`, 'a SHA-256 hex string');
  });
  const emb = j.embedding;
  if (emb !== undefined) {
    if (typeof emb?.model !== 'string') fail('embedding.model', 'the base model file');
    if (!/^[0-9a-f]{64}$/.test(String(emb.sha256))) fail('embedding.sha256', 'a SHA-256 hex string');
    if (!int(emb.width) || emb.width < 1 || emb.width > 1 << 20)
      fail('embedding.width', 'an integer from 1 to 1048576');
    if (emb.tensor !== null && typeof emb.tensor !== 'string') fail('embedding.tensor', 'a tensor name or null');
    if (typeof emb.load !== 'object' || emb.load === null) fail('embedding.load', "the base model's load options");
    const l = emb.load;
    for (const k of ['tags', 'preset', 'contract', 'channels', 'padColor'] as const)
      if (l[k] !== undefined && typeof l[k] !== 'string') fail(`embedding.load.${k}`, 'a string');
    if (l.channels !== undefined && l.channels !== 'rgb' && l.channels !== 'bgr')
      fail('embedding.load.channels', 'rgb or bgr');
    if (l.scale !== undefined && l.scale !== 1 && l.scale !== 255) fail('embedding.load.scale', '1 or 255');
  }
  if (!int(j.progress?.sourcesDone) || typeof j.progress.complete !== 'boolean')
    fail('progress', 'the progress record {sourcesDone, lastSource, complete}');
}

export async function writeShardIndex(dir: string, index: ShardIndexJson): Promise<void> {
  await writeFileAtomic(path.join(dir, INDEX), `${JSON.stringify(index, null, 1)}\n`);
}

/**
 * Reusable memory for one shard: readShard() into a slot overwrites the shard read before, so a loop
 * that alternates two slots never holds more than two shards however many it reads.
 */
export class ShardSlot {
  private buffers = new Map<string, Buffer>();

  take(name: string, bytes: number): Buffer {
    let b = this.buffers.get(name);
    if (!b || b.length < bytes) {
      b = Buffer.allocUnsafe(bytes);
      this.buffers.set(name, b);
    }
    return b;
  }
}

/** Load one shard whole (into `slot` when given), checking it against the index it belongs to. */
export async function readShard(
  dir: string,
  entry: ShardEntry,
  index: ShardIndexJson,
  slot?: ShardSlot,
): Promise<Shard> {
  const file = path.join(dir, entry.file);
  const x = shardInput(index);
  const { header, data } = await readSafetensors(
    file,
    [x.name, 'labels'],
    slot && ((name, bytes) => slot.take(name, bytes)),
  );
  const s = index.imageSize;
  const k = index.tags.count;
  const img = header.tensors.get(x.name)!;
  const lab = header.tensors.get('labels')!;
  const shapeOk =
    img.dtype === x.dtype &&
    lab.dtype === 'U8' &&
    `${img.shape}` === `${entry.count},${x.dims}` &&
    `${lab.shape}` === `${entry.count},${k}`;
  if (!shapeOk) {
    throw new UsageError(
      `Expected ${x.name} [${entry.count},${x.dims}] ${x.dtype} and labels [${entry.count},${k}] in ${JSON.stringify(file)} but found [${img.shape}] ${img.dtype} and [${lab.shape}]`,
    );
  }
  if (header.metadata.tags_sha256 !== index.tags.sha256)
    throw new UsageError(
      `Expected ${JSON.stringify(file)} to be made with the tags.csv of its index.json but its tags hash differs`,
    );
  const images = data.get(x.name)!;
  const labels = data.get('labels')!;
  if (entry.sha256 && integrityCheck()) {
    const got = sha256Hex([images, labels]);
    if (got !== entry.sha256)
      throw new UsageError(
        `Expected ${JSON.stringify(file)} to have the SHA-256 that index.json records (${entry.sha256.slice(0, 12)}…) but its data hashes to ${got.slice(0, 12)}…: the file is damaged; make the shards again (or pass --no-verify to use it anyway)`,
      );
  }
  const bad = labels.findIndex((v) => v > 1);
  if (bad >= 0)
    throw new UsageError(
      `Expected labels of 0 or 1 in ${JSON.stringify(file)} but image ${Math.floor(bad / k)}, tag ${bad % k} has ${labels[bad]}`,
    );
  let names: string[];
  try {
    names = JSON.parse(header.metadata.files ?? '[]');
  } catch {
    throw new UsageError(
      `Expected metadata "files" in ${JSON.stringify(file)} to be a JSON list of names but it does not parse`,
    );
  }
  return { names, count: entry.count, imageSize: s, tagCount: k, images, labels };
}

/**
 * Probabilities from `run` over the given shards in batches, with their labels, one shard in memory at
 * a time (in `slot`). Shared by `eval` (the exported model) and `train`'s holdout pass (the session).
 */
export async function predictOverShards(
  dir: string,
  index: ShardIndexJson,
  entries: readonly ShardEntry[],
  batch: number,
  run: (images: Uint8Array, labels: Uint8Array, n: number) => Promise<Float32Array>,
  slot: ShardSlot = new ShardSlot(),
): Promise<{ probs: Float32Array; labels: Uint8Array; n: number }> {
  const n = entries.reduce((a, s) => a + s.count, 0);
  const k = index.tags.count;
  const x = shardInput(index);
  const px = x.dims.reduce((a, b) => a * b, 1) * (x.dtype === 'F16' ? 2 : 1);
  const probs = new Float32Array(n * k);
  const labels = new Uint8Array(n * k);
  let at = 0;
  for (const e of entries) {
    const shard = await readShard(dir, e, index, slot);
    for (let i = 0; i < shard.count; i += batch) {
      const m = Math.min(batch, shard.count - i);
      const lab = shard.labels.subarray(i * k, (i + m) * k);
      probs.set(await run(shard.images.subarray(i * px, (i + m) * px), lab, m), at * k);
      labels.set(lab, at * k);
      at += m;
    }
  }
  return { probs, labels, n };
}

/** Positives of every tag in the shards of one split, and its images (labels only are read). */
export async function shardPositives(
  dir: string,
  index: ShardIndexJson,
  split: Split,
): Promise<{ counts: number[]; images: number }> {
  const k = index.tags.count;
  const counts = new Array<number>(k).fill(0);
  let images = 0;
  for (const e of index.shards.filter((s) => s.split === split)) {
    const file = path.join(dir, e.file);
    const { header, data } = await readSafetensors(file, ['labels']);
    if (`${header.tensors.get('labels')!.shape}` !== `${e.count},${k}`)
      throw new UsageError(
        `Expected labels [${e.count},${k}] in ${JSON.stringify(file)} but found [${header.tensors.get('labels')!.shape}]`,
      );
    const labels = data.get('labels')!;
    for (let i = 0; i < labels.length; i++) counts[i % k]! += labels[i]! ? 1 : 0;
    images += e.count;
  }
  return { counts, images };
}
