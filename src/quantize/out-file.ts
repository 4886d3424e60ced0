// What `quantize` may write to, checked before any work: --out a .onnx file that is new or an ONNX model
// to replace, never the float model itself nor one of its external data files; and beside it, the float
// model's tags file only where no other model's tags file of that name already is (a model is never
// paired with tags that are not its own).
import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { parseForeignTags } from '../contracts/tag-files.js';
import type { TaggerModel } from '../model/tagger.js';
import { readOpsets } from '../onnx/proto.js';
import { UsageError } from '../util/errors.js';

/** Whether `bytes` (the tags file `file`) hold exactly `tags`, in order; a file that does not parse does not. */
function sameTags(bytes: Buffer | undefined, file: string, tags: readonly string[]): boolean {
  try {
    const t = bytes && parseForeignTags(bytes, file);
    return !!t && t.tags.length === tags.length && t.tags.every((x, i) => x === tags[i]);
  } catch {
    return false;
  }
}

const real = (f: string): Promise<string> => realpath(f).catch(() => path.resolve(f));

/** Whether `bytes` parse as an ONNX model (a ModelProto naming ONNX's own operator set). */
function isOnnxModel(bytes: Uint8Array): boolean {
  try {
    const opsets = readOpsets(bytes);
    return opsets.has('') || opsets.has('ai.onnx');
  } catch {
    return false;
  }
}

/** Refuse an --out that would overwrite what it must not; `dataFiles` are the float model's external data. */
export async function checkQuantizeOut(out: string, float: TaggerModel, dataFiles: readonly string[]): Promise<void> {
  if (!/\.onnx$/i.test(out)) throw new UsageError(`Expected --out ending in .onnx but received ${JSON.stringify(out)}`);
  const target = await real(out);
  if (target === (await real(float.file)))
    throw new UsageError(`Expected --out to name a new file, not the model ${JSON.stringify(float.file)} itself`);
  for (const d of dataFiles)
    if (target === (await real(d)))
      throw new UsageError(
        `Expected --out to name a new file, not ${JSON.stringify(d)}, the external data of the model ${JSON.stringify(float.file)}`,
      );
  if (existsSync(out) && !isOnnxModel(await readFile(out)))
    throw new UsageError(
      `Expected --out to be a new file or an ONNX model to replace, but ${JSON.stringify(out)} is not an ONNX model; choose another --out`,
    );
}

/**
 * Where the float model's tags file goes beside --out: its path, or undefined where none is needed (our
 * own models carry their tags) or the same tags are already there. Another model's tags file under that
 * name is refused, naming it.
 */
export async function tagsTarget(float: TaggerModel, out: string): Promise<string | undefined> {
  if (!float.tagsFile) return undefined;
  const dest = path.join(path.dirname(out), path.basename(float.tagsFile));
  if (!existsSync(dest)) return dest;
  if ((await real(dest)) === (await real(float.tagsFile))) return undefined; // --out beside the float model
  const there = await readFile(dest).catch(() => undefined);
  if (!sameTags(there, dest, float.meta.tags))
    throw new UsageError(
      `Expected the folder of --out to hold this model's tags or none, but ${JSON.stringify(dest)} holds other tags (the int8 model would be read with them); choose another folder for --out`,
    );
  return undefined;
}
