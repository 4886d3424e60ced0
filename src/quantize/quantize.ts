// `quantize`: a tagger `pred` runs (ours or foreign, a file or hf:…) with its MatMul and Gemm layers in
// int8 (dynamic.ts), checked on the user's images against the float model before it is kept
// (agreement.ts): written to a hidden temp file beside --out, loaded and compared, then renamed into
// place — or removed, when the tags agree less than --min-agreement.
import { existsSync } from 'node:fs';
import { realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { TaggerModel, type LoadOptions } from '../predict/model.js';
import type { SelectOptions } from '../predict/select.js';
import type { ImageEntry } from '../predict/tagging.js';
import { UsageError } from '../util/errors.js';
import { checkOutputFile, commitTemp, readInput, writeAll, writeFileAtomic, writeTemp } from '../util/fsx.js';
import { agreement, type Agreement } from './agreement.js';
import { quantizeDynamic, type QuantizedLayer } from './dynamic.js';

export interface QuantizeOptions {
  model: string;
  out: string;
  load: LoadOptions;
  /** Images to check the int8 model on, with the tag selection `pred` would use. */
  check?: { entries: ImageEntry[]; select: (model: TaggerModel) => Promise<SelectOptions>; batch: number };
  minAgreement: number;
}

export interface QuantizeResult {
  file: string;
  layers: QuantizedLayer[];
  bytesBefore: number;
  bytesAfter: number;
  agreement?: Agreement;
  /** Where the tags file was copied beside --out (when it was not there). */
  tagsCopied?: string;
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeResult> {
  await checkOutputFile(o.out, '--out');
  const float = await TaggerModel.load(o.model, o.load);
  let tmp: string | undefined;
  try {
    const same = await Promise.all([o.out, float.file].map((f) => realpath(f).catch(() => path.resolve(f))));
    if (same[0] === same[1])
      throw new UsageError(`Expected --out to name a new file, not the model ${JSON.stringify(float.file)} itself`);
    const bytes = await readInput(float.file, 'a model file');
    let result: ReturnType<typeof quantizeDynamic>;
    try {
      result = quantizeDynamic(bytes);
    } catch (err) {
      throw new UsageError(
        `Expected a model to quantize in ${JSON.stringify(float.file)} but ${(err as Error).message}`,
      );
    }
    if (result.layers.length === 0)
      throw new UsageError(
        `Expected MatMul or Gemm layers with a constant float32 weight (at least 16 × 16) in ${JSON.stringify(float.file)} but it has none: nothing to quantize`,
      );
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
      tagsCopied,
      file: o.out,
      layers: result.layers,
      bytesBefore: bytes.length,
      bytesAfter: result.bytes.length,
      agreement: checked,
    };
  } finally {
    if (tmp) await rm(tmp, { force: true });
    await float.release();
  }
}
