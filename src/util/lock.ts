// One writer per output folder: `train`, `pairs` and `demo` hold FOLDER/.alt-i2v-ort.lock (pid, host,
// start time, command) while they write. The lock appears whole (hard-linked from a written temp file),
// so a second writer is refused with the holder named however close the starts; the lock of a process
// that no longer runs on this host is taken over with a warning, by one process at a time.
import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { link, open, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './errors.js';
import { fsReason } from './fsx.js';

export const LOCK_NAME = '.alt-i2v-ort.lock';

interface Holder {
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface FolderLock {
  readonly file: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Errors of a filesystem without hard links, where the lock falls back to an exclusive create. */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

function cannotCreate(file: string, err: unknown): UsageError {
  return new UsageError(
    `Expected a writable folder but the lock ${JSON.stringify(file)} cannot be created (${fsReason(err)})`,
  );
}

/** `text` in a new file `file` (exclusive, never through a link), fsynced. */
async function writeNew(file: string, text: string): Promise<void> {
  const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Create `file` holding `me`, atomically with its content: the holder is written and fsynced to a temp
 * file first, then hard-linked to `file`, which fails if a lock is there; so no process ever reads a lock
 * before its owner is in it. Where hard links are not offered, an exclusive create (content after).
 */
async function create(file: string, me: Holder): Promise<boolean> {
  const text = `${JSON.stringify(me)}\n`;
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeNew(tmp, text);
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return false;
    if (!NO_LINKS.has(code)) throw cannotCreate(file, err);
  } finally {
    await rm(tmp, { force: true });
  }
  try {
    await writeNew(file, text);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cannotCreate(file, err);
  }
}

/**
 * The temp files of `file` (and of its takeover lock) that a writer killed between writing and
 * linking them left behind: those whose pid no longer runs here, removed once the lock is ours.
 */
async function sweepTemps(file: string): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const temp = new RegExp(`^${base}(\\.takeover)?\\.(\\d+)\\.[0-9a-f]{8}\\.tmp$`);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = temp.exec(name);
    if (m && !alive(Number(m[2]))) await rm(path.join(dir, name), { force: true });
  }
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

const sameHolder = (a: Holder | undefined, b: Holder | undefined): boolean =>
  !!a && !!b && a.pid === b.pid && a.host === b.host && a.started === b.started;

/** A holder on this host whose process is gone (or, for a lock without one, a writer that died creating it). */
const gone = (h: Holder | undefined, me: Holder): boolean => !h || (h.host === me.host && !alive(h.pid));

/**
 * Remove the lock `file` of `stale` — only if it still holds `stale`, and only by one process at a time:
 * the one that creates FILE.takeover (a takeover lock of its own, itself taken over when its owner died).
 */
async function takeOver(
  file: string,
  stale: Holder | undefined,
  me: Holder,
  warn: (line: string) => void,
): Promise<void> {
  const takeover = `${file}.takeover`;
  if (!(await create(takeover, me))) {
    const other = await readHolder(takeover);
    if (gone(other, me) && other) await rm(takeover, { force: true });
    return;
  }
  try {
    const now = await readHolder(file);
    if (stale ? !sameHolder(now, stale) : now !== undefined) return;
    warn(
      `warning: ${file}: taking over the lock of ${stale ? `pid ${stale.pid} (${stale.command}, since ${stale.started}), which no longer runs` : 'a writer that died while taking it'}`,
    );
    await rm(file, { force: true });
  } finally {
    await rm(takeover, { force: true });
  }
}

/** The lock in `file`, or the holder's description when a live process holds it. */
async function acquire(file: string, command: string, warn: (line: string) => void): Promise<FolderLock | string> {
  const me: Holder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await create(file, me)) {
      await sweepTemps(file);
      return {
        file,
        release: async () => {
          // Only our own lock: never one a later writer took over.
          if (sameHolder(await readHolder(file), me)) await rm(file, { force: true });
        },
      };
    }
    const holder = await readHolder(file);
    if (!existsSync(file)) continue; // released between our try and our read: try again
    if (!gone(holder, me))
      return `${holder!.command} (pid ${holder!.pid} on ${holder!.host}, since ${holder!.started})`;
    await takeOver(file, holder, me, warn);
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
  }
  throw new UsageError(
    `Expected to take the lock ${JSON.stringify(file)} but other writers kept taking it at the same moment`,
  );
}

/** Take the folder's lock (the folder must exist); `warn` hears about a stale lock taken over. */
export async function lockFolder(dir: string, command: string, warn: (line: string) => void): Promise<FolderLock> {
  const got = await acquire(path.join(dir, LOCK_NAME), command, warn);
  if (typeof got !== 'string') return got;
  throw new UsageError(
    `Expected no other writer in ${JSON.stringify(dir)} but ${got} holds ${LOCK_NAME}; wait for it to finish, or delete the lock if that process is gone`,
  );
}

/** Take the lock of one output file (`.NAME.alt-i2v-ort.lock` beside it); a second writer is refused, naming the holder. */
export async function lockFile(target: string, command: string, warn: (line: string) => void): Promise<FolderLock> {
  const file = path.join(path.dirname(target), `.${path.basename(target)}${LOCK_NAME}`);
  const got = await acquire(file, command, warn);
  if (typeof got !== 'string') return got;
  throw new UsageError(
    `Expected no other writer of ${JSON.stringify(target)} but ${got} holds ${path.basename(file)}; wait for it to finish, or delete the lock if that process is gone`,
  );
}

/**
 * Take the lock in `file` (its folder must exist), waiting while a live process holds it: `waiting`
 * hears once who holds it. For work that a second process would only repeat (a download).
 */
export async function waitLockFile(
  file: string,
  command: string,
  warn: (line: string) => void,
  waiting: (holder: string) => void,
  pollMs = 200,
): Promise<FolderLock> {
  let told = false;
  for (;;) {
    const got = await acquire(file, command, warn);
    if (typeof got !== 'string') return got;
    if (!told) waiting(got);
    told = true;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
