// Benchmark plumbing: medians of alternating runs, machine facts, result files in bench/results/.
import { hostInt8Support } from '../src/runtime/cpu.js';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { sessionThreads } from '../src/runtime/threads.js';
import type { TrainOptions } from '../src/train/run.js';

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
    while (
      !existsSync(path.join(dir, 'package.json')) ||
      JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== pkg
    )
      dir = path.dirname(dir);
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  };
  return {
    cpu: os.cpus()[0]?.model,
    cores: os.availableParallelism(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    versions: { node: process.version, onnxruntime: version('onnxruntime-node'), sharp: version('sharp') },
  };
}

const measured = new Map<string, number>();

/**
 * GFLOP/s of one fp32 kernel through ONNX Runtime on all cores (the count `pred` and training use):
 * `sgemm`, a 2048² MatMul; `conv`, VGG16's conv3 layer (3×3, 256 → 256 channels, 56², batch 8) with
 * constant weights, which ONNX Runtime runs on its blocked NCHWc kernels.
 */
export async function ortGflops(kernel: 'sgemm' | 'conv'): Promise<number> {
  const known = measured.get(kernel);
  if (known) return known;
  const ort = (await import('onnxruntime-node')).default;
  const { Graph, A } = await import('../src/onnx/graph.js');
  const g = new Graph(kernel);
  const fill = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 70);
  let feeds: Record<string, InstanceType<typeof ort.Tensor>>;
  let flop: number;
  if (kernel === 'sgemm') {
    g.output(
      g.op('MatMul', [g.input('a', 'float32', [2048, 2048]), g.input('b', 'float32', [2048, 2048])]),
      'c',
      'float32',
      [2048, 2048],
    );
    const a = new ort.Tensor('float32', fill(2048 * 2048), [2048, 2048]);
    feeds = { a, b: a };
    flop = 2 * 2048 ** 3;
  } else {
    const w = g.initializer('w', 'float32', [256, 256, 3, 3], fill(256 * 256 * 9));
    const y = g.op('Conv', [g.input('x', 'float32', [8, 256, 56, 56]), w], {
      kernel_shape: A.ints([3, 3]),
      pads: A.ints([1, 1, 1, 1]),
    });
    g.output(y, 'y', 'float32', [8, 256, 56, 56]);
    feeds = { x: new ort.Tensor('float32', fill(8 * 256 * 56 * 56), [8, 256, 56, 56]) };
    flop = 2 * 8 * 56 * 56 * 256 * 256 * 9;
  }
  const s = await ort.InferenceSession.create(g.encode(), {
    intraOpNumThreads: sessionThreads(),
    graphOptimizationLevel: 'all',
  });
  await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await s.run(feeds);
    times.push((performance.now() - t) / 1000);
  }
  await s.release();
  measured.set(kernel, flop / median(times) / 1e9);
  return measured.get(kernel)!;
}

/**
 * glibc told to keep freed memory for reuse, for the PyTorch reference: its allocator hands large
 * blocks back on free, and on this project's VM touching fresh memory costs so much that PyTorch's
 * step ran at 0.81 img/s instead of 3.95 (full model, batch 8). ONNX Runtime keeps its arena anyway.
 */
export const KEEP_MEMORY = { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 36) };

export function hasPython(modules: string[]): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', modules.map((m) => `import ${m}`).join(';')], { stdio: 'ignore' });
  return r.status === 0;
}

/** numpy's float32 2048² matmul GFLOP/s (the reference Python's BLAS), or undefined without numpy. */
export function numpySgemmGflops(): number | undefined {
  const code =
    'import numpy as np,time\na=np.random.rand(2048,2048).astype(np.float32)\na@a\nt=[]\nfor i in range(5):\n s=time.perf_counter();a@a;t.append(time.perf_counter()-s)\nprint(2*2048**3/sorted(t)[2]/1e9)';
  const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

/**
 * The CPU's fp32 FMA peak at its nominal clock: cores × GHz × FLOP/cycle, FLOP/cycle from the vector
 * width and FMA units (2 × 16 lanes × 2 with AVX-512 on Zen 5 and server Intel, 32 with AVX2 or on
 * Zen 4's double-pumped AVX-512). Undefined where /proc/cpuinfo does not tell.
 */
export function fmaPeak(): { gflops: number; ghz: number; perCycle: number; note: string } | undefined {
  if (!existsSync('/proc/cpuinfo')) return undefined;
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1]);
  const flags = /^flags\s*:(.*)$/m.exec(info)?.[1]?.split(/\s+/) ?? [];
  const family = Number(/^cpu family\s*:\s*(\d+)/m.exec(info)?.[1]);
  const amd = /AuthenticAMD/.test(info);
  if (!(mhz > 0) || !flags.includes('fma')) return undefined;
  const avx512 = flags.includes('avx512f') && !(amd && family < 26);
  const perCycle = avx512 ? 64 : flags.includes('avx2') || flags.includes('avx512f') ? 32 : 16;
  const ghz = mhz / 1000;
  const unit = avx512
    ? 'AVX-512 FMA, 2 units'
    : flags.includes('avx512f')
      ? 'AVX-512 on 256-bit FMA units, 2'
      : 'AVX2 FMA, 2 units';
  const note = `${os.availableParallelism()} cores × ${ghz.toFixed(2)} GHz × ${perCycle} FLOP/cycle (${unit})`;
  return { gflops: os.availableParallelism() * ghz * perCycle, ghz, perCycle, note };
}

export interface Limit {
  gflops: number;
  what: string;
  ortSgemm: number;
  ortConv: number;
  numpySgemm?: number;
  fma?: number;
  fmaNote?: string;
}

let limit: Limit | undefined;

/**
 * The machine's fp32 limit: the best of ORT's sgemm and conv kernels, numpy's sgemm (when installed)
 * and the FMA peak at the nominal clock (a VM reports only that; its cores may run faster).
 */
export async function machineLimit(): Promise<Limit> {
  if (limit) return limit;
  const ortSgemm = await ortGflops('sgemm');
  const ortConv = await ortGflops('conv');
  const numpySgemm = numpySgemmGflops();
  const fma = fmaPeak();
  const options: [number | undefined, string][] = [
    [ortSgemm, 'ORT sgemm'],
    [ortConv, 'ORT conv'],
    [numpySgemm, 'numpy sgemm'],
    [fma?.gflops, 'FMA peak'],
  ];
  const [gflops, what] = options
    .filter((o): o is [number, string] => o[0] !== undefined)
    .sort((a, b) => b[0] - a[0])[0]!;
  limit = { gflops, what, ortSgemm, ortConv, numpySgemm, fma: fma?.gflops, fmaNote: fma?.note };
  console.error(
    `limit: ${gflops.toFixed(0)} GFLOP/s (${what}); ORT sgemm ${ortSgemm.toFixed(0)}, ORT conv ${ortConv.toFixed(0)}, numpy sgemm ${numpySgemm?.toFixed(0) ?? 'not installed'}, FMA peak ${fma ? `${fma.gflops.toFixed(0)} = ${fma.note}` : 'unknown'}`,
  );
  return limit;
}

/** "NN% of L GFLOP/s (what)" for a rate in img/s at `flopPerImage`. */
export const ofLimit = (imgPerS: number, flopPerImage: number, l: Limit): string =>
  `${((100 * imgPerS * flopPerImage) / 1e9 / l.gflops).toFixed(0)}% of ${l.gflops.toFixed(0)} GFLOP/s (${l.what}); ${((imgPerS * flopPerImage) / 1e9).toFixed(0)} GFLOP/s`;

/** The CPU's integer dot-product features, for int8 rows. */
/** The CPU's int8 flags (src/runtime/cpu.ts), for result files. */
export function intFeatures(): string {
  const s = hostInt8Support();
  return s.flags?.length ? s.flags.join(' ') : 'unknown';
}

export async function saveResult(name: string, result: Record<string, unknown>): Promise<string> {
  // bench/gpu.sh names its output folder here (its --dry-run a temporary one, never the results kept in git).
  const dir = path.resolve(process.env.ALT_I2V_BENCH_RESULTS || path.join('bench', 'results'));
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ name, date: new Date().toISOString(), machine: machine(), ...result }, null, 1)}\n`,
  );
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

/** `train`'s options as the benches run it: the full VGG16 with the seed's head, on the CPU, from seed 1. */
export function benchTrainOptions(shards: string, out: string, rounds: number, batch: number): TrainOptions {
  return {
    shards,
    out,
    backbone: 'vgg16',
    rounds,
    batch,
    lr: 0.001,
    device: 'cpu',
    seed: 1,
    resume: false,
    hidden: 5000,
    keep: 1,
    logEvery: 1,
    threads: 0,
  };
}
