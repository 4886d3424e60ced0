// Benchmark plumbing: medians of alternating runs, machine facts, result files in bench/results/.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function machine(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  // Read each package's package.json from its resolved entry (sharp's exports hide ./package.json).
  const version = (pkg: string): string => {
    let dir = path.dirname(require.resolve(pkg));
    while (!existsSync(path.join(dir, 'package.json')) || JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== pkg) dir = path.dirname(dir);
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  };
  return {
    cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), memGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${process.platform}-${process.arch}`,
    versions: { node: process.version, onnxruntime: version('onnxruntime-node'), sharp: version('sharp') },
  };
}

let sgemm: number | undefined;

/** sgemm GFLOP/s of this machine through ONNX Runtime (MatMul 2048², all cores): the limit that FLOP-bound rows are a fraction of. */
export async function sgemmGflops(): Promise<number> {
  if (sgemm) return sgemm;
  const ort = (await import('onnxruntime-node')).default;
  const { Graph } = await import('../training/graph.js');
  const g = new Graph('sgemm');
  g.output(g.op('MatMul', [g.input('a', 'float32', [2048, 2048]), g.input('b', 'float32', [2048, 2048])]), 'c', 'float32', [2048, 2048]);
  const s = await ort.InferenceSession.create(g.encode());
  const a = new ort.Tensor('float32', Float32Array.from({ length: 2048 * 2048 }, (_, i) => (i % 7) / 7), [2048, 2048]);
  await s.run({ a, b: a });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await s.run({ a, b: a });
    times.push((performance.now() - t) / 1000);
  }
  await s.release();
  sgemm = (2 * 2048 ** 3) / median(times) / 1e9;
  return sgemm;
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
