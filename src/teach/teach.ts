// `teach DATASET --model MODEL --out merged.onnx`: the common case in one step (issue 41, item 4). The
// tags to teach (the captions' tags the base lacks or scores poorly on the dataset, or a folder per
// tag), shards of the base's embedding, a head trained with defaults for 5–500 images per tag, one
// merged model out, and each taught tag's holdout AP and F1. Its work folder (OUT.teach/) keeps the
// embedding cache, so a second run after new captions, or after a kill, embeds only what is new.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { countTags, formatTagsCsv, selectTags, TagIndex, categoryOf, type TagRow } from '../data/tags.js';
import { readTagFile, walkDataset, type DatasetEntry } from '../data/scan.js';
import { readShardIndex, shardPositives, type EmbeddingSource } from '../data/shards.js';
import { averagePrecision } from '../metrics/metrics.js';
import { modelSha256 } from '../model/model-hash.js';
import { TaggerModel, type LoadOptions } from '../model/tagger.js';
import { decodeBatches, listImages } from '../predict/inputs.js';
import { describeContract } from '../contracts/contract.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { trainRun, type TrainHooks } from '../train/run.js';
import { readRunConfig } from '../train/run-config.js';
import { makeEmbeddingShards, type EmbedShardsOptions } from './embed-shards.js';
import { checkOutBesideBase, checkOutputs, exportTaught, type TaughtExport } from './export-taught.js';

/** The work folder of a merged model `OUT.onnx`: `OUT.teach/` (the embedding cache, the head's run). */
export const teachWorkFor = (out: string): string => `${out.replace(/\.onnx$/i, '')}.teach`;

/** teach's defaults for 5–500 images per tag (`npm run bench -- teach` measures them). */
export const TEACH_DEFAULTS = {
  hidden: 0,
  lr: 0.03,
  batch: 32,
  rounds: 500,
  patience: 25,
  best: 'loss' as const,
  /** Positives weighted by negatives/positives (train --pos-weight auto) below this median of training positives per tag. */
  weightBelow: 20,
  holdout: 0.2,
  minCount: 5,
  relearnBelow: 0.8,
};

export interface TeachOptions {
  dataset: string;
  model: string;
  load: LoadOptions;
  /** A tags.csv of the tags to teach, instead of choosing them. */
  tags?: string;
  negatives?: string;
  out: string;
  minCount: number;
  /** A tag the base has is taught again when its AP on the dataset is below this. */
  relearnBelow: number;
  hidden: number;
  batch: number;
  embedding?: string;
  /** Told what teach does, step by step. */
  info: (line: string) => void;
  warn: (line: string) => void;
  embedProgress?: Pick<EmbedShardsOptions, 'onStart' | 'onProgress'>;
  /**
   * An image's tags (null: not labelled) where they are not its `.txt` caption read as tag files are
   * (the review page's caption format); counted, scored and stored from this.
   */
  tagsOf?: (entry: DatasetEntry) => Promise<string[] | null>;
  train?: TrainHooks;
  /** Model runs per batch of images while embedding. */
  modelBatch: number;
  threads: number;
}

/** Whether DATASET is a folder per tag: images in subfolders and no caption beside any image. */
async function folderPerTag(dataset: string): Promise<boolean> {
  let nested = false;
  for await (const e of walkDataset(dataset)) {
    if (e.kind === 'image' && e.tagFile) return false;
    if (e.kind === 'image' && e.name.includes('/')) nested = true;
  }
  return nested;
}

const folderTag = (e: DatasetEntry): string[] => (e.name.includes('/') ? [e.name.split('/')[0]!] : []);

/** An image's `.txt` caption read as tag files are; null without one. */
const captionFileTags = async (e: DatasetEntry): Promise<string[] | null> =>
  e.tagFile ? readTagFile(e.tagFile).catch(() => []) : null;

/** The base's AP on the dataset for each of `tags` it has (one pass of the base over the images). */
async function baseAp(
  model: TaggerModel,
  dataset: string,
  tags: string[],
  batch: number,
  tagsOf: (entry: DatasetEntry) => Promise<string[] | null>,
): Promise<Map<string, number>> {
  const cols = tags.map((t) => model.meta.tags.indexOf(t));
  const scores: number[][] = tags.map(() => []);
  const labels: number[][] = tags.map(() => []);
  const k = model.meta.tags.length;
  const captions = new Map<string, Set<string>>();
  for await (const e of walkDataset(dataset)) {
    const have = e.kind === 'image' ? await tagsOf(e).catch(() => null) : null;
    if (have) captions.set(e.file, new Set(have));
  }
  for await (const b of decodeBatches(listImages([dataset]), { ...model.preprocess, batch })) {
    if (b.files.length === 0) continue;
    const r = await model.run(b.images, b.files.length);
    b.files.forEach((f, i) => {
      const have = captions.get(f);
      if (!have) return;
      cols.forEach((c, j) => {
        scores[j]!.push(r.probs[i * k + c]!);
        labels[j]!.push(have.has(tags[j]!) ? 1 : 0);
      });
    });
  }
  return new Map(tags.map((t, j) => [t, averagePrecision(scores[j]!, labels[j]!) ?? 0]));
}

/** The tags to teach, as tags.csv rows, and why each (said through `info`). */
async function chooseTags(o: TeachOptions, model: TaggerModel, folders: boolean): Promise<TagRow[]> {
  if (o.tags) return [...(await TagIndex.load(o.tags)).rows];
  const counts = new Map<string, number>();
  if (folders || o.tagsOf) {
    const tagsOf = o.tagsOf ?? (async (e: DatasetEntry) => folderTag(e));
    for await (const e of walkDataset(o.dataset))
      for (const t of e.kind === 'image' ? ((await tagsOf(e).catch(() => null)) ?? []) : [])
        counts.set(t, (counts.get(t) ?? 0) + 1);
  } else for (const [t, n] of (await countTags(o.dataset)).counts) counts.set(t, n);
  const candidates = selectTags(counts, 1_000_000, o.minCount);
  const known = new Set(model.meta.tags);
  const inBase = candidates.filter((r) => known.has(r.name)).map((r) => r.name);
  const ap =
    inBase.length && !folders
      ? await baseAp(model, o.dataset, inBase, o.modelBatch, o.tagsOf ?? captionFileTags)
      : new Map<string, number>();
  const rows = candidates.filter((r) => !known.has(r.name) || (ap.get(r.name) ?? 0) < o.relearnBelow);
  const kept = inBase.filter((t) => !rows.some((r) => r.name === t));
  o.info(
    `teach: ${rows.length} tags to teach (${counts.size} in the ${folders ? 'folders' : 'captions'}, ${counts.size - candidates.length} on fewer than ${o.minCount} images left out` +
      (inBase.length
        ? `, ${kept.length} the base already scores with AP ≥ ${o.relearnBelow} on these images left to it`
        : '') +
      ')',
  );
  for (const t of inBase.filter((t) => rows.some((r) => r.name === t)))
    o.info(
      `teach: ${t} is the base's tag, but its AP on these images is ${ap.get(t)!.toFixed(3)}: taught again (its output replaced)`,
    );
  if (rows.length === 0)
    throw new UsageError(
      `Expected tags to teach in ${JSON.stringify(o.dataset)} (${folders ? 'a folder per tag' : 'caption tags'} on ${o.minCount} or more images that the base lacks or scores poorly) but there are none; lower --min-count, or name them with --tags`,
    );
  return rows.map((r) => ({ ...r, category: categoryOf(r.name) }));
}

export interface TeachResult {
  exported: TaughtExport;
  work: string;
  /** The head's training run (the merged model can be exported again from it). */
  runDir: string;
  tags: TagRow[];
}

/**
 * Class imbalance, as measured by the teach bench: weighting each tag's positives by its negatives /
 * positives helped at 5 and 10 positives per tag and cost AP from 20 on.
 */
async function chooseWeighting(shards: string, info: (l: string) => void): Promise<'auto' | 'none'> {
  const index = await readShardIndex(shards);
  const counts = [...(await shardPositives(shards, index, 'train')).counts].sort((a, b) => a - b);
  const median = counts[Math.floor((counts.length - 1) / 2)] ?? 0;
  const posWeight = median < TEACH_DEFAULTS.weightBelow ? 'auto' : 'none';
  info(
    `teach: ${median} training positives per tag at the median: ${posWeight === 'auto' ? `positives weighted by negatives / positives (below ${TEACH_DEFAULTS.weightBelow})` : 'plain binary cross-entropy'}`,
  );
  return posWeight;
}

/** Teach the tags of `o.dataset` to `o.model`: tags, shards, head, merged model. */
export async function teach(o: TeachOptions): Promise<TeachResult> {
  if (!/\.onnx$/i.test(o.out))
    throw new UsageError(`Expected --out ending in .onnx but received ${JSON.stringify(o.out)}`);
  const work = teachWorkFor(o.out);
  const embedding: string | true = o.embedding ?? true;
  const model = await TaggerModel.load(o.model, { ...o.load, embedding });
  let tags: TagRow[];
  const shards = path.join(work, 'shards');
  try {
    // Checked now, not after the embedding: where the merged model may go.
    const bytes = await readFile(model.file);
    await checkOutBesideBase(o.out, model.file, bytes);
    await checkOutputs(o.out, model.file, bytes, model.tagsFile);
    await mkdir(work, { recursive: true });
    const folders = !o.tagsOf && (await folderPerTag(o.dataset));
    if (folders)
      o.info(
        `teach: ${o.dataset} holds a folder per tag (no captions): each folder's images are its positives, the others its negatives`,
      );
    tags = await chooseTags(o, model, folders);
    const tagsCsv = path.join(work, 'tags.csv');
    await writeFileAtomic(tagsCsv, formatTagsCsv(tags));
    const l = o.load;
    const source: Omit<EmbeddingSource, 'width'> = {
      model: path.resolve(model.file),
      sha256: await modelSha256(model.file),
      tensor: o.embedding ?? null,
      load: {
        ...(model.tagsFile ? { tags: path.resolve(model.tagsFile) } : {}),
        ...(l.preset && l.preset !== 'auto' ? { preset: l.preset } : {}),
        ...(l.contract ? { contract: path.resolve(l.contract) } : {}),
      },
      contract: describeContract(model.contract),
    };
    await makeEmbeddingShards({
      dataset: o.dataset,
      negatives: o.negatives,
      tags: await TagIndex.load(tagsCsv),
      out: shards,
      shardSize: 28_000,
      holdout: TEACH_DEFAULTS.holdout,
      model,
      source,
      batch: o.modelBatch,
      ...(o.tagsOf ? { tagsOf: o.tagsOf } : folders ? { tagsOf: async (e: DatasetEntry) => folderTag(e) } : {}),
      onWarning: o.warn,
      ...o.embedProgress,
    });
  } finally {
    await model.release();
  }
  // The run is derived from the shards just written: a previous one (other tags, other images) goes.
  const posWeight = await chooseWeighting(shards, o.info);
  const runDir = path.join(work, 'run');
  if (existsSync(runDir)) await rm(runDir, { recursive: true });
  await trainRun(
    {
      shards,
      out: runDir,
      backbone: 'vgg16',
      rounds: TEACH_DEFAULTS.rounds,
      batch: o.batch,
      lr: TEACH_DEFAULTS.lr,
      device: 'cpu',
      seed: 1,
      resume: false,
      hidden: o.hidden,
      keep: 2,
      patience: TEACH_DEFAULTS.patience,
      best: TEACH_DEFAULTS.best,
      posWeight,
      logEvery: 1000,
      threads: o.threads,
    },
    { info: o.info, warn: o.warn, ...o.train },
  );
  const exported = await exportTaught(runDir, await readRunConfig(runDir), o.out, { onNote: o.info });
  return { exported, work, runDir, tags };
}
