// `train --backbone FILE`: pretrained VGG16 conv weights read from a file the user names. Decoding is
// training/backbone.ts; this side reads the file and reports problems as usage errors.
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';
import { BackboneError, importOnnxBackbone } from '../../training/backbone.js';
import type { ModelConfig } from '../../training/model.js';

export async function importBackbone(file: string, config: ModelConfig): Promise<Map<string, Float32Array>> {
  const bytes = await readInput(file, 'an ONNX VGG16 file for --backbone');
  try {
    return importOnnxBackbone(bytes, file, config);
  } catch (err) {
    throw err instanceof BackboneError ? new UsageError(err.message) : err;
  }
}
