// Caption files beside the images, written so that no image and no other caption is ever destroyed:
// an extension the scanner reads as an image is refused; two images whose captions would share a name
// (x.jpg, x.png → x.txt) each get their own (x.jpg.txt, the form the tag reader also takes); an existing
// caption is read as tag files are (UTF-8, or UTF-16 with its BOM; other bytes refuse it), and written
// back in its encoding and with its permissions; nothing is written through a symlink.
import { lstat, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { decodeText, encodeText, IMAGE_EXTENSIONS, TagFileError, type TextEncoding } from '../data/scan.js';
import { UsageError } from '../util/errors.js';
import { fsReason, writeFileAtomic } from '../util/fsx.js';

/** Check a caption extension: `.txt`-like, no path separator, and never one the scanner reads as an image. */
export function checkCaptionExt(ext: string, flag = '--caption-ext'): string {
  if (!/^\.[\w.-]+$/.test(ext) || ext.includes('..'))
    throw new UsageError(`Expected an extension like .txt for ${flag} but received ${JSON.stringify(ext)}`);
  const last = path.extname(`x${ext}`).toLowerCase();
  if (IMAGE_EXTENSIONS.includes(last))
    throw new UsageError(
      `Expected a text extension for ${flag} but received ${JSON.stringify(ext)}, an image extension: captions would replace images`,
    );
  return ext;
}

/**
 * The caption file of each image: NAME + ext beside it, or, where two images of one folder would share
 * it (x.jpg and x.png), NAME.EXT + ext for each of them, with one warning per shared name.
 */
export function captionTargets(
  images: readonly string[],
  ext: string,
  warn: (line: string) => void,
): Map<string, string> {
  const byTarget = new Map<string, string[]>();
  for (const image of images) {
    const target = image.replace(/\.[^./\\]+$/, '') + ext;
    byTarget.set(target, [...(byTarget.get(target) ?? []), image]);
  }
  const out = new Map<string, string>();
  for (const [target, list] of byTarget) {
    const unique = [...new Set(list)];
    if (unique.length === 1) out.set(unique[0]!, target);
    else {
      for (const image of unique) out.set(image, image + ext);
      warn(
        `warning: ${unique.join(' and ')} would share the caption ${target}; each gets its own (${unique.map((i) => path.basename(i) + ext).join(', ')})`,
      );
    }
  }
  return out;
}

/**
 * Refuse captions that would land outside the folder they were found under: an image reached through a
 * folder link gets its caption beside it, in the link's target. `entries` name their folder argument
 * (`root`); an image given as a file is captioned beside it wherever it is.
 */
export async function checkCaptionsInside(
  entries: readonly { file: string; root?: string }[],
  targets: ReadonlyMap<string, string>,
): Promise<void> {
  const real = new Map<string, Promise<string>>();
  const realOf = (dir: string): Promise<string> => {
    if (!real.has(dir))
      real.set(
        dir,
        realpath(dir).catch(() => path.resolve(dir)),
      );
    return real.get(dir)!;
  };
  for (const e of entries) {
    const target = targets.get(e.file);
    if (!e.root || !target) continue;
    const [root, dir] = await Promise.all([realOf(e.root), realOf(path.dirname(target))]);
    if (dir !== root && !dir.startsWith(root + path.sep))
      throw new UsageError(
        `Expected every caption inside the folder given, but the caption of ${JSON.stringify(e.file)} would be written in ${JSON.stringify(dir)}, outside ${JSON.stringify(e.root)} (a folder link leads there); nothing was written: give that folder itself to caption it`,
      );
  }
}

export type CaptionOutcome = 'written' | 'kept' | 'empty' | 'failed';

/**
 * Write a caption file: never through a symlink (refused), an existing caption kept unless
 * `overwrite` (or merged, when `merge` builds the new text from the old), an empty caption never
 * replacing one unless `allowEmpty`. `text` gives the whole file, final newline included where the
 * style writes one. An existing file keeps its encoding and its mode.
 */
export async function saveCaption(
  target: string,
  text: (existing?: string) => string,
  o: { overwrite: boolean; merge: boolean; allowEmpty: boolean },
): Promise<{ outcome: CaptionOutcome; note?: string }> {
  const info = await lstat(target).catch(() => null);
  if (info?.isSymbolicLink()) return { outcome: 'failed', note: `${target} is a symbolic link; not written through` };
  if (info && !info.isFile()) return { outcome: 'failed', note: `${target} is not a regular file; not written` };
  if (info && !o.overwrite && !o.merge)
    return {
      outcome: 'kept',
      note: `${target} exists, not overwritten (use --overwrite), or merge with --append or --prepend`,
    };
  let existing: { text: string; encoding: TextEncoding } | undefined;
  if (info) {
    try {
      existing = decodeText(await readFile(target));
    } catch (err) {
      const why = err instanceof TagFileError ? err.message : `cannot be read (${fsReason(err)})`;
      return { outcome: 'failed', note: `${target} ${why}; left as it is` };
    }
  }
  const body = text(o.merge ? existing?.text : undefined);
  if (body.trim() === '' && info && !o.allowEmpty)
    return {
      outcome: 'kept',
      note: `${target}: no tags for it, the existing caption was kept (use --allow-empty to empty it)`,
    };
  await writeFileAtomic(target, encodeText(body, existing?.encoding ?? 'utf-8'), info ? info.mode & 0o7777 : undefined);
  return { outcome: body.trim() === '' ? 'empty' : 'written' };
}
