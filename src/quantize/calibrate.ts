// The calibration run of `quantize --mode static`: the model with the activations to quantize as extra
// outputs (static.ts), run on the user's images one at a time, decoded with the model's own contract
// exactly as `pred` decodes them; each activation's min and max over all of them.
import type ort from 'onnxruntime-node';
import type { TaggerModel } from '../model/tagger.js';
import { decodeBatches } from '../predict/inputs.js';
import type { ImageEntry } from '../predict/tagging.js';
import { foldRanges, type Ranges } from './static.js';

async function* files(entries: ImageEntry[]): AsyncGenerator<string> {
  for (const e of entries) yield e.file;
}

/**
 * Ranges of `tensors` over `entries` (unreadable images skipped), and how many images gave them; when
 * `goOn` answers false to the first image's outputs, it stops there (`stopped`).
 */
export async function calibrate(
  model: TaggerModel,
  entries: ImageEntry[],
  tensors: string[],
  goOn: (first: Record<string, ort.Tensor>) => boolean = () => true,
): Promise<{ ranges: Ranges; images: number; stopped: boolean }> {
  const ranges: Ranges = new Map();
  let images = 0;
  for await (const b of decodeBatches(files(entries), { ...model.preprocess, batch: 1 })) {
    if (b.files.length === 0) continue;
    const out = await model.runOutputs(b.images, 1);
    if (images === 0 && !goOn(out)) return { ranges, images: 1, stopped: true };
    foldRanges(ranges, out, tensors);
    images++;
  }
  return { ranges, images, stopped: false };
}
