// One writer per folder under many simultaneous starts (issue: trust, round four, 3): twelve processes
// take the same folder's lock at once — on a free folder, and on one whose lock a dead process left —
// and exactly one holds it each time; every other is refused naming the holder.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LOCK_NAME, lockFolder } from '../../src/util/lock.js';
import { fault, root } from './harness.js';

const LOCK_JS = pathToFileURL(path.resolve('dist/src/util/lock.js')).href;
const WRITERS = 12;

/** One process taking `dir`'s lock at `at` (epoch ms), holding it 1 s: prints held or the refusal. */
function writer(dir: string, at: number): Promise<string> {
  const script = `
    const { lockFolder } = await import(${JSON.stringify(LOCK_JS)});
    await new Promise((r) => setTimeout(r, Math.max(0, ${at} - Date.now())));
    try {
      const lock = await lockFolder(${JSON.stringify(dir)}, 'writer ' + process.pid, (l) => console.error(l));
      console.log('held');
      await new Promise((r) => setTimeout(r, 1000));
      await lock.release();
    } catch (e) { console.log('refused: ' + e.message); }`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', () => resolve(out.trim()));
  });
}

async function race(dir: string): Promise<string[]> {
  const at = Date.now() + 700; // every process started and waiting before the moment comes
  return Promise.all(Array.from({ length: WRITERS }, () => writer(dir, at)));
}

export function registerLocks(): void {
  fault(
    `${WRITERS} writers starting at once on one folder: exactly one holds the lock, the others are refused naming it`,
    async () => {
      for (let round = 0; round < 2; round++) {
        const dir = path.join(root, `lock-race-${round}`);
        await mkdir(dir);
        const got = await race(dir);
        assert.equal(got.filter((g) => g === 'held').length, 1, got.join('\n'));
        for (const g of got.filter((x) => x !== 'held'))
          assert.match(g, /^refused: Expected no other writer in ".*" but writer \d+ \(pid \d+ on .*\) holds/);
      }
    },
  );

  fault(
    `a lock left by a dead process, ${WRITERS} writers at once: one takes it over, the others are refused`,
    async () => {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      for (let round = 0; round < 2; round++) {
        const dir = path.join(root, `lock-stale-${round}`);
        await mkdir(dir);
        const holder = { pid: dead, host: os.hostname(), started: '2026-01-01T00:00:00.000Z', command: 'train (gone)' };
        await writeFile(path.join(dir, LOCK_NAME), `${JSON.stringify(holder)}\n`);
        const got = await race(dir);
        assert.equal(got.filter((g) => g === 'held').length, 1, got.join('\n'));
      }
    },
  );

  fault(
    'the temp files of a writer killed while taking the lock are removed by the next writer; a live one’s stay',
    async () => {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      const dir = path.join(root, 'lock-temps');
      await mkdir(dir);
      const left = [`${LOCK_NAME}.${dead}.0a1b2c3d.tmp`, `${LOCK_NAME}.takeover.${dead}.0a1b2c3e.tmp`];
      const live = `${LOCK_NAME}.${process.pid}.0a1b2c3f.tmp`;
      for (const f of [...left, live]) await writeFile(path.join(dir, f), '{}\n');
      const lock = await lockFolder(dir, 'test', () => undefined);
      await lock.release();
      assert.deepEqual(await readdir(dir), [live]);
    },
  );
}
