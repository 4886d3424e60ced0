// `pred --out FILE` for the row formats (JSONL, CSV): rows appended one write each, so a kill leaves
// whole rows only (a torn last row, from a full disk or a crash mid-write, is cut off on the next open,
// with a warning); `--skip-done` reads the rows already there and continues the file; one writer per
// file (a lock beside it); never through a symbolic link.
import { createReadStream } from 'node:fs';
import { lstat, open, truncate, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse/sync';
import { UsageError } from '../util/errors.js';
import { checkOutputFile, fsReason } from '../util/fsx.js';
import { lockFile } from '../util/lock.js';

export interface RowFile {
  /** The images whose rows the file already held when it was opened. */
  readonly done: ReadonlySet<string>;
  write(line: string): Promise<void>;
  close(): Promise<void>;
}

/** The byte length of `file` up to and including its last newline (a torn last row is what follows). */
async function wholeRowsLength(file: string, size: number): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    for (let end = size; end > 0;) {
      const start = Math.max(0, end - chunk.length);
      const { bytesRead } = await fh.read(chunk, 0, end - start, start);
      const nl = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (nl >= 0) return start + nl + 1;
      end = start;
    }
    return 0;
  } finally {
    await fh.close();
  }
}

/**
 * The `file` key of each row already in `file` (JSONL objects, or CSV rows under `header`), and where the
 * rows of the last image begin: a CSV image is several rows, all of one write, which a kill can end
 * part-way at a page boundary, leaving whole rows of a partly written image.
 */
async function rowsDone(
  file: string,
  format: 'jsonl' | 'csv',
  header: string | undefined,
): Promise<{ done: Set<string>; last?: { key: string; start: number }; end: number }> {
  const done = new Set<string>();
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  let offset = 0;
  let last: { key: string; start: number } | undefined;
  for await (const line of lines) {
    n++;
    const start = offset;
    offset += Buffer.byteLength(line) + 1;
    const bad = (what: string): never => {
      throw new UsageError(
        `Expected ${what} on line ${n} of ${JSON.stringify(file)} (--out, continued by --skip-done) but it holds ${JSON.stringify(line.slice(0, 80))}`,
      );
    };
    if (format === 'csv' && n === 1) {
      if (line !== header) bad(`pred's CSV header ${JSON.stringify(header)}`);
      continue;
    }
    let key: unknown;
    try {
      key = format === 'jsonl' ? (JSON.parse(line) as { file?: unknown }).file : (parse(line) as string[][])[0]?.[0];
    } catch {
      bad(`a ${format === 'jsonl' ? 'JSON object' : 'CSV row'} of pred's`);
    }
    if (typeof key !== 'string' || key === '') bad('a row naming its image file first');
    if (last?.key !== key) last = { key: key as string, start };
    done.add(key as string);
  }
  return { done, last, end: offset };
}

/**
 * Open `file` for rows of `format` (CSV: `header` first in a new file). An existing non-empty file is
 * continued only with `resume` (--skip-done), its rows read into `done`; otherwise refused.
 */
export async function openRowFile(
  file: string,
  format: 'jsonl' | 'csv',
  o: { header?: string; resume: boolean; warn: (line: string) => void },
): Promise<RowFile> {
  await checkOutputFile(file, '--out');
  const info = await lstat(file).catch(() => undefined);
  if (info?.isSymbolicLink())
    throw new UsageError(
      `Expected a file for --out but ${JSON.stringify(file)} is a symbolic link: nothing is written through one`,
    );
  if (info && !info.isFile())
    throw new UsageError(`Expected a file for --out but ${JSON.stringify(file)} is a folder or not a regular file`);
  const size = info?.size ?? 0;
  if (size > 0 && !o.resume)
    throw new UsageError(
      `Expected a new file for --out but ${JSON.stringify(file)} holds ${size} bytes: --skip-done continues it, or remove it`,
    );
  const lock = await lockFile(file, `alt-i2v-ort pred (pid ${process.pid})`, o.warn);
  let fh: FileHandle | undefined;
  try {
    let done = new Set<string>();
    if (size > 0) {
      const whole = await wholeRowsLength(file, size);
      if (whole < size) {
        await truncate(file, whole);
        o.warn(
          `warning: ${file}: its last row was cut off (${size - whole} bytes, a run stopped mid-write): dropped; that image is tagged again`,
        );
      }
      const read = await rowsDone(file, format, o.header);
      if (read.end !== whole)
        throw new UsageError(
          `Expected pred's rows, each ending in a line feed, in ${JSON.stringify(file)} (--out) but its line endings are others (edited elsewhere?): continue a copy written by pred`,
        );
      done = read.done;
      // CSV: the last image's rows are cut and it is tagged again, whole (it may have been cut short).
      if (format === 'csv' && read.last) {
        await truncate(file, read.last.start);
        done.delete(read.last.key);
      }
    }
    fh = await open(file, 'a');
    const handle = fh;
    const write = async (line: string): Promise<void> => {
      const bytes = Buffer.from(`${line}\n`);
      const { bytesWritten } = await handle.write(bytes).catch((err: unknown) => {
        throw new UsageError(`Expected to write a row to ${JSON.stringify(file)} but it fails (${fsReason(err)})`);
      });
      if (bytesWritten !== bytes.length)
        throw new UsageError(
          `Expected to write a row to ${JSON.stringify(file)} but only ${bytesWritten} of ${bytes.length} bytes went`,
        );
    };
    if (o.header && (await handle.stat()).size === 0) await write(o.header);
    return {
      done,
      write,
      close: async () => {
        try {
          await handle.sync();
          await handle.close();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await lock.release();
    throw err;
  }
}
