// A model's weights moved to an external data file, for the tests of models with external data.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeModel, encodeModel } from '../../src/onnx/proto.js';

/**
 * `bytes` with every initializer of at least `min` bytes moved to `data` beside it, as onnx's
 * save_model(..., save_as_external_data=True) writes them (written here from the ONNX spec).
 */
export async function externalize(
  bytes: Uint8Array,
  folder: string,
  name: string,
  data: string,
  min = 100,
): Promise<void> {
  const m = decodeModel(bytes);
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const t of m.graph.initializer) {
    if (!t.raw_data || t.raw_data.length < min) continue;
    chunks.push(t.raw_data);
    t.external_data = [
      { key: 'location', value: data },
      { key: 'offset', value: String(at) },
      { key: 'length', value: String(t.raw_data.length) },
    ];
    t.data_location = 1;
    at += t.raw_data.length;
    delete t.raw_data;
  }
  await writeFile(path.join(folder, data), Buffer.concat(chunks));
  await writeFile(path.join(folder, name), encodeModel(m));
}
