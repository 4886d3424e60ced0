// Training shards (DESIGN.md §3): SHARDS/index.json plus shard-NNNNN.safetensors holding `images`
// uint8 [N, S, S, 3] and `labels` uint8 [N, K]. `makeShards` is the seed's `make_datapair.py
// --make_pair`: resumable, deterministic, with only the shards being filled held in memory.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { UsageError } from '../util/errors.js';
import { ImageError, preprocessImage, type PadRule, type SkipReason } from './images.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import { readTagFile, walkDataset, type DatasetEntry } from './scan.js';
import type { TagIndex } from './tags.js';

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

const INDEX = 'index.json';

export async function readShardIndex(dir: string): Promise<ShardIndexJson> {
  const file = path.join(dir, INDEX);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`Expected a shards folder with index.json for SHARDS but ${JSON.stringify(file)} cannot be read`);
  }
  let json: ShardIndexJson;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`Expected JSON in ${JSON.stringify(file)} but it does not parse`);
  }
  if (json.format !== SHARDS_FORMAT || json.version !== SHARDS_VERSION) {
    throw new UsageError(`Expected ${SHARDS_FORMAT} version ${SHARDS_VERSION} in ${JSON.stringify(file)} but found ${JSON.stringify(json.format)} version ${JSON.stringify(json.version)}`);
  }
  return json;
}

async function writeShardIndex(dir: string, index: ShardIndexJson): Promise<void> {
  const file = path.join(dir, INDEX);
  await writeFile(`${file}.tmp`, `${JSON.stringify(index, null, 1)}\n`);
  await rename(`${file}.tmp`, file);
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

export interface MakeShardsOptions {
  dataset: string;
  tags: TagIndex;
  out: string;
  shardSize: number;
  imageSize: number;
  holdout: number;
  pad: PadRule;
  maxPixels: number;
  /** Images decoded at once; defaults to the number of cores. */
  concurrency?: number;
  onWarning?: (line: string) => void;
  /** Called after each source entry with the count done (of `total` when known). */
  onProgress?: (done: number) => void;
  /** Called once before work starts with the number of entries left and whether this is a resume. */
  onStart?: (info: { total: number; resumedFrom: number }) => void;
}

interface Outcome {
  entry: DatasetEntry;
  pixels?: Buffer;
  label?: Buffer;
  skip?: SkipKind;
  detail?: string;
}

/** Make (or continue making) the shards of a dataset. Returns the final index. */
export async function makeShards(opts: MakeShardsOptions): Promise<ShardIndexJson> {
  const { dataset, tags, out, shardSize, imageSize, holdout, pad, maxPixels } = opts;
  await mkdir(out, { recursive: true });
  for (const f of await readdir(out)) if (f.endsWith('.tmp')) await rm(path.join(out, f), { force: true });

  const fresh: ShardIndexJson = {
    format: SHARDS_FORMAT,
    version: SHARDS_VERSION,
    imageSize,
    pad,
    maxPixels,
    shardSize,
    holdout,
    tags: { sha256: tags.hash, count: tags.size, names: tags.names, categories: tags.rows.map((r) => r.category) },
    dataset,
    shards: [],
    progress: { sourcesDone: 0, lastSource: null, complete: false },
    stats: { kept: 0, skipped: {}, orphanTagFiles: 0 },
  };
  let index = fresh;
  const existing = await readdir(out).then((f) => f.includes(INDEX));
  if (existing) {
    index = await readShardIndex(out);
    checkResumable(index, fresh, out);
    // Shard files past the last recorded checkpoint are from an interrupted run: drop them.
    const known = new Set(index.shards.map((s) => s.file));
    for (const f of await readdir(out)) if (/^shard-\d+\.safetensors$/.test(f) && !known.has(f)) await rm(path.join(out, f));
    if (index.progress.complete) {
      opts.onStart?.({ total: 0, resumedFrom: index.progress.sourcesDone });
      return index;
    }
  }

  let total = 0;
  for await (const _ of walkDataset(dataset)) total++;
  const resumedFrom = index.progress.sourcesDone;
  if (resumedFrom > total) throw new UsageError(`Expected the dataset ${JSON.stringify(dataset)} to be unchanged since ${JSON.stringify(out)} was started, but it now has fewer files`);
  opts.onStart?.({ total: total - resumedFrom, resumedFrom });

  const writers: Record<Split, ShardWriter> = { train: new ShardWriter(imageSize, tags.size), holdout: new ShardWriter(imageSize, tags.size) };
  const warn = (line: string): void => opts.onWarning?.(line);

  let done = index.progress.sourcesDone;
  let lastSource = index.progress.lastSource;
  const checkpoint = async (complete: boolean): Promise<void> => {
    for (const split of ['train', 'holdout'] as const) {
      const w = writers[split];
      if (w.count === 0) continue;
      const file = `shard-${String(index.shards.length).padStart(5, '0')}.safetensors`;
      const count = await w.flush(path.join(out, file), tags.hash);
      index.shards.push({ file, split, count });
    }
    index.progress = { sourcesDone: done, lastSource, complete };
    await writeShardIndex(out, index);
  };

  const prevSharp = sharp.concurrency();
  sharp.concurrency(1); // one libvips thread per image, many images at once: best for small outputs
  try {
    const window = Math.max(1, opts.concurrency ?? os.availableParallelism());
    const pending: Promise<Outcome>[] = [];
    const source = skipDone(walkDataset(dataset), index.progress.sourcesDone, index.progress.lastSource, dataset, out);
    let exhausted = false;
    const fill = async (): Promise<void> => {
      while (!exhausted && pending.length < window * 2) {
        const next = await source.next();
        if (next.done) exhausted = true;
        else pending.push(processEntry(next.value, tags, { size: imageSize, pad, maxPixels }));
      }
    };
    await fill();
    while (pending.length > 0) {
      const o = await pending.shift()!;
      await fill();
      done++;
      lastSource = o.entry.name;
      if (o.entry.kind === 'orphan-tags') {
        index.stats.orphanTagFiles++;
        warn(`warning: ${o.entry.file}: tag file without image, ignored`);
      } else if (o.skip) {
        index.stats.skipped[o.skip] = (index.stats.skipped[o.skip] ?? 0) + 1;
        warn(`warning: ${o.entry.file}: skipped, ${o.skip} (${o.detail})`);
      } else {
        index.stats.kept++;
        writers[isHoldout(o.entry.name, holdout) ? 'holdout' : 'train'].add(o.entry.name, o.pixels!, o.label!);
      }
      if (writers.train.count >= shardSize) await checkpoint(false);
      opts.onProgress?.(done - resumedFrom);
    }
    await checkpoint(true);
  } finally {
    sharp.concurrency(prevSharp);
  }
  return index;
}

function checkResumable(index: ShardIndexJson, want: ShardIndexJson, out: string): void {
  const where = JSON.stringify(path.join(out, INDEX));
  if (index.tags.sha256 !== want.tags.sha256) {
    throw new UsageError(`Expected the tags.csv that ${where} was started with but --tags has changed since (sha256 ${index.tags.sha256.slice(0, 12)}… vs ${want.tags.sha256.slice(0, 12)}…); use a new --out`);
  }
  const fields = ['imageSize', 'pad', 'shardSize', 'holdout', 'maxPixels', 'dataset'] as const;
  for (const f of fields) {
    if (index[f] !== want[f]) throw new UsageError(`Expected ${f} ${JSON.stringify(index[f])} as recorded in ${where} but this run asks for ${JSON.stringify(want[f])}; use a new --out`);
  }
}

async function* skipDone(walk: AsyncGenerator<DatasetEntry>, count: number, last: string | null, dataset: string, out: string): AsyncGenerator<DatasetEntry> {
  let i = 0;
  for await (const entry of walk) {
    if (i < count) {
      i++;
      if (i === count && entry.name !== last) {
        throw new UsageError(`Expected the dataset ${JSON.stringify(dataset)} to be unchanged since ${JSON.stringify(out)} was started, but file ${count} is now ${JSON.stringify(entry.name)} instead of ${JSON.stringify(last)}`);
      }
      continue;
    }
    yield entry;
  }
}

async function processEntry(entry: DatasetEntry, tags: TagIndex, opts: { size: number; pad: PadRule; maxPixels: number }): Promise<Outcome> {
  if (entry.kind === 'orphan-tags') return { entry };
  if (!entry.tagFile) return { entry, skip: 'no-tag-file', detail: 'no sibling .txt' };
  const label = Buffer.alloc(tags.size);
  let known = 0;
  let tagList: string[];
  try {
    tagList = await readTagFile(entry.tagFile);
  } catch (err) {
    return { entry, skip: 'unreadable', detail: `tag file ${entry.tagFile}: ${(err as Error).message}` };
  }
  for (const tag of tagList) {
    const i = tags.indexOf(tag);
    if (i !== undefined && label[i] === 0) {
      label[i] = 1;
      known++;
    }
  }
  if (known === 0) return { entry, skip: 'no-known-tags', detail: 'none of its tags is in tags.csv' };
  try {
    const pixels = await preprocessImage(entry.file, entry.file, opts);
    return { entry, pixels, label };
  } catch (err) {
    // Every failure becomes an outcome: a rejected promise waiting in the window would crash Node.
    if (err instanceof ImageError) return { entry, skip: err.reason, detail: err.detail };
    return { entry, skip: 'unreadable', detail: (err as Error).message };
  }
}

