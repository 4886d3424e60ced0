// Walks a dataset folder: images with their sibling tag files. Directories are read one
// at a time and visited in sorted order, so memory follows the largest directory, not the dataset.
import { opendir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../util/errors.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff'];

export interface DatasetEntry {
  /** Absolute path of the image, or of the lone tag file when `kind` is 'orphan-tags'. */
  file: string;
  /** Path relative to the dataset root, with '/' separators: the stable name of the item. */
  name: string;
  /** The sibling tag file, or null when the image has none. */
  tagFile: string | null;
  kind: 'image' | 'orphan-tags';
}

function isImage(file: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Check that DATASET is a readable directory; a usage error names it otherwise. */
export async function checkDatasetDir(dir: string, argName = 'DATASET'): Promise<string> {
  const abs = path.resolve(dir);
  let info;
  try {
    info = await stat(abs);
  } catch {
    throw new UsageError(`Expected an existing folder for ${argName} but ${JSON.stringify(dir)} does not exist`);
  }
  if (!info.isDirectory()) throw new UsageError(`Expected a folder for ${argName} but ${JSON.stringify(dir)} is not a directory`);
  return abs;
}

/**
 * Every image (recursively, sorted by path) with its tag file `NAME.txt` (or `NAME.ext.txt`),
 * then the tag files of each directory that belong to no image, as 'orphan-tags'.
 */
export async function* walkDataset(root: string): AsyncGenerator<DatasetEntry> {
  yield* walkDir(root, root);
}

async function* walkDir(root: string, dir: string): AsyncGenerator<DatasetEntry> {
  const files: string[] = [];
  const dirs: string[] = [];
  const handle = await opendir(dir);
  for await (const entry of handle) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) dirs.push(entry.name);
    else if (entry.isFile() || entry.isSymbolicLink()) files.push(entry.name);
  }
  files.sort(byCodePoint);
  dirs.sort(byCodePoint);
  const names = new Set(files);
  const claimed = new Set<string>();
  for (const file of files) {
    if (!isImage(file)) continue;
    const stem = file.slice(0, file.length - path.extname(file).length);
    let tagFile: string | null = null;
    for (const candidate of [`${stem}.txt`, `${file}.txt`]) {
      if (names.has(candidate)) {
        tagFile = candidate;
        break;
      }
    }
    if (tagFile) claimed.add(tagFile);
    const abs = path.join(dir, file);
    yield { file: abs, name: relName(root, abs), tagFile: tagFile ? path.join(dir, tagFile) : null, kind: 'image' };
  }
  for (const file of files) {
    if (path.extname(file).toLowerCase() === '.txt' && !claimed.has(file)) {
      const abs = path.join(dir, file);
      yield { file: abs, name: relName(root, abs), tagFile: abs, kind: 'orphan-tags' };
    }
  }
  for (const sub of dirs) yield* walkDir(root, path.join(dir, sub));
}

function relName(root: string, abs: string): string {
  return path.relative(root, abs).split(path.sep).join('/');
}

/**
 * Tags of one tag file: whitespace-separated booru tags (`1girl long_hair`), or comma-separated
 * captions (`1girl, long hair`) whose inner spaces become underscores. Empty items and repeats are dropped;
 * text is NFC-normalized so the same tag typed two ways counts once.
 */
export function parseTags(text: string): string[] {
  const clean = text.replace(/^\uFEFF/, '').normalize('NFC');
  const items = clean.includes(',')
    ? clean.split(',').map((t) => t.trim().replace(/\s+/g, '_'))
    : clean.split(/\s+/);
  const seen = new Set<string>();
  for (const item of items) if (item.length > 0) seen.add(item);
  return [...seen];
}

export async function readTagFile(file: string): Promise<string[]> {
  return parseTags(await readFile(file, 'utf8'));
}
