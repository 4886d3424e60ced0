// How many threads an ONNX Runtime session gets when the user asks for none (`--threads 0`): one per
// physical core this process may run on. ONNX Runtime's own default (intra-op threads 0) resolved to a
// single thread on this project's 2-core VM, so every
// session names its count (docs/ARCHITECTURE.md, "Threads").
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** What the count is made of, read from the system (injectable for tests). */
export interface CpuFacts {
  /** CPUs this process may run on (sched affinity): os.availableParallelism(). */
  usable: number;
  /** Online logical CPUs, and the physical cores they make (SMT siblings count once); undefined where unknown. */
  logical?: number;
  physical?: number;
  /** CPUs' worth of time a cgroup quota allows (cpu.max), where one is set. */
  quota?: number;
}

/** One thread per physical core this process may use, capped by a cgroup quota; at least 1. */
export function coreCount(facts: CpuFacts = readCpuFacts()): number {
  let n = facts.usable;
  // Affinity counts logical CPUs: scale by the machine's cores per logical CPU (2-way SMT → half).
  if (facts.logical && facts.physical && facts.physical < facts.logical)
    n = Math.round((n * facts.physical) / facts.logical);
  if (facts.quota !== undefined) n = Math.min(n, Math.ceil(facts.quota));
  return Math.max(1, n);
}

/** The thread count a session gets for a `threads` option: as given, or coreCount() for 0 or none. */
export function sessionThreads(threads?: number): number {
  return threads && threads > 0 ? threads : coreCount();
}

export function readCpuFacts(): CpuFacts {
  const facts: CpuFacts = { usable: os.availableParallelism() };
  const logical = os.cpus().length;
  const cores = new Set<string>();
  for (let i = 0; i < logical; i++) {
    const siblings = readText(`/sys/devices/system/cpu/cpu${i}/topology/thread_siblings_list`);
    if (siblings === undefined) return facts; // not Linux, or no topology: affinity alone
    cores.add(siblings);
  }
  if (logical > 0) Object.assign(facts, { logical, physical: cores.size });
  const max = readText('/sys/fs/cgroup/cpu.max')?.split(/\s+/);
  if (max && max[0] !== 'max' && Number(max[0]) > 0 && Number(max[1]) > 0)
    facts.quota = Number(max[0]) / Number(max[1]);
  return facts;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
