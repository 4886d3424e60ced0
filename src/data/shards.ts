// Training shards (docs/ARCHITECTURE.md, "Files"): SHARDS/index.json plus shard-NNNNN.safetensors
// holding `images` uint8 [N, S, S, 3] and `labels` uint8 [N, K]: the format, its reader and writer, and batches over
// shards. Making shards from a dataset is make-shards.ts.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { readJsonInput, writeFileAtomic } from '../util/fsx.js';
import type { PadRule, SkipReason } from './images.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

export const SHARDS_FORMAT = 'alt-i2v-ort/shards';
export const SHARDS_VERSION = 1;

export type Split = 'train' | 'holdout';
export type SkipKind = SkipReason | 'no-tag-file' | 'no-known-tags';

export interface ShardEntry {
  file: string;
  split: Split;
  count: number;
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
}

export interface Shard {
  names: string[];
  count: number;
  imageSize: number;
  tagCount: number;
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
  async flush(file: string, tagsHash: string): Promise<number> {
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
    this.images = [];
    this.labels = [];
    this.names = [];
    return n;
  }
}

export const INDEX = 'index.json';

export async function readShardIndex(dir: string): Promise<ShardIndexJson> {
  const file = path.join(dir, INDEX);
  const json = await readJsonInput<ShardIndexJson>(file, 'a shards folder with index.json for SHARDS');
  if (json.format !== SHARDS_FORMAT || json.version !== SHARDS_VERSION) {
    throw new UsageError(`Expected ${SHARDS_FORMAT} version ${SHARDS_VERSION} in ${JSON.stringify(file)} but found ${JSON.stringify(json.format)} version ${JSON.stringify(json.version)}`);
  }
  return json;
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
export async function readShard(dir: string, entry: ShardEntry, index: ShardIndexJson, slot?: ShardSlot): Promise<Shard> {
  const file = path.join(dir, entry.file);
  const { header, data } = await readSafetensors(file, ['images', 'labels'], slot && ((name, bytes) => slot.take(name, bytes)));
  const s = index.imageSize;
  const k = index.tags.count;
  const img = header.tensors.get('images')!;
  const lab = header.tensors.get('labels')!;
  const shapeOk = img.dtype === 'U8' && lab.dtype === 'U8' && `${img.shape}` === `${entry.count},${s},${s},3` && `${lab.shape}` === `${entry.count},${k}`;
  if (!shapeOk) {
    throw new UsageError(`Expected images [${entry.count},${s},${s},3] and labels [${entry.count},${k}] in ${JSON.stringify(file)} but found [${img.shape}] and [${lab.shape}]`);
  }
  if (header.metadata.tags_sha256 !== index.tags.sha256) throw new UsageError(`Expected ${JSON.stringify(file)} to be made with the tags.csv of its index.json but its tags hash differs`);
  const names = JSON.parse(header.metadata.files ?? '[]') as string[];
  return { names, count: entry.count, imageSize: s, tagCount: k, images: data.get('images')!, labels: data.get('labels')! };
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
  const px = index.imageSize ** 2 * 3;
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
