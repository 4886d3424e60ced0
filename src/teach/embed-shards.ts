// `pairs DATASET --backbone MODEL`: shards of a frozen tagger's embeddings instead of pixels (issue:
// teach any tagger new tags). The base tagger runs once per image content: its embeddings (float16)
// are kept in SHARDS/cache/<model sha>/ in chunks keyed by the SHA-256 of the image file, so a re-run
// with changed captions or tags, or after a kill, embeds only what it has not seen. The shards and
// index.json are then written anew from the cache: labels are cheap, embeddings are not.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { fsReason, makeFolder } from '../util/fsx.js';
import { lockFolder } from '../util/lock.js';
import { limiter } from '../util/limit.js';
import { toHalf } from '../onnx/half.js';
import { readSafetensors, sha256Hex, writeSafetensors } from '../data/safetensors.js';
import { readTagFile, walkDataset, type DatasetEntry } from '../data/scan.js';
import { DEFAULT_MAX_PIXELS } from '../data/images.js';
import {
  INDEX,
  isHoldout,
  SHARDS_FORMAT,
  SHARDS_VERSION,
  writeShardIndex,
  type EmbeddingSource,
  type ShardEntry,
  type ShardIndexJson,
  type SkipKind,
} from '../data/shards.js';
import type { TagIndex } from '../data/tags.js';
import { decodeBatches } from '../predict/inputs.js';
import type { TaggerModel } from '../model/tagger.js';

/** The names of --negatives images in the shards: `(negatives)/` and their path in that folder. */
export const NEGATIVES_PREFIX = '(negatives)/';

/** Embeddings per cache chunk: a kill loses at most this many. */
export const CACHE_CHUNK = 256;

export interface EmbedShardsOptions {
  dataset: string;
  tags: TagIndex;
  out: string;
  shardSize: number;
  holdout: number;
  /** A folder of images that hold none of the tags (teach --negatives): every image a negative example. */
  negatives?: string;
  /** The base tagger, loaded with its embedding as its features. */
  model: TaggerModel;
  source: Omit<EmbeddingSource, 'width'>;
  batch: number;
  /** Embeddings per cache chunk file (default CACHE_CHUNK). */
  chunk?: number;
  /**
   * The tags of one image; default: its sibling caption file (an image without one is skipped). An
   * image whose tags hold none of the new tags is kept: a negative example.
   */
  tagsOf?: (entry: DatasetEntry) => Promise<string[] | null>;
  onWarning?: (line: string) => void;
  onStart?: (info: { images: number; toEmbed: number }) => void;
  onProgress?: (embedded: number) => void;
}

interface Item {
  name: string;
  file: string;
  key: string;
  label: Buffer;
}

/** The cached embeddings (key → float16 bits as bytes) of one model, each chunk checked as it is read. */
async function readCache(dir: string, width: number, warn: (l: string) => void): Promise<Map<string, Uint8Array>> {
  const cache = new Map<string, Uint8Array>();
  const files = await readdir(dir).catch(() => [] as string[]);
  for (const f of files)
    if (/^\.chunk-\d+\.safetensors\..*\.tmp$/.test(f)) await rm(path.join(dir, f), { force: true });
  for (const f of files.filter((f) => /^chunk-\d{5,}\.safetensors$/.test(f)).sort()) {
    const file = path.join(dir, f);
    try {
      const { header, data } = await readSafetensors(file, ['embeddings']);
      const t = header.tensors.get('embeddings')!;
      const keys = JSON.parse(header.metadata.keys ?? 'null') as unknown;
      if (t.dtype !== 'F16' || t.shape.length !== 2 || t.shape[1] !== width)
        throw new Error(`its embeddings are [${t.shape}] ${t.dtype}, not [N, ${width}] F16`);
      if (!Array.isArray(keys) || keys.length !== t.shape[0] || !keys.every((k) => /^[0-9a-f]{64}$/.test(String(k))))
        throw new Error('its keys are not one SHA-256 per embedding');
      const bytes = data.get('embeddings')!;
      const half = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
      if (half.some((h) => (h & 0x7c00) === 0x7c00)) throw new Error('it holds an infinite or NaN value');
      (keys as string[]).forEach((k, i) => cache.set(k, bytes.subarray(i * width * 2, (i + 1) * width * 2)));
    } catch (err) {
      warn(
        `warning: ${file}: embedding cache chunk passed over (its images are embedded again): ${(err as Error).message}`,
      );
    }
  }
  return cache;
}

/** The images of the dataset with their labels and content keys; skipped ones counted and told. */
async function listItems(
  o: EmbedShardsOptions,
  skipped: Partial<Record<SkipKind, number>>,
  warn: (l: string) => void,
): Promise<{ items: Item[]; orphans: number }> {
  const items: Item[] = [];
  let orphans = 0;
  const skip = (e: DatasetEntry, kind: SkipKind, detail: string): void => {
    skipped[kind] = (skipped[kind] ?? 0) + 1;
    warn(`warning: ${e.file}: skipped, ${kind} (${detail})`);
  };
  const tagsOf =
    o.tagsOf ?? (async (e: DatasetEntry): Promise<string[] | null> => (e.tagFile ? readTagFile(e.tagFile) : null));
  const negatives = async function* (): AsyncGenerator<DatasetEntry & { negative?: true }> {
    yield* walkDataset(o.dataset);
    if (!o.negatives) return;
    // Named apart from the dataset's own images (a holdout split by name, shard rows by name).
    for await (const e of walkDataset(o.negatives))
      yield { ...e, name: `${NEGATIVES_PREFIX}${e.name}`, negative: true };
  };
  // Each entry read (caption, then the image's bytes for its key) 16 at a time, kept in dataset order.
  const limit = limiter(16);
  const pending: Promise<Item | null>[] = [];
  const read = async (e: DatasetEntry & { negative?: true }): Promise<Item | null> => {
    let tags: string[] | null;
    try {
      tags = e.negative ? [] : await tagsOf(e);
    } catch (err) {
      skip(e, 'bad-tag-file', `tag file ${e.tagFile} ${(err as Error).message}`);
      return null;
    }
    if (!tags) return (skip(e, 'no-tag-file', 'no sibling .txt'), null);
    let bytes: Buffer;
    try {
      bytes = await readFile(e.file);
    } catch (err) {
      return (skip(e, 'unreadable', fsReason(err)), null);
    }
    const label = Buffer.alloc(o.tags.size);
    for (const t of tags) {
      const i = o.tags.indexOf(t);
      if (i !== undefined) label[i] = 1;
    }
    return { name: e.name, file: e.file, key: createHash('sha256').update(bytes).digest('hex'), label };
  };
  for await (const e of negatives()) {
    if (e.kind === 'orphan-tags') orphans++;
    else pending.push(limit(() => read(e)));
  }
  for (const item of await Promise.all(pending)) if (item) items.push(item);
  return { items, orphans };
}

/** Embed the items the cache lacks, a chunk file every CACHE_CHUNK images; failures are skips. */
async function embedMissing(
  o: EmbedShardsOptions,
  dir: string,
  cache: Map<string, Uint8Array>,
  missing: Item[],
  failed: Map<string, string>,
): Promise<void> {
  const width = o.model.meta.hidden;
  const byFile = new Map(missing.map((m) => [m.file, m]));
  let next = (await readdir(dir)).filter((f) => /^chunk-\d+\.safetensors$/.test(f)).length;
  let keys: string[] = [];
  let rows: Uint8Array[] = [];
  let done = 0;
  const flush = async (): Promise<void> => {
    if (keys.length === 0) return;
    const file = path.join(dir, `chunk-${String(next++).padStart(5, '0')}.safetensors`);
    await writeSafetensors(
      file,
      { embeddings: { dtype: 'F16', shape: [keys.length, width], chunks: rows } },
      { keys: JSON.stringify(keys) },
    );
    keys = [];
    rows = [];
  };
  async function* files(): AsyncGenerator<string> {
    yield* byFile.keys();
  }
  for await (const b of decodeBatches(files(), {
    ...o.model.preprocess,
    batch: o.batch,
    maxPixels: DEFAULT_MAX_PIXELS,
  })) {
    for (const f of b.failures) failed.set(f.file, f.reason);
    if (b.files.length > 0) {
      const out = await o.model.run(b.images, b.files.length);
      b.files.forEach((file, i) => {
        if (out.nonFinite.includes(i)) return void failed.set(file, 'the model gave it non-finite values');
        const item = byFile.get(file)!;
        const row = new Uint8Array(toHalf(out.features.subarray(i * width, (i + 1) * width)).buffer);
        if (new Uint16Array(row.buffer).some((h) => (h & 0x7c00) === 0x7c00))
          return void failed.set(file, 'its embedding overflows float16 (beyond ±65504)');
        cache.set(item.key, row);
        keys.push(item.key);
        rows.push(row);
      });
      if (keys.length >= (o.chunk ?? CACHE_CHUNK)) await flush();
    }
    done += b.files.length + b.failures.length;
    o.onProgress?.(done);
  }
  await flush();
}

/** Make SHARDS from the dataset's images and the base tagger's embeddings, holding the folder's lock. */
export async function makeEmbeddingShards(o: EmbedShardsOptions): Promise<ShardIndexJson> {
  await makeFolder(o.out, '--out');
  const lock = await lockFolder(o.out, `alt-i2v-ort pairs --backbone (pid ${process.pid})`, (l) => o.onWarning?.(l));
  try {
    return await makeLocked(o);
  } finally {
    await lock.release();
  }
}

async function makeLocked(o: EmbedShardsOptions): Promise<ShardIndexJson> {
  const warn = (l: string): void => o.onWarning?.(l);
  const width = o.model.meta.hidden;
  const existing = await readFile(path.join(o.out, INDEX), 'utf8').catch(() => null);
  if (existing !== null && !/"embedding"\s*:/.test(existing))
    throw new UsageError(
      `Expected a new folder or shards of embeddings for --out but ${JSON.stringify(o.out)} holds shards of images; use another --out`,
    );
  const cacheDir = path.join(o.out, 'cache', o.source.sha256.slice(0, 16));
  await mkdir(cacheDir, { recursive: true });
  const cache = await readCache(cacheDir, width, warn);
  const skipped: Partial<Record<SkipKind, number>> = {};
  const { items, orphans } = await listItems(o, skipped, warn);
  const missing = [...new Map(items.filter((i) => !cache.has(i.key)).map((i) => [i.key, i])).values()];
  o.onStart?.({ images: items.length, toEmbed: missing.length });
  const failed = new Map<string, string>();
  await embedMissing(o, cacheDir, cache, missing, failed);
  // The index goes first: a kill while shards are rewritten leaves no index (pairs again), never a stale one.
  await rm(path.join(o.out, INDEX), { force: true });
  for (const f of await readdir(o.out))
    if (/^shard-\d+\.safetensors$/.test(f)) await rm(path.join(o.out, f), { force: true });
  const kept = items.filter((i) => {
    const why = failed.get(i.file);
    if (why === undefined && cache.has(i.key)) return true;
    skipped.unreadable = (skipped.unreadable ?? 0) + 1;
    warn(`warning: ${i.file}: skipped, unreadable (${why ?? 'not embedded'})`);
    return false;
  });
  const shards: ShardEntry[] = [];
  for (const split of ['train', 'holdout'] as const) {
    const mine = kept.filter((i) => isHoldout(i.name, o.holdout) === (split === 'holdout'));
    for (let at = 0; at < mine.length; at += o.shardSize) {
      const part = mine.slice(at, at + o.shardSize);
      const file = `shard-${String(shards.length).padStart(5, '0')}.safetensors`;
      const rows = part.map((i) => cache.get(i.key)!);
      const labels = part.map((i) => i.label);
      await writeSafetensors(
        path.join(o.out, file),
        {
          embeddings: { dtype: 'F16', shape: [part.length, width], chunks: rows },
          labels: { dtype: 'U8', shape: [part.length, o.tags.size], chunks: labels },
        },
        { format: 'alt-i2v-ort/shard', tags_sha256: o.tags.hash, files: JSON.stringify(part.map((i) => i.name)) },
      );
      shards.push({ file, split, count: part.length, sha256: sha256Hex([...rows, ...labels]) });
    }
  }
  const c = o.model.contract;
  const index: ShardIndexJson = {
    format: SHARDS_FORMAT,
    version: SHARDS_VERSION,
    imageSize: c.size,
    pad: c.pad,
    maxPixels: DEFAULT_MAX_PIXELS,
    shardSize: o.shardSize,
    holdout: o.holdout,
    tags: {
      sha256: o.tags.hash,
      count: o.tags.size,
      names: o.tags.names,
      categories: o.tags.rows.map((r) => r.category),
    },
    dataset: o.dataset,
    shards,
    progress: { sourcesDone: items.length, lastSource: items.at(-1)?.name ?? null, complete: true },
    stats: { kept: kept.length, skipped, orphanTagFiles: orphans },
    embedding: { ...o.source, width },
  };
  await writeShardIndex(o.out, index);
  return index;
}
