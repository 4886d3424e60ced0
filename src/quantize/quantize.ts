// `quantize`: a tagger `pred` runs (ours or foreign, a file or hf:…) with its layer norms, residual adds
// and wide MLPs in the forms ONNX Runtime runs fastest (norms.ts, layout.ts, tiles.ts) and its MatMul
// and Gemm layers in int8 with activations quantized at run time (dynamic.ts), or with its convolutions
// too and activations at ranges calibrated on the user's images (--mode static: static.ts,
// calibrate.ts), checked on the user's images against the float model before it is kept
// (agreement.ts): written to a hidden temp file beside --out, loaded and compared, then renamed into
// place — or removed, when the tags agree less than --min-agreement.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { TaggerModel, type LoadOptions } from '../model/tagger.js';
import type { SelectOptions } from '../select/select.js';
import type { ImageEntry } from '../predict/tagging.js';
import { UsageError } from '../util/errors.js';
import { checkOutputFile, commitTemp, readInput, writeAll, writeFileAtomic, writeTemp } from '../util/fsx.js';
import { agreement, imagesText, scores, type Agreement, type Scores } from './agreement.js';
import { quantizeDynamic, type DynamicResult, type ExternalWeights, type QuantizedLayer } from './dynamic.js';
import { calibrate } from './calibrate.js';
import { fastNorms } from './norms.js';
import { residualLayout } from './layout.js';
import { checkQuantizeOut, tagsTarget } from './out-file.js';
import { expansionMlps, tileCount, tileMlps } from './tiles.js';
import { calibrationModel, convShare, planStatic, quantizeStatic, type StaticPlan } from './static.js';
import { checkExternalData, readExternalData } from '../model/external-data.js';

export interface QuantizeOptions {
  model: string;
  out: string;
  load: LoadOptions;
  /** Images to check the int8 model on, with the tag selection `pred` would use. */
  check?: { entries: ImageEntry[]; select: (model: TaggerModel) => Promise<SelectOptions>; batch: number };
  minAgreement: number;
  /**
   * dynamic: activations quantized at run time; static: at ranges calibrated on `check`'s images; auto:
   * static where convolutions hold at least half the multiply-adds (measured faster there), else dynamic.
   */
  mode: QuantizeMode;
  /** Images (the first of `check`'s) that static mode calibrates on. */
  calibrate: number;
  /**
   * The head (the last layer quantized): int8, float, or auto: int8 unless, with `check`, the model
   * agrees under HEAD_CHECK_F1 and agrees better with the head float.
   */
  head: HeadMode;
}

export const HEAD_MODES = ['auto', 'int8', 'float'] as const;
export type HeadMode = (typeof HEAD_MODES)[number];

export const MODES = ['auto', 'dynamic', 'static'] as const;
export type QuantizeMode = (typeof MODES)[number];

export interface QuantizeResult {
  file: string;
  layers: QuantizedLayer[];
  bytesBefore: number;
  bytesAfter: number;
  agreement?: Agreement;
  /** Images static mode calibrated on. */
  calibrated?: number;
  /** The mode used, and for auto why. */
  mode: 'dynamic' | 'static';
  why?: string;
  /** Where the tags file was copied beside --out (when it was not there). */
  tagsCopied?: string;
  head: HeadChoice;
  /** Layer norms in instance-norm form (norms.ts), and how many had their γ and β folded into the next layers. */
  norms: { count: number; folded: number };
  /** Residual adds moved into their branch's layout (layout.ts), a Transpose fewer each. */
  residuals: number;
  /** Expansion MLPs run a tile of rows at a time (tiles.ts). */
  tiled: number;
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeResult> {
  await checkOutputFile(o.out, '--out');
  const float = await TaggerModel.load(o.model, o.load);
  const staged: string[] = []; // this run's files until the model naming them is in place
  try {
    const bytes = await readInput(float.file, 'a model file');
    const refs = await checkExternalData(bytes, float.file);
    await checkQuantizeOut(o.out, float, [...new Set(refs.map((r) => r.file))]);
    const tagsDest = await tagsTarget(float, o.out);
    const ext = refs.length === 0 ? undefined : { bytes: await readExternalData(refs), dataFile: '' };
    const norms = floatRewrites(bytes, float.file, ext);
    const tiles = await tileRows(norms.bytes, float, o, ext);
    const form = await int8Form(tiles.bytes, float, o, ext);
    const previous = ext ? await ownDataFiles(o.out) : [];
    const first = form.first;
    const headNode = first.layers.at(-1)!;
    let chosen = await stage(o.out, o.head === 'float' ? form.build(new Set([headNode.node])) : first, staged);
    let checked: Agreement | undefined;
    let head: HeadChoice = { layer: headNode, float: o.head === 'float' };
    if (o.check) {
      const select = await o.check.select(float);
      const against = await scores(float, o.check.entries, select, o.check.batch);
      const check = (s: Staged): Promise<Agreement> => checkStaged(s, float, o, against, select);
      checked = await check(chosen);
      if (o.head === 'auto' && checked.f1 < HEAD_CHECK_F1 && first.layers.length > 1) {
        const alt = await stage(o.out, form.build(new Set([headNode.node])), staged);
        const altChecked = await check(alt);
        head = { ...head, tried: { int8: checked.f1, float: altChecked.f1 } };
        if (altChecked.f1 > checked.f1) [chosen, checked, head.float] = [alt, altChecked, true];
      }
      if (checked.f1 < o.minAgreement)
        throw new UsageError(
          `Expected the int8 model's tags to agree with the float model's at F1 ≥ ${o.minAgreement} but F1 is ${checked.f1.toFixed(4)} on ${imagesText(checked.images)} (worst: ${checked.worst.map((w) => `${path.basename(w.file)} ${w.f1.toFixed(2)}`).join(', ')}); nothing was written (--min-agreement lower keeps it)`,
        );
    }
    await commitTemp(chosen.tmp, o.out);
    staged.splice(staged.indexOf(chosen.tmp), 1);
    if (chosen.dataFile) staged.splice(staged.indexOf(chosen.dataFile), 1);
    for (const old of previous) if (old !== chosen.dataFile) await rm(old, { force: true });
    if (tagsDest) await writeFileAtomic(tagsDest, await readInput(float.tagsFile!, 'the tags file'));
    return {
      mode: form.mode,
      why: form.why,
      calibrated: form.calibrated,
      tagsCopied: tagsDest,
      file: o.out,
      layers: chosen.result.layers,
      head,
      norms: { count: norms.count, folded: norms.folded },
      residuals: norms.residuals,
      tiled: tiles.count,
      bytesBefore: bytes.length,
      bytesAfter: chosen.result.bytes.length,
      agreement: checked,
    };
  } finally {
    for (const f of staged) await rm(f, { force: true });
    await float.release();
  }
}

/** The float model's exact rewrites (`fastNorms`, then `residualLayout`), a malformed graph refused as a bad input. */
export function floatRewrites(
  bytes: Uint8Array,
  file: string,
  ext?: ExternalWeights,
): { bytes: Uint8Array; count: number; folded: number; residuals: number } {
  try {
    const norms = fastNorms(bytes, ext);
    const layout = residualLayout(norms.bytes);
    return { ...norms, bytes: layout.bytes, residuals: layout.count };
  } catch (err) {
    throw new UsageError(`Expected a model to quantize in ${JSON.stringify(file)} but ${(err as Error).message}`);
  }
}

/**
 * `bytes` with its expansion MLPs cut into row tiles where their hidden activation for one image is past
 * the caches (tiles.ts): the rows of each are measured in one run of the float model on a black image,
 * with the MLPs' inputs as outputs (a temp file beside --out). Not for external weights (the run would
 * take them inline).
 */
async function tileRows(
  bytes: Uint8Array,
  float: TaggerModel,
  o: QuantizeOptions,
  ext: ExternalWeights | undefined,
): Promise<{ bytes: Uint8Array; count: number }> {
  const mlps = expansionMlps(bytes);
  if (ext || mlps.length === 0) return { bytes, count: 0 };
  const inputs = mlps.map((m) => m.input);
  const tmp = await writeTemp(o.out, (fh) => writeAll(fh, [calibrationModel(bytes, inputs)]));
  let out: Record<string, { dims: readonly number[] }>;
  try {
    const model = await TaggerModel.load(tmp, { ...o.load, tags: o.load.tags ?? float.tagsFile, onChoice: undefined });
    try {
      const per = model.contract.fixedBatch ?? 1;
      out = await model.runOutputs(new Uint8Array(per * model.contract.size ** 2 * 3), per).catch((err: Error) => {
        throw new UsageError(
          `Expected ${JSON.stringify(float.file)} to run on a black image but it fails: ${err.message.split('\n')[0]}`,
        );
      });
    } finally {
      await model.release();
    }
  } finally {
    await rm(tmp, { force: true });
  }
  const tiles = new Map(
    mlps.map((m) => {
      const d = out[m.input]?.dims ?? [];
      const rows = d.slice(0, -1).reduce((a, b) => a * b, 1) / (float.contract.fixedBatch ?? 1);
      return [m.input, d.length >= 2 ? tileCount(rows, m.channels, m.width) : 1] as const;
    }),
  );
  return tileMlps(bytes, (input) => tiles.get(input) ?? 1);
}

/** Under this F1 of an all-int8 model, `--head auto` tries the head float and keeps the better. */
export const HEAD_CHECK_F1 = 0.99;

/** The last quantized layer (the head), whether it stayed float, and the F1 of both forms where both were tried. */
export interface HeadChoice {
  layer: QuantizedLayer;
  float: boolean;
  tried?: { int8: number; float: number };
}

type Staged = { result: Built; tmp: string; dataFile?: string };

/**
 * `result` written beside `out` to a hidden temp name, its float weights that were external in a data
 * file of its own name, committed before the model that names it, so nothing an existing model reads is
 * replaced. Both names are added to `staged`, which the caller removes unless kept.
 */
async function stage(out: string, result: Built, staged: string[]): Promise<Staged> {
  let dataFile: string | undefined;
  if (result.dataFile && result.data.length > 0) {
    dataFile = path.join(path.dirname(out), result.dataFile);
    const dataTmp = await writeTemp(dataFile, (fh) => writeAll(fh, result.data));
    staged.push(dataTmp);
    await commitTemp(dataTmp, dataFile);
    staged.splice(staged.indexOf(dataTmp), 1, dataFile);
  }
  const tmp = await writeTemp(out, (fh) => writeAll(fh, [result.bytes]));
  staged.push(tmp);
  return { result, tmp, dataFile };
}

/** The staged int8 model loaded and run on `o.check`'s images against the float model's scores. */
async function checkStaged(
  s: Staged,
  float: TaggerModel,
  o: QuantizeOptions,
  against: Scores,
  select: SelectOptions,
): Promise<Agreement> {
  const check = o.check!;
  const int8 = await TaggerModel.load(s.tmp, { ...o.load, tags: o.load.tags ?? float.tagsFile, onChoice: undefined });
  try {
    const a = agreement(against, await scores(int8, check.entries, select, check.batch), check.entries);
    if (a.images === 0) throw new UsageError('Expected readable images for --images but none could be read');
    return a;
  } finally {
    await int8.release();
  }
}

/** The data files that the model now at `out` (if any) names and that an earlier `quantize` wrote. */
async function ownDataFiles(out: string): Promise<string[]> {
  const bytes = await readFile(out).catch(() => undefined);
  if (!bytes) return [];
  const base = `${path.basename(out)}.`;
  const own = (location: string): boolean =>
    location.startsWith(base) && /^[0-9a-f]{8}\.data$/.test(location.slice(base.length));
  const refs = await checkExternalData(bytes, out).catch(() => []);
  return [...new Set(refs.filter((r) => own(r.location)).map((r) => r.file))];
}

/** Convolutions' least share of the multiply-adds for auto to take static mode. */
export const AUTO_STATIC_SHARE = 0.5;

/** An int8 build: the model's bytes, its layers, and the data file its kept external weights go to. */
type Built = DynamicResult & { dataFile?: string };

type Int8Form = {
  /** The model with every layer of the form in int8 but those named in `keep`. */
  build: (keep: ReadonlySet<string>) => Built;
  /** build(∅), built once to check the form has a layer. */
  first: Built;
  calibrated?: number;
  mode: 'dynamic' | 'static';
  why?: string;
};

/**
 * The int8 form of the float model's `bytes` in `o.mode`, checked to build; refused (UsageError)
 * where it has no such layer.
 */
async function int8Form(
  bytes: Uint8Array,
  float: TaggerModel,
  o: QuantizeOptions,
  ext: ExternalWeights | undefined,
): Promise<Int8Form> {
  const refused = (err: unknown): UsageError =>
    new UsageError(`Expected a model to quantize in ${JSON.stringify(float.file)} but ${(err as Error).message}`);
  const none = (what: string): UsageError =>
    new UsageError(
      `Expected ${what} with a constant float32 weight (at least 16 × 16) in ${JSON.stringify(float.file)} but it has none: nothing to quantize`,
    );
  // Each build's external float weights go to a data file of its own name (`OUT.<8 hex>.data`).
  const form = (
    f: Omit<Int8Form, 'build' | 'first'>,
    quantize: (e: ExternalWeights | undefined, keep: ReadonlySet<string>) => DynamicResult,
    what: string,
  ): Int8Form => {
    const build = (keep: ReadonlySet<string>): Built => {
      const e = ext && { ...ext, dataFile: `${path.basename(o.out)}.${randomBytes(4).toString('hex')}.data` };
      let result: DynamicResult;
      try {
        result = quantize(e, keep);
      } catch (err) {
        throw refused(err);
      }
      if (result.layers.length === 0) throw none(what);
      return { ...result, dataFile: e?.dataFile };
    };
    return { ...f, build, first: build(new Set()) };
  };
  const dynamic = (why?: string): Int8Form =>
    form({ mode: 'dynamic', why }, (e, keep) => quantizeDynamic(bytes, e, keep), 'MatMul or Gemm layers');
  if (o.mode === 'dynamic' || (o.mode === 'auto' && !o.check))
    return dynamic(o.mode === 'auto' ? 'auto: no --images to calibrate on' : undefined);
  if (!o.check) throw new UsageError('Expected --images DIR with --mode static: it calibrates activations on them');
  let plan: StaticPlan;
  try {
    plan = planStatic(bytes, ext);
  } catch (err) {
    if (o.mode === 'auto') return dynamic(`auto: ${(err as Error).message}`);
    throw refused(err);
  }
  if (plan.layers.length === 0) {
    if (o.mode === 'auto') return dynamic('auto: no layer for static mode');
    throw none('Conv, MatMul or Gemm layers past the first');
  }
  let share = 1;
  const cal = await calibrateOn(bytes, plan, float, o, o.check.entries, ext, (first) => {
    share = convShare(plan, first);
    return o.mode === 'static' || share >= AUTO_STATIC_SHARE;
  });
  const pct = `convolutions hold ${(100 * share).toFixed(0)}% of the multiply-adds`;
  if (cal.stopped) return dynamic(`auto: ${pct}`);
  if (cal.images === 0)
    throw new UsageError('Expected readable images for --images to calibrate on but none could be read');
  return form(
    { calibrated: cal.images, mode: 'static', why: o.mode === 'auto' ? `auto: ${pct}` : undefined },
    (e, keep) => quantizeStatic(bytes, cal.ranges, e, keep),
    'Conv, MatMul or Gemm layers past the first',
  );
}

/** The calibration run: the float model with the activations as outputs, beside --out while it runs, never kept. */
async function calibrateOn(
  bytes: Uint8Array,
  plan: StaticPlan,
  float: TaggerModel,
  o: QuantizeOptions,
  entries: ImageEntry[],
  ext: ExternalWeights | undefined,
  goOn: Parameters<typeof calibrate>[3],
): ReturnType<typeof calibrate> {
  const tmp = await writeTemp(o.out, (fh) => writeAll(fh, [calibrationModel(bytes, plan.tensors, ext)]));
  try {
    const model = await TaggerModel.load(tmp, { ...o.load, tags: o.load.tags ?? float.tagsFile, onChoice: undefined });
    try {
      return await calibrate(model, entries.slice(0, o.calibrate), plan.tensors, goOn);
    } finally {
      await model.release();
    }
  } finally {
    await rm(tmp, { force: true });
  }
}
