// `pairs`: the seed's `make_datapair.py --make_pair` as resumable, deterministic shards, with only the
// shards being filled held in memory. Images are decoded several at a time, in dataset order.
import { mkdir, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { UsageError } from '../util/errors.js';
import { makeFolder } from '../util/fsx.js';
import { lockFolder } from '../util/lock.js';
import { ImageError, preprocessImage, type PadRule } from './images.js';
import { readTagFile, walkDataset, type DatasetEntry } from './scan.js';
import {
  INDEX,
  isHoldout,
  readShardIndex,
  SHARDS_FORMAT,
  SHARDS_VERSION,
  ShardWriter,
  writeShardIndex,
  type ShardIndexJson,
  type SkipKind,
  type Split,
} from './shards.js';
import type { TagIndex } from './tags.js';

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

/** Our own leftovers in a shards folder: temp files of shards and index.json from an interrupted run. */
const OWN_TEMP = /^\.(shard-\d{5,}\.safetensors|index\.json)\.\d+\.\w+\.tmp$/;

/** The index to continue from (a fresh one for a new folder), with leftovers of an interrupted run removed. */
async function openShardsFolder(out: string, fresh: ShardIndexJson): Promise<ShardIndexJson> {
  await mkdir(out, { recursive: true });
  const files = await readdir(out);
  for (const f of files) if (OWN_TEMP.test(f)) await rm(path.join(out, f), { force: true });
  if (!files.includes(INDEX)) return fresh;
  const index = await readShardIndex(out);
  checkResumable(index, fresh, out);
  // Shard files past the last recorded checkpoint are from an interrupted run: drop them.
  const known = new Set(index.shards.map((s) => s.file));
  for (const f of files) if (/^shard-\d+\.safetensors$/.test(f) && !known.has(f)) await rm(path.join(out, f));
  return index;
}

function freshIndex(opts: MakeShardsOptions): ShardIndexJson {
  const { tags } = opts;
  return {
    format: SHARDS_FORMAT,
    version: SHARDS_VERSION,
    imageSize: opts.imageSize,
    pad: opts.pad,
    maxPixels: opts.maxPixels,
    shardSize: opts.shardSize,
    holdout: opts.holdout,
    tags: { sha256: tags.hash, count: tags.size, names: tags.names, categories: tags.rows.map((r) => r.category) },
    dataset: opts.dataset,
    shards: [],
    progress: { sourcesDone: 0, lastSource: null, complete: false },
    stats: { kept: 0, skipped: {}, orphanTagFiles: 0 },
  };
}

/** Decoded entries in dataset order, up to 2 × `window` decoding at once. */
async function* decodeAhead(
  source: AsyncGenerator<DatasetEntry>,
  window: number,
  decode: (e: DatasetEntry) => Promise<Outcome>,
): AsyncGenerator<Outcome> {
  const pending: Promise<Outcome>[] = [];
  let exhausted = false;
  const fill = async (): Promise<void> => {
    while (!exhausted && pending.length < window * 2) {
      const next = await source.next();
      if (next.done) exhausted = true;
      else pending.push(decode(next.value));
    }
  };
  await fill();
  while (pending.length > 0) {
    const o = await pending.shift()!;
    await fill();
    yield o;
  }
}

/** Make (or continue making) the shards of a dataset, holding the folder's lock. Returns the final index. */
export async function makeShards(opts: MakeShardsOptions): Promise<ShardIndexJson> {
  await makeFolder(opts.out, '--out');
  const lock = await lockFolder(opts.out, `alt-i2v-ort pairs (pid ${process.pid})`, (l) => opts.onWarning?.(l));
  try {
    return await makeShardsLocked(opts);
  } finally {
    await lock.release();
  }
}

async function makeShardsLocked(opts: MakeShardsOptions): Promise<ShardIndexJson> {
  const { dataset, tags, out, shardSize, imageSize, holdout, pad, maxPixels } = opts;
  const index = await openShardsFolder(out, freshIndex(opts));
  if (index.progress.complete) {
    opts.onStart?.({ total: 0, resumedFrom: index.progress.sourcesDone });
    return index;
  }
  let total = 0;
  for await (const _ of walkDataset(dataset)) total++;
  const resumedFrom = index.progress.sourcesDone;
  if (resumedFrom > total)
    throw new UsageError(
      `Expected the dataset ${JSON.stringify(dataset)} to be unchanged since ${JSON.stringify(out)} was started, but it now has fewer files`,
    );
  opts.onStart?.({ total: total - resumedFrom, resumedFrom });

  const writers: Record<Split, ShardWriter> = {
    train: new ShardWriter(imageSize, tags.size),
    holdout: new ShardWriter(imageSize, tags.size),
  };
  const warn = (line: string): void => opts.onWarning?.(line);
  let done = index.progress.sourcesDone;
  let lastSource = index.progress.lastSource;
  // Flush the shards being filled and record how far the run got: the point a re-run continues from.
  const checkpoint = async (complete: boolean): Promise<void> => {
    for (const split of ['train', 'holdout'] as const) {
      const w = writers[split];
      if (w.count === 0) continue;
      const file = `shard-${String(index.shards.length).padStart(5, '0')}.safetensors`;
      const { count, sha256 } = await w.flush(path.join(out, file), tags.hash);
      index.shards.push({ file, split, count, sha256 });
    }
    index.progress = { sourcesDone: done, lastSource, complete };
    await writeShardIndex(out, index);
  };

  const prevSharp = sharp.concurrency();
  sharp.concurrency(1); // one libvips thread per image, many images at once: best for small outputs
  try {
    const window = Math.max(1, opts.concurrency ?? os.availableParallelism());
    const source = skipDone(walkDataset(dataset), index.progress.sourcesDone, index.progress.lastSource, dataset, out);
    for await (const o of decodeAhead(source, window, (e) =>
      processEntry(e, tags, { size: imageSize, pad, maxPixels }),
    )) {
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
  if (index.embedding)
    throw new UsageError(
      `Expected shards of images in ${where} but it holds embeddings of ${index.embedding.model} (made with --backbone): run pairs with the same --backbone, or use a new --out`,
    );
  if (index.tags.sha256 !== want.tags.sha256) {
    throw new UsageError(
      `Expected the tags.csv that ${where} was started with but --tags has changed since (sha256 ${index.tags.sha256.slice(0, 12)}… vs ${want.tags.sha256.slice(0, 12)}…); use a new --out`,
    );
  }
  const fields = ['imageSize', 'pad', 'shardSize', 'holdout', 'maxPixels', 'dataset'] as const;
  for (const f of fields) {
    if (index[f] !== want[f])
      throw new UsageError(
        `Expected ${f} ${JSON.stringify(index[f])} as recorded in ${where} but this run asks for ${JSON.stringify(want[f])}; use a new --out`,
      );
  }
}

async function* skipDone(
  walk: AsyncGenerator<DatasetEntry>,
  count: number,
  last: string | null,
  dataset: string,
  out: string,
): AsyncGenerator<DatasetEntry> {
  let i = 0;
  for await (const entry of walk) {
    if (i < count) {
      i++;
      if (i === count && entry.name !== last) {
        throw new UsageError(
          `Expected the dataset ${JSON.stringify(dataset)} to be unchanged since ${JSON.stringify(out)} was started, but file ${count} is now ${JSON.stringify(entry.name)} instead of ${JSON.stringify(last)}`,
        );
      }
      continue;
    }
    yield entry;
  }
}

async function processEntry(
  entry: DatasetEntry,
  tags: TagIndex,
  opts: { size: number; pad: PadRule; maxPixels: number },
): Promise<Outcome> {
  if (entry.kind === 'orphan-tags') return { entry };
  if (!entry.tagFile) return { entry, skip: 'no-tag-file', detail: 'no sibling .txt' };
  const label = Buffer.alloc(tags.size);
  let known = 0;
  let tagList: string[];
  try {
    tagList = await readTagFile(entry.tagFile);
  } catch (err) {
    return { entry, skip: 'bad-tag-file', detail: `tag file ${entry.tagFile} ${(err as Error).message}` };
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
