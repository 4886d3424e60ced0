// `quantize`: a tagger `pred` runs (ours or foreign, a file or hf:…) with its MatMul and Gemm layers in
// int8 with activations quantized at run time (dynamic.ts), or with its convolutions too and
// activations at ranges calibrated on the user's images (--mode static: static.ts, calibrate.ts), checked on the user's images against the float model before it is kept
// (agreement.ts): written to a hidden temp file beside --out, loaded and compared, then renamed into
// place — or removed, when the tags agree less than --min-agreement.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { readFile, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { TaggerModel, type LoadOptions } from '../predict/model.js';
import type { SelectOptions } from '../predict/select.js';
import type { ImageEntry } from '../predict/tagging.js';
import { UsageError } from '../util/errors.js';
import { checkOutputFile, commitTemp, readInput, writeAll, writeFileAtomic, writeTemp } from '../util/fsx.js';
import { agreement, type Agreement } from './agreement.js';
import { quantizeDynamic, type DynamicResult, type ExternalWeights, type QuantizedLayer } from './dynamic.js';
import { calibrate } from './calibrate.js';
import { calibrationModel, convShare, planStatic, quantizeStatic, type StaticPlan } from './static.js';
import { checkExternalData, readExternalData } from '../predict/external-data.js';

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
}

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
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeResult> {
  await checkOutputFile(o.out, '--out');
  const float = await TaggerModel.load(o.model, o.load);
  let tmp: string | undefined;
  let dataTmp: string | undefined;
  let dataFile: string | undefined; // this run's data file until the model naming it is in place
  try {
    const same = await Promise.all([o.out, float.file].map((f) => realpath(f).catch(() => path.resolve(f))));
    if (same[0] === same[1])
      throw new UsageError(`Expected --out to name a new file, not the model ${JSON.stringify(float.file)} itself`);
    const bytes = await readInput(float.file, 'a model file');
    const ext = await externalWeights(bytes, float.file, o.out);
    const { result, calibrated, mode, why } = await int8Form(bytes, float, o, ext);
    // The float weights that were external stay so, in a data file of this run's own name: committed
    // before the model that names it, so nothing an existing model reads is replaced.
    const previous = ext ? await ownDataFiles(o.out) : [];
    if (ext && result.data.length > 0) {
      dataTmp = await writeTemp(path.join(path.dirname(o.out), ext.dataFile), (fh) => writeAll(fh, result.data));
      await commitTemp(dataTmp, (dataFile = path.join(path.dirname(o.out), ext.dataFile)));
      dataTmp = undefined;
    }
    tmp = await writeTemp(o.out, (fh) => writeAll(fh, [result.bytes]));
    let checked: Agreement | undefined;
    if (o.check) {
      const int8 = await TaggerModel.load(tmp, { ...o.load, tags: o.load.tags ?? float.tagsFile, onChoice: undefined });
      try {
        checked = await agreement(float, int8, o.check.entries, await o.check.select(float), o.check.batch);
      } finally {
        await int8.release();
      }
      if (checked.images === 0) throw new UsageError('Expected readable images for --images but none could be read');
      if (checked.f1 < o.minAgreement)
        throw new UsageError(
          `Expected the int8 model's tags to agree with the float model's at F1 ≥ ${o.minAgreement} but F1 is ${checked.f1.toFixed(4)} on ${checked.images} images (worst: ${checked.worst.map((w) => `${path.basename(w.file)} ${w.f1.toFixed(2)}`).join(', ')}); nothing was written (--min-agreement lower keeps it)`,
        );
    }
    await commitTemp(tmp, o.out);
    tmp = undefined;
    for (const old of previous) if (old !== dataFile) await rm(old, { force: true });
    dataFile = undefined;
    // A foreign model finds its tags file beside it: the float model's goes beside the int8 one.
    let tagsCopied: string | undefined;
    if (float.tagsFile) {
      const dest = path.join(path.dirname(o.out), path.basename(float.tagsFile));
      if (!existsSync(dest)) {
        await writeFileAtomic(dest, await readInput(float.tagsFile, 'the tags file'));
        tagsCopied = dest;
      }
    }
    return {
      mode,
      why,
      calibrated,
      tagsCopied,
      file: o.out,
      layers: result.layers,
      bytesBefore: bytes.length,
      bytesAfter: result.bytes.length,
      agreement: checked,
    };
  } finally {
    for (const f of [tmp, dataTmp, dataFile]) if (f) await rm(f, { force: true });
    await float.release();
  }
}

/** The external weights of the model read from `file`, checked and read, with the data file to write. */
async function externalWeights(bytes: Uint8Array, file: string, out: string): Promise<ExternalWeights | undefined> {
  const refs = await checkExternalData(bytes, file);
  if (refs.length === 0) return undefined;
  return {
    bytes: await readExternalData(refs),
    dataFile: `${path.basename(out)}.${randomBytes(4).toString('hex')}.data`,
  };
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

type Int8Form = { result: DynamicResult; calibrated?: number; mode: 'dynamic' | 'static'; why?: string };

/** The int8 form of the float model's `bytes` in `o.mode`; refused (UsageError) where it has no such layer. */
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
  const dynamic = (why?: string): Int8Form => {
    let result: DynamicResult;
    try {
      result = quantizeDynamic(bytes, ext);
    } catch (err) {
      throw refused(err);
    }
    if (result.layers.length === 0) throw none('MatMul or Gemm layers');
    return { result, mode: 'dynamic', why };
  };
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
  try {
    const result = quantizeStatic(bytes, cal.ranges, ext);
    return { result, calibrated: cal.images, mode: 'static', why: o.mode === 'auto' ? `auto: ${pct}` : undefined };
  } catch (err) {
    throw refused(err);
  }
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
