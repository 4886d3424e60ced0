// `kpi fit` and `kpi pred` in domain terms: targets matched to a `vec` index by file name, the fit and
// its report (cross-validated score, the features that drive the KPI), kpi.json (the fitted model and
// the tagger it belongs to), and predictions for new images.
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { UsageError } from '../util/errors.js';
import { readInput, readJsonInput, writeFileAtomic } from '../util/fsx.js';
import type { TaggerModel } from '../model/tagger.js';
import { readVecIndex, VEC_KINDS, vectorize, type VecKind } from '../outputs/vectors.js';
import { fitKpi, KPI_KINDS, predictKpi, type CvReport, type KpiKind, type LinearModel } from './fit.js';

export const KPI_FORMAT = 'alt-i2v-ort/kpi';

export interface KpiFile {
  format: typeof KPI_FORMAT;
  version: 1;
  vecKind: VecKind;
  /** The tagger whose vectors the KPI was fitted on: its file and fingerprint. */
  model: { file: string; fingerprint: string };
  names: string[];
  fit: LinearModel;
  cv: CvReport;
}

/** The values of TARGETS.csv (`file,value`), by absolute path (relative paths: from the CSV's folder). */
async function readTargets(file: string): Promise<Map<string, number>> {
  let rows: Record<string, string>[];
  try {
    rows = parse(await readInput(file, 'a TARGETS.csv with file,value rows for --target'), {
      bom: true,
      columns: true,
      skip_empty_lines: true,
      trim: true,
    });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Expected CSV in ${JSON.stringify(file)} but it does not parse: ${(err as Error).message}`);
  }
  if (rows.length === 0 || !('file' in rows[0]!) || !('value' in rows[0]!))
    throw new UsageError(`Expected a header "file,value" and rows in ${JSON.stringify(file)}`);
  const out = new Map<string, number>();
  const rowOf = new Map<string, number>();
  rows.forEach((r, i) => {
    const v = Number(r.value);
    if (r.value === '' || !Number.isFinite(v))
      throw new UsageError(
        `Expected a finite number as value in ${JSON.stringify(file)} row ${i + 2} but received ${JSON.stringify(r.value)}`,
      );
    const key = path.resolve(path.dirname(file), r.file!);
    if (rowOf.has(key))
      throw new UsageError(
        `Expected each file once in ${JSON.stringify(file)} but ${JSON.stringify(r.file)} is on rows ${rowOf.get(key)} and ${i + 2}`,
      );
    rowOf.set(key, i + 2);
    out.set(key, v);
  });
  return out;
}

/** Unpack a binary hash (packed bits) into 0/1 features; float rows as they are. */
const asFeatures = (row: Float32Array | Uint8Array, kind: VecKind, dim: number): ArrayLike<number> =>
  kind === 'binary' ? Array.from({ length: dim }, (_, j) => (row[j >> 3]! >> (7 - (j & 7))) & 1) : row;

export interface FitSummary {
  kpi: KpiFile;
  used: number;
  withoutTarget: number;
  targetsWithoutRow: string[];
  /** The features with the largest positive and negative weights (per standard deviation). */
  top: { positive: [string, number][]; negative: [string, number][] };
}

export async function fitKpiFile(
  vecFile: string,
  targetsFile: string,
  kind: KpiKind,
  folds: number,
): Promise<FitSummary> {
  const { meta, index } = await readVecIndex(vecFile);
  const targets = await readTargets(targetsFile);
  const width = index.shape[1];
  const rows: ArrayLike<number>[] = [];
  const y: number[] = [];
  meta.files.forEach((f, i) => {
    const v = targets.get(path.resolve(f));
    if (v === undefined) return;
    rows.push(asFeatures(index.data.subarray(i * width, (i + 1) * width), meta.kind, meta.dim));
    y.push(v);
  });
  const known = new Set(meta.files.map((f) => path.resolve(f)));
  const targetsWithoutRow = [...targets.keys()].filter((f) => !known.has(f));
  if (rows.length < folds * 2)
    throw new UsageError(
      `Expected at least ${folds * 2} images with a target for ${folds}-fold cross-validation but ${JSON.stringify(targetsFile)} matches ${rows.length} rows of ${JSON.stringify(vecFile)}`,
    );
  if (new Set(y).size < 2)
    throw new UsageError(
      `Expected targets that vary in ${JSON.stringify(targetsFile)} but every matched image has the value ${y[0]}: there is nothing to fit`,
    );
  if (!meta.fingerprint)
    throw new UsageError(
      `Expected ${JSON.stringify(vecFile)} to name the model it came from (a fingerprint) but it does not: make it again with \`vec --out FILE.npy\``,
    );
  if (kind === 'logistic' && !y.every((v) => v === 0 || v === 1))
    throw new UsageError(`Expected 0/1 values for --kind logistic in ${JSON.stringify(targetsFile)}`);
  if (kind === 'logistic' && new Set(y).size < 2)
    throw new UsageError(`Expected both 0 and 1 values for --kind logistic in ${JSON.stringify(targetsFile)}`);
  const { model, cv } = fitKpi(kind, rows, y, folds);
  const names =
    meta.names ?? Array.from({ length: meta.dim }, (_, j) => `${meta.kind === 'binary' ? 'bit' : 'feature'}_${j}`);
  const ranked = model.weights.map((w, j) => [names[j]!, w] as [string, number]).sort((a, b) => b[1] - a[1]);
  const kpi: KpiFile = {
    format: KPI_FORMAT,
    version: 1,
    vecKind: meta.kind,
    model: { file: meta.model, fingerprint: meta.fingerprint },
    names,
    fit: model,
    cv,
  };
  return {
    kpi,
    used: rows.length,
    withoutTarget: meta.files.length - rows.length,
    targetsWithoutRow,
    top: {
      positive: ranked.slice(0, 5).filter(([, w]) => w > 0),
      negative: ranked
        .slice(-5)
        .reverse()
        .filter(([, w]) => w < 0),
    },
  };
}

export async function writeKpiFile(file: string, kpi: KpiFile): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(kpi)}\n`);
}

export async function readKpiFile(file: string): Promise<KpiFile> {
  const k = await readJsonInput<KpiFile>(file, 'a kpi.json written by `kpi fit` for --kpi');
  const bad = (what: string): UsageError =>
    new UsageError(`Expected a kpi.json written by \`kpi fit\` in ${JSON.stringify(file)} but ${what}`);
  if (k?.format !== KPI_FORMAT) throw bad(`its format is not ${KPI_FORMAT}`);
  if (!VEC_KINDS.includes(k.vecKind)) throw bad('its vecKind is not probs, features or binary');
  if (typeof k.model?.fingerprint !== 'string' || k.model.fingerprint === '')
    throw bad('it names no model fingerprint (the check that it is used with its own model)');
  const fit = k.fit;
  if (!KPI_KINDS.includes(fit?.kind)) throw bad('its fit.kind is not linear or logistic');
  const finite = (a: unknown): a is number[] =>
    Array.isArray(a) && a.every((x) => typeof x === 'number' && Number.isFinite(x));
  const d = Array.isArray(fit.weights) ? fit.weights.length : 0;
  for (const [name, a] of [
    ['weights', fit.weights],
    ['mean', fit.mean],
    ['std', fit.std],
  ] as const)
    if (!finite(a) || a.length !== d || d === 0) throw bad(`its fit.${name} are not ${d || 'the'} finite numbers`);
  if (!fit.std.every((x) => x > 0)) throw bad('its fit.std holds a value ≤ 0');
  if (typeof fit.intercept !== 'number' || !Number.isFinite(fit.intercept))
    throw bad('its fit.intercept is not finite');
  if (!Array.isArray(k.names) || k.names.length !== d) throw bad(`its names are not ${d}, one per weight`);
  return k;
}

/** KPI values (and for logistic fits, probabilities) of images, refusing a model the KPI was not fitted on. */
export async function predictKpiFiles(
  model: TaggerModel,
  kpi: KpiFile,
  kpiFile: string,
  args: string[],
  batch: number,
  onFailure: (file: string, reason: string) => void,
): Promise<{ file: string; value: number }[]> {
  if (kpi.model.fingerprint !== model.fingerprint) {
    throw new UsageError(
      `Expected the model ${JSON.stringify(kpiFile)} was fitted on (${kpi.model.file}) but --model is another one (its fingerprint differs)`,
    );
  }
  const v = await vectorize(model, args, kpi.vecKind, batch, onFailure);
  return v.files.map((file, i) => ({ file, value: predictKpi(kpi.fit, asFeatures(v.rows[i]!, kpi.vecKind, v.dim)) }));
}
