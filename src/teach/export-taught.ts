// `export RUN --out merged.onnx` for a head taught over a tagger's embedding: one ONNX file, the base
// tagger with the head reading its embedding (merge.ts), its tags (the base's, then the taught ones; a
// taught tag of a name the base has replaces that output) and contract in its own metadata, a tags
// file beside it for other tools. The base must be the model the shards were embedded with, by SHA-256.
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { formatTagsCsv } from '../data/tags.js';
import { padColorOf } from '../data/images.js';
import { CONTRACT_FORMAT, type ContractDoc } from '../contracts/contract-doc.js';
import { checkExternalData } from '../model/external-data.js';
import { findEmbedding } from '../model/embedding.js';
import { modelSha256 } from '../model/model-hash.js';
import { TaggerModel } from '../model/tagger.js';
import { TAUGHT_FORMAT, TAUGHT_KEY, type TaughtMeta } from '../model/taught.js';
import { withMetadataProps } from '../onnx/wire.js';
import { UsageError } from '../util/errors.js';
import { readInput, writeFilesAtomic } from '../util/fsx.js';
import { INFERENCE_FORMAT } from '../../training/artifacts.js';
import { buildHeadGraph, HEAD_SCORES } from '../../training/graphs.js';
import { io } from '../../training/params.js';
import { exportState } from '../train/export.js';
import type { RunConfig } from '../train/run-config.js';
import type { CheckpointInfo } from '../train/checkpoint.js';
import { mergeHead } from './merge.js';
import { headHoldout, thresholdsCsv, thresholdsFileFor } from './head-report.js';

export interface TaughtExportOptions {
  checkpoint?: string;
  /** The new tags' outputs alone, without the base's. */
  onlyNew?: boolean;
  /** The base model where it is not where the shards recorded it (checked by SHA-256). */
  base?: string;
  /** Told of a taught tag that replaces a base tag. */
  onNote?: (line: string) => void;
  /**
   * The taught tags to put in the model (default: all): a relearned tag left out keeps the base's
   * output, a new one left out is not in the model.
   */
  keep?: readonly string[];
}

export interface TaughtExport {
  checkpoint: CheckpointInfo;
  bytes: number;
  tagsFile: string;
  /** Per-tag thresholds at the holdout's best F1 (absent without a holdout). */
  thresholdsFile?: string;
  tags: number;
  holdout?: Awaited<ReturnType<typeof headHoldout>>;
  taught: string[];
  replaced: string[];
}

/** The tags file written beside a merged model: `OUT` without `.onnx`, plus `.tags.csv`. */
export const tagsFileFor = (out: string): string => out.replace(/\.onnx$/i, '') + '.tags.csv';

/**
 * The merged scores' columns (indices into [base…, taught…]; undefined when that is already the order),
 * tags and categories: the base's with a taught tag of the same name in its place, then the other taught
 * tags; or, `onlyNew`, the taught tags alone. Only the taught tags in `keep` (all when absent) are used.
 */
function mergedColumns(
  b: { tags: string[]; categories: number[] },
  t: { names: string[]; categories: number[] },
  onlyNew: boolean,
  keep?: ReadonlySet<string>,
): { columns?: number[]; tags: string[]; categories: number[]; replaced: string[] } {
  const k = b.tags.length;
  const byName = new Set(b.tags);
  const used = t.names.flatMap((n, j) => (!keep || keep.has(n) ? [j] : []));
  const replaced = used.map((j) => t.names[j]!).filter((n) => byName.has(n));
  if (onlyNew)
    return {
      columns: used.map((j) => k + j),
      tags: used.map((j) => t.names[j]!),
      categories: used.map((j) => t.categories[j]!),
      replaced,
    };
  const fresh = used.filter((j) => !byName.has(t.names[j]!));
  const columns = [
    ...b.tags.map((n, i) => (replaced.includes(n) ? k + t.names.indexOf(n) : i)),
    ...fresh.map((j) => k + j),
  ];
  return {
    columns: columns.every((c, i) => c === i) ? undefined : columns,
    tags: [...b.tags, ...fresh.map((j) => t.names[j]!)],
    categories: [...b.categories, ...fresh.map((j) => t.categories[j]!)],
    replaced,
  };
}

/** Refuse outputs that would overwrite the base model, its external data or its tags file. */
export async function checkOutputs(out: string, file: string, bytes: Uint8Array, tagsFile?: string): Promise<void> {
  const real = (f: string): Promise<string> => realpath(f).catch(() => path.resolve(f));
  const theirs = [file, ...(await checkExternalData(bytes, file)).map((r) => r.file), ...(tagsFile ? [tagsFile] : [])];
  const mine = [out, tagsFileFor(out), thresholdsFileFor(out)];
  for (const t of theirs)
    for (const m of mine)
      if ((await real(m)) === (await real(t)))
        throw new UsageError(
          `Expected --out to name new files, but ${JSON.stringify(m)} is ${JSON.stringify(t)}, a file of the base model ${JSON.stringify(file)}`,
        );
}

/** A merged model names its base's external data files as the base does: it must be written beside it. */
export async function checkOutBesideBase(out: string, file: string, bytes: Uint8Array): Promise<void> {
  const external = await checkExternalData(bytes, file);
  if (external.length > 0 && path.resolve(path.dirname(out)) !== path.resolve(path.dirname(file)))
    throw new UsageError(
      `Expected --out in the folder of ${JSON.stringify(file)}: its weights are in external data files (${external[0]!.location}…), which the merged model names as the base does`,
    );
}

/** The base model the run was taught on, checked by SHA-256, loaded for its contract and tags, and its embedding cut. */
async function openBase(run: RunConfig, out: string, given?: string) {
  const base = run.base!;
  const file = given ?? base.model;
  const bytes = await readInput(
    file,
    `the base model the run was taught on (${base.model}; --base names another place)`,
  );
  const sha = await modelSha256(file);
  if (sha !== base.sha256)
    throw new UsageError(
      `Expected the base model the run was taught on (SHA-256 ${base.sha256.slice(0, 12)}…, the shards' index.json) in ${JSON.stringify(file)} but it has SHA-256 ${sha.slice(0, 12)}…: a head joined to another model would score nonsense`,
    );
  await checkOutBesideBase(out, file, bytes);
  const l = base.load;
  const model = await TaggerModel.load(file, {
    tags: l.tags,
    preset: l.preset,
    contract: l.contract,
    overrides: {
      channels: l.channels as 'rgb' | 'bgr' | undefined,
      scale: l.scale,
      padColor: l.padColor === undefined ? undefined : padColorOf(l.padColor, 'the base load options'),
    },
  });
  await model.release();
  const scores = model.contract.probsName;
  const cut = findEmbedding(bytes, scores, file, base.tensor ?? undefined);
  if (cut.width !== undefined && cut.width !== base.width)
    throw new UsageError(
      `Expected the embedding of ${JSON.stringify(file)} to be ${base.width} wide, as the shards were, but ${cut.tensor} is ${cut.width}`,
    );
  return { file, bytes, model, scores, cut };
}

/** The merged model's metadata: the taught entry, and for a base of ours its own tags and categories too. */
function taughtProps(
  model: TaggerModel,
  run: RunConfig,
  file: string,
  t: Pick<TaughtMeta, 'tags' | 'categories' | 'taught' | 'replaced'>,
): Record<string, string> {
  const ours = model.contract.kind === 'ours';
  const l = run.base!.load;
  const meta: TaughtMeta = {
    format: TAUGHT_FORMAT,
    version: 1,
    base: { file: path.basename(file), sha256: run.base!.sha256 },
    // The document as a contract file holds it: parseTaught reads it back with parseContractDoc.
    ...(ours ? {} : { contract: { format: CONTRACT_FORMAT, ...model.doc! } as ContractDoc }),
    overrides: {
      ...(l.channels ? { channels: l.channels as 'rgb' | 'bgr' } : {}),
      ...(l.scale ? { scale: l.scale } : {}),
      ...(Array.isArray(model.contract.padColor) && l.padColor
        ? { padColor: model.contract.padColor as [number, number, number] }
        : {}),
    },
    ...t,
  };
  const props: Record<string, string> = { [TAUGHT_KEY]: JSON.stringify(meta) };
  if (ours)
    Object.assign(props, {
      format: INFERENCE_FORMAT,
      tags: JSON.stringify(t.tags),
      categories: JSON.stringify(t.categories),
    });
  return props;
}

export async function exportTaught(
  runDir: string,
  run: RunConfig,
  out: string,
  o: TaughtExportOptions = {},
): Promise<TaughtExport> {
  if (!/\.onnx$/i.test(out)) throw new UsageError(`Expected --out ending in .onnx but received ${JSON.stringify(out)}`);
  const { file, bytes, model, scores, cut } = await openBase(run, out, o.base);
  await checkOutputs(out, file, bytes, model.tagsFile);
  const { state, info } = await exportState(runDir, run, o.checkpoint);
  const keep = o.keep ? new Set(o.keep) : undefined;
  const unknown = o.keep?.find((t) => !run.tags.names.includes(t));
  if (unknown !== undefined || keep?.size === 0)
    throw new UsageError(
      `Expected the tags to keep to be some of the run's taught tags (${run.tags.names.slice(0, 8).join(', ')}…) but ${unknown === undefined ? 'none is given' : `${JSON.stringify(unknown)} is not one`}`,
    );
  const taught = run.tags.names.filter((n) => !keep || keep.has(n));
  const { columns, tags, categories, replaced } = mergedColumns(model.meta, run.tags, o.onlyNew === true, keep);
  for (const t of replaced)
    o.onNote?.(
      `export: the taught tag ${t} replaces the base model's output of that name (column ${model.meta.tags.indexOf(t)})`,
    );
  const head = buildHeadGraph(run.model, state.params, model.contract.logits).toJson();
  const merged = mergeHead({
    base: bytes,
    file,
    cut,
    scores,
    head: head.graph,
    input: io.embedding,
    output: HEAD_SCORES,
    columns,
    width: tags.length,
  });
  const props = taughtProps(model, run, file, { tags, categories, taught, replaced });
  const result = withMetadataProps(merged, props);
  const tagsFile = tagsFileFor(out);
  const rows = tags.map((name, i) => ({ name, category: categories[i]!, count: 0 }));
  const files: [string, Uint8Array][] = [
    [out, result],
    [tagsFile, Buffer.from(formatTagsCsv(rows))],
  ];
  // Per-tag thresholds at the holdout's best F1, for pred --thresholds (when the run's shards are still there).
  let holdout: TaughtExport['holdout'];
  if (existsSync(path.join(run.shards, 'index.json'))) {
    holdout = await headHoldout(run.model, state.params, run.shards);
    holdout = { ...holdout, tags: holdout.tags.filter((h) => taught.includes(h.tag)) };
    if (holdout.images > 0) files.push([thresholdsFileFor(out), Buffer.from(thresholdsCsv(holdout.tags))]);
  } else o.onNote?.(`export: no thresholds file: the run's shards ${run.shards} are gone`);
  await writeFilesAtomic(files);
  const thresholdsFile = holdout?.images ? thresholdsFileFor(out) : undefined;
  return {
    checkpoint: info,
    bytes: result.length,
    tagsFile,
    thresholdsFile,
    tags: tags.length,
    taught,
    replaced,
    holdout,
  };
}
