// One writer per output folder: `train`, `pairs` and `demo` hold FOLDER/.alt-i2v-ort.lock (pid, host,
// start time, command) while they write. A second writer is refused with the holder named; the lock of
// a process that no longer runs on this host is taken over with a warning.
import { constants } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
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

async function create(file: string, me: Holder): Promise<boolean> {
  try {
    const fh = await open(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    try {
      await fh.writeFile(`${JSON.stringify(me)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new UsageError(
      `Expected a writable folder but the lock ${JSON.stringify(file)} cannot be created (${fsReason(err)})`,
    );
  }
}

/** The lock in `file`, or the holder's description when a live process holds it. */
async function acquire(file: string, command: string, warn: (line: string) => void): Promise<FolderLock | string> {
  const me: Holder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await create(file, me)) {
      return {
        file,
        release: async () => {
          // Only our own lock: never one a later writer took over.
          const now = await readFile(file, 'utf8').catch(() => '');
          if (now.includes(`"pid":${me.pid},`) && now.includes(`"started":"${me.started}"`))
            await rm(file, { force: true });
        },
      };
    }
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(await readFile(file, 'utf8')) as Holder;
    } catch {
      holder = undefined; // torn or unreadable: a writer died while creating it
    }
    const stale = !holder || (holder.host === me.host && !alive(holder.pid));
    if (!stale) return `${holder!.command} (pid ${holder!.pid} on ${holder!.host}, since ${holder!.started})`;
    warn(
      `warning: ${file}: taking over the lock of ${holder ? `pid ${holder.pid} (${holder.command}, since ${holder.started}), which no longer runs` : 'a writer that died while taking it'}`,
    );
    await rm(file, { force: true });
  }
  throw new UsageError(
    `Expected to take the lock ${JSON.stringify(file)} but another writer took it at the same moment`,
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
