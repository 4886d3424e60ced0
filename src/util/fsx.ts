// Small file helpers: atomic writes (temp name, then rename) so no half-written file looks complete.
import { rename, rm, writeFile } from 'node:fs/promises';

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
