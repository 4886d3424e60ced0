// File helpers every command shares. Writes: a unique temp name in the target's folder (exclusive
// create, never through a symlink), every byte written, fsynced, renamed, the folder fsynced, so a file
// under its final name is always complete. Reads of input files: one usage error naming the file and
// what is wrong in words, never errno text.
import { constants, type PathLike } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { messageOf, UsageError } from './errors.js';
import { parseJson } from './json.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of its path is not a folder',
  ELOOP: 'it is a symbolic link, which is not followed',
  EEXIST: 'it already exists',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** An fs error in words (no errno text), for "FILE cannot be read (<reason>)" messages. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  return (code && REASONS[code]) ?? (code ? `error ${code}` : messageOf(err));
}

/** Whether an error came from the file system (it has an errno code). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return (
    typeof (err as NodeJS.ErrnoException)?.code === 'string' &&
    typeof (err as NodeJS.ErrnoException)?.syscall === 'string'
  );
}

/** A failed write of `file`: one line naming it (exit 1; the user fixes the disk, not the command). */
export class WriteError extends Error {
  override name = 'WriteError';
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(`cannot write ${JSON.stringify(file)} (${fsReason(cause)})`);
  }
}

/**
 * Fault injection for the fault suite where no small disk can be mounted: ALT_I2V_FAULT_ENOSPC=TEXT
 * makes every write of a file whose name contains TEXT fail as a full disk would, after its bytes
 * went to the temp file.
 */
function injectedFault(file: string): void {
  const match = process.env.ALT_I2V_FAULT_ENOSPC;
  if (match && path.basename(file).includes(match))
    throw Object.assign(new Error('injected: no space left on device'), {
      code: 'ENOSPC',
      syscall: 'write',
      path: file,
    });
}

let tmpCounter = 0;

/** A unique temp name next to `file`, hidden, so no other writer and no glob of final names meets it. */
export function tempNameFor(file: string): string {
  const rand = Math.random().toString(36).slice(2, 8);
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${++tmpCounter}${rand}.tmp`);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Write `file` atomically: `fill` writes the content to a handle on a fresh temp file, which is then
 * fsynced and renamed over `file`, and the folder fsynced. Any failure removes the temp file and
 * throws a WriteError naming `file`; a previous `file` stays as it was.
 */
export async function writeAtomic(file: string, fill: (fh: FileHandle) => Promise<void>, mode = 0o644): Promise<void> {
  await commitTemp(await writeTemp(file, fill, mode), file);
}

/**
 * The second half of writeAtomic, for a temp file checked before it takes its place: `tmp` (from
 * writeTemp) renamed over `file` and the folder fsynced; any failure removes `tmp` and throws a
 * WriteError naming `file`.
 */
export async function commitTemp(tmp: string, file: string): Promise<void> {
  try {
    await rename(tmp, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw isFsError(err) ? new WriteError(file, err) : err;
  }
}

/**
 * The first half of writeAtomic: `fill` writes a fresh temp file next to `file` (exclusive create,
 * never through a link, exactly `mode`), which is fsynced and closed; resolves to its name. Any
 * failure removes it and throws a WriteError naming `file`.
 */
export async function writeTemp(file: string, fill: (fh: FileHandle) => Promise<void>, mode = 0o644): Promise<string> {
  const tmp = tempNameFor(file);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    if (mode !== 0o644) await fh.chmod(mode); // exactly `mode`, whatever the umask
    await fill(fh);
    injectedFault(file);
    await fh.sync();
    await fh.close();
    fh = undefined;
    return tmp;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err instanceof WriteError || !isFsError(err) ? err : new WriteError(file, err);
  }
}

/** Write every byte of `chunks` in order (writev in groups; short writes are continued). */
export async function writeAll(fh: FileHandle, chunks: readonly Uint8Array[]): Promise<void> {
  for (const c of chunks) {
    let off = 0;
    while (off < c.byteLength) {
      const { bytesWritten } = await fh.write(c, off, c.byteLength - off);
      if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO', syscall: 'write' });
      off += bytesWritten;
    }
  }
}

/**
 * Several files that belong together (an index and its description): every temp file is written and
 * fsynced before the first rename, so a failure while writing leaves all the old files as they were.
 * The renames follow in order; a reader tells a kill between two renames by a checksum one file keeps
 * of the other.
 */
export async function writeFilesAtomic(files: readonly [string, Uint8Array][]): Promise<void> {
  const temps: string[] = [];
  const removeTemps = (from: number): Promise<unknown> =>
    Promise.all(temps.slice(from).map((t) => rm(t, { force: true }).catch(() => undefined)));
  try {
    for (const [file, bytes] of files) temps.push(await writeTemp(file, (fh) => writeAll(fh, [bytes]), 0o644));
  } catch (err) {
    await removeTemps(0);
    throw err;
  }
  for (const [i, [file]] of files.entries()) {
    try {
      await rename(temps[i]!, file);
    } catch (err) {
      await removeTemps(i);
      throw new WriteError(file, err);
    }
  }
  for (const dir of new Set(files.map(([f]) => path.dirname(f)))) await fsyncDir(dir);
}

/** writeAtomic of one string (UTF-8) or byte array; `mode` keeps an existing file's permissions. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode?: number): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  await writeAtomic(file, (fh) => writeAll(fh, [bytes]), mode);
}

/**
 * Create folder `dir` (and its parents) for `flag`, or fail with one usage error saying why in words.
 * Node's recursive mkdir reports a read-only parent as "no such file": the first missing folder is
 * then made alone, which gives the real reason.
 */
export async function makeFolder(dir: string, flag: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    let reason = err;
    let missing = path.resolve(dir);
    while (!(await stat(path.dirname(missing)).catch(() => null)) && path.dirname(missing) !== missing)
      missing = path.dirname(missing);
    await mkdir(missing).catch((e: unknown) => (reason = e));
    throw new UsageError(
      `Expected a folder that can be created for ${flag} but ${JSON.stringify(dir)} cannot be (${fsReason(reason)})`,
    );
  }
}

/**
 * Check, before any work, that `file` can be written for `flag`: its folder exists and is a folder, and
 * the file is not a folder. (Whether the disk takes the bytes is known only when they are written.)
 */
export async function checkOutputFile(file: string, flag: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const folder = await stat(dir).catch((e: unknown) => e as Error);
  if (folder instanceof Error || !folder.isDirectory())
    throw new UsageError(
      `Expected a file in an existing folder for ${flag} but ${JSON.stringify(dir)} ${folder instanceof Error ? `cannot be used (${fsReason(folder)})` : 'is not a folder'}`,
    );
  if ((await stat(file).catch(() => null))?.isDirectory())
    throw new UsageError(`Expected a file for ${flag} but ${JSON.stringify(file)} is a folder`);
}

/** Read an input file, or fail with a usage error: `Expected WHAT but "FILE" cannot be read (no such file or folder)`. */
export async function readInput(file: PathLike, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`Expected ${what} but ${JSON.stringify(String(file))} cannot be read (${fsReason(err)})`);
  }
}

/** Read and parse a JSON input file; a file that does not parse is a usage error naming it. */
export async function readJsonInput<T>(file: string, what: string): Promise<T> {
  const text = (await readInput(file, what)).toString('utf8');
  try {
    return parseJson(text) as T;
  } catch (err) {
    const deep = messageOf(err).startsWith('it is nested') ? `: ${messageOf(err)}` : '';
    throw new UsageError(`Expected ${what} but ${JSON.stringify(file)} is not valid JSON${deep}`);
  }
}
