// Benchmark plumbing: medians of alternating runs, machine facts, result files in bench/results/.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function machine(): Record<string, unknown> {
  return { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function hasPython(modules: string[]): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', modules.map((m) => `import ${m}`).join(';')], { stdio: 'ignore' });
  return r.status === 0;
}

export async function saveResult(name: string, result: Record<string, unknown>): Promise<string> {
  const dir = path.resolve('bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, `${JSON.stringify({ name, date: new Date().toISOString(), machine: machine(), ...result }, null, 1)}\n`);
  return file;
}

/** Peak RSS in MiB of a child command, from GNU time. */
export function runWithPeakRss(cmd: string, args: string[]): { peakMiB: number; seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'PEAK_RSS_KB %M', cmd, ...args], { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const m = /PEAK_RSS_KB (\d+)/.exec(r.stderr);
  return { peakMiB: m ? Number(m[1]) / 1024 : NaN, seconds, stdout: r.stdout };
}
