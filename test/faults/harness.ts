// The fault suite's harness: each case is a test that counts as "holding" once every assertion passed;
// the last test prints `faults: N cases, N hold`. Fixtures are one small synth dataset, its tags and
// shards, made once; the CLI runs in a child process (kill -9 needs one) or in process.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { tinyDataset } from '../helpers.js';

let cases = 0;
let held = 0;

/** Register one fault case. */
export function fault(name: string, fn: () => Promise<void>): void {
  cases++;
  test(name, async () => {
    await fn();
    held++;
  });
}

/** The closing line of the suite (register it after every case). */
export function summary(): void {
  test('fault suite summary', (t) => {
    t.diagnostic(`faults: ${cases} cases, ${held} hold`);
    console.log(`faults: ${cases} cases, ${held} hold`);
    assert.equal(held, cases);
  });
}

export const root = await mkdtemp(path.join(os.tmpdir(), 'alt-i2v-faults-'));
after(() => rm(root, { recursive: true, force: true }));
export const data = path.join(root, 'data');
export const tagsCsv = path.join(root, 'tags.csv');
export const shards = path.join(root, 'shards');
await tinyDataset(root, { count: 150, seed: 9, minCount: 3, holdout: 0.15 });

export const trainArgs = (out: string, rounds = 2, extra: string[] = []): string[] => [
  'train',
  shards,
  '--out',
  out,
  '--backbone',
  'vgg16-tiny',
  '--hidden',
  '16',
  '--batch',
  '8',
  '--rounds',
  String(rounds),
  '--log-every',
  '1',
  ...extra,
];

const MAIN = path.resolve('dist/src/cli/main.js');

/** Run the CLI in a child process; the last stderr line is the one-line error, if any. */
export function run(
  args: string[],
  env: Record<string, string> = {},
): { code: number | null; out: string; err: string; last: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  const lines = r.stderr.trim().split('\n');
  return { code: r.status, out: r.stdout, err: r.stderr, last: lines.at(-1) ?? '' };
}

/** `run` without blocking this process (for a server the child talks to that runs here). */
export function runAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string; err: string; last: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (err += b));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, out, err, last: err.trim().split('\n').at(-1) ?? '' })),
  );
}

/** Start the CLI and SIGKILL it after `ms` (or let it finish first); resolves when it is gone. */
export function killAfter(args: string[], ms: number): Promise<{ killed: boolean }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: 'ignore' });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL' });
    });
  });
}

/** Every file under `dir` (relative path → bytes), for byte-for-byte comparisons. */
export async function snapshot(
  dir: string,
  skip: (name: string) => boolean = () => false,
): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const rel = path.relative(dir, path.join(e.parentPath, e.name));
    if (!skip(rel)) out.set(rel, await readFile(path.join(dir, rel)));
  }
  return out;
}

export function assertSameFiles(a: Map<string, Buffer>, b: Map<string, Buffer>, what: string): void {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), `${what}: the same files`);
  for (const [k, v] of a) assert.ok(b.get(k)!.equals(v), `${what}: ${k} differs`);
}

/** A copy of a folder to damage without touching the original. */
export async function copyOf(src: string, name: string): Promise<string> {
  const dst = path.join(root, name);
  await cp(src, dst, { recursive: true });
  return dst;
}

export const isRoot = process.getuid?.() === 0;

/** A fresh tmpfs of `kib` KiB (root only), unmounted when the suite ends. */
export function tmpfs(dir: string, kib: number, readOnly = false): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k${readOnly ? ',ro' : ''}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `mount tmpfs: ${r.stderr}`);
  after(() => void spawnSync('umount', ['-l', dir]));
}

/** How disk-full is made: a small tmpfs as root (CI), an injected ENOSPC otherwise. */
export const DISK_FULL = isRoot ? 'tmpfs' : 'injected';

/** A one-line error: exactly one stderr line starting with the tool's name, naming `file`. */
export function assertOneLine(err: string, pattern: RegExp): void {
  const lines = err
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('alt-i2v-ort:'));
  assert.equal(lines.length, 1, `one error line, got:\n${err}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(
    lines[0]!,
    /\b(E[A-Z]{3,}|TypeError|RangeError|at .*:\d+:\d+)\b/,
    'no raw errno or JavaScript error text',
  );
}
