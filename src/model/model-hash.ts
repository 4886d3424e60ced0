// A model's SHA-256 over what it computes with: the .onnx file's bytes, then the bytes of each external
// data file it names (in the order first named). Shards of embeddings and a merged model record it, so
// that a head is never joined to another base than the one it was trained on.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readInput, fsReason } from '../util/fsx.js';
import { UsageError } from '../util/errors.js';
import { checkExternalData } from './external-data.js';

export async function modelSha256(file: string): Promise<string> {
  const bytes = await readInput(file, 'a model file');
  const hash = createHash('sha256').update(bytes);
  const external = await checkExternalData(bytes, file);
  for (const f of [...new Set(external.map((r) => r.file))]) {
    try {
      for await (const chunk of createReadStream(f)) hash.update(chunk as Buffer);
    } catch (err) {
      throw new UsageError(
        `Expected to read the external data file ${JSON.stringify(f)} of ${JSON.stringify(file)} but ${fsReason(err)}`,
      );
    }
  }
  return hash.digest('hex');
}
