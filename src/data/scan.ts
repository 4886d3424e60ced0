// Walks a dataset folder: images with their sibling tag files. Directories are read one
// at a time and visited in sorted order, so memory follows the largest directory, not the dataset.
import { opendir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { fsReason } from '../util/fsx.js';

/** Files the scanner treats as images (BMP too: it is reported as unsupported rather than passed over). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff', '.bmp'];

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
  if (!info.isDirectory())
    throw new UsageError(`Expected a folder for ${argName} but ${JSON.stringify(dir)} is not a directory`);
  return abs;
}

/**
 * Every image (recursively, sorted by path) with its tag file `NAME.txt` (or `NAME.ext.txt`),
 * then the tag files of each directory that belong to no image, as 'orphan-tags'. Symbolic links to
 * folders are followed like the top folder is; a folder reached twice (a link loop, two links to one
 * folder) is walked once.
 */
export async function* walkDataset(root: string, recursive = true): AsyncGenerator<DatasetEntry> {
  yield* walkDir(root, root, recursive ? new Set() : null);
}

/** `seen`: the folders walked so far, or null to stay in this one. */
async function* walkDir(root: string, dir: string, seen: Set<string> | null): AsyncGenerator<DatasetEntry> {
  const id = await stat(dir).then((s) => `${s.dev}:${s.ino}`);
  if (seen?.has(id)) return;
  seen?.add(id);
  const files: string[] = [];
  const dirs: string[] = [];
  const handle = await opendir(dir);
  for await (const entry of handle) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) dirs.push(entry.name);
    else if (entry.isSymbolicLink() && (await stat(path.join(dir, entry.name)).catch(() => null))?.isDirectory())
      dirs.push(entry.name);
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
  if (seen) for (const sub of dirs) yield* walkDir(root, path.join(dir, sub), seen);
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
  const items = clean.includes(',') ? clean.split(',').map((t) => t.trim().replace(/\s+/g, '_')) : clean.split(/\s+/);
  const seen = new Set<string>();
  for (const item of items) if (item.length > 0) seen.add(item);
  return [...seen];
}

/** Tags longer than this are refused (a runaway line, binary data). */
export const MAX_TAG_LENGTH = 200;

/** A tag file that cannot be used; the message says why in words. */
export class TagFileError extends Error {
  override name = 'TagFileError';
}

/** How a text file was encoded: UTF-8 (with or without a BOM) or UTF-16 with its BOM. */
export type TextEncoding = 'utf-8' | 'utf-8-bom' | 'utf-16le' | 'utf-16be';

/**
 * The text of a tag or caption file and its encoding: UTF-8 (BOM allowed), or UTF-16 with its BOM;
 * invalid bytes or control characters refuse it (TagFileError).
 */
export function decodeText(bytes: Uint8Array): { text: string; encoding: TextEncoding } {
  let text: string;
  let encoding: TextEncoding;
  try {
    if (bytes[0] === 0xff && bytes[1] === 0xfe) {
      encoding = 'utf-16le';
      text = new TextDecoder('utf-16le', { fatal: true }).decode(bytes.subarray(2));
    } else if (bytes[0] === 0xfe && bytes[1] === 0xff) {
      encoding = 'utf-16be';
      text = new TextDecoder('utf-16be', { fatal: true }).decode(bytes.subarray(2));
    } else {
      encoding = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 'utf-8-bom' : 'utf-8';
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // drops the BOM
    }
  } catch {
    throw new TagFileError('is not valid UTF-8 (or UTF-16 with a byte-order mark)');
  }
  // eslint-disable-next-line no-control-regex -- control characters are what this looks for
  const control = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.exec(text);
  if (control)
    throw new TagFileError(
      `holds a control character (U+${control[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}): binary data?`,
    );
  return { text, encoding };
}

/** `text` in `encoding`, with the byte-order mark the encoding had. */
export function encodeText(text: string, encoding: TextEncoding): Buffer {
  if (encoding === 'utf-8') return Buffer.from(text, 'utf8');
  if (encoding === 'utf-8-bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
  const le = Buffer.from(text, 'utf16le');
  if (encoding === 'utf-16be') for (let i = 0; i + 1 < le.length; i += 2) [le[i], le[i + 1]] = [le[i + 1]!, le[i]!];
  return Buffer.concat([Buffer.from(encoding === 'utf-16le' ? [0xff, 0xfe] : [0xfe, 0xff]), le]);
}

/** The text of a tag file (decodeText without the encoding). */
export function decodeTagText(bytes: Uint8Array): string {
  return decodeText(bytes).text;
}

/**
 * The tags of a tag file. Unreadable files, bad encodings and control characters throw TagFileError;
 * tags over MAX_TAG_LENGTH characters are left out, each reported to `onLongTag`.
 */
export async function readTagFile(file: string, onLongTag?: (tag: string) => void): Promise<string[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new TagFileError(`cannot be read (${fsReason(err)})`);
  }
  const tags = parseTags(decodeTagText(bytes));
  const long = tags.filter((t) => t.length > MAX_TAG_LENGTH);
  for (const t of long) onLongTag?.(t);
  return long.length ? tags.filter((t) => t.length <= MAX_TAG_LENGTH) : tags;
}
