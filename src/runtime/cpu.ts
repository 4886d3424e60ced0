// Which int8 instructions this CPU has, from the flags Linux lists in /proc/cpuinfo. ONNX Runtime's
// integer kernels (MLAS) pick their path by them: VNNI (AVX-512 VNNI or AVX-VNNI) multiplies uint8 by
// int8 into int32 in one instruction; AMX (amx_int8) does it on tiles; with AVX2 alone the products go
// through 16-bit sums, which is why int8 weights here use 7 bits (training/int8.ts) and why an int8
// model gains much less over float32 there. `doctor` prints the line; the benches record it.
import { existsSync, readFileSync } from 'node:fs';

/** The /proc/cpuinfo flags that matter for int8, in the order they are reported. */
export const INT8_FLAGS = ['amx_int8', 'avx512_vnni', 'avx_vnni', 'avx512bw', 'avx2'] as const;

export interface Int8Support {
  /** The INT8_FLAGS this CPU lists; undefined where the flags cannot be read (not Linux). */
  flags?: string[];
  vnni: boolean;
  amx: boolean;
}

/** The int8 support in `cpuinfo` (the text of /proc/cpuinfo; the first processor's flags line). */
export function int8Support(cpuinfo: string | undefined): Int8Support {
  const line = cpuinfo === undefined ? undefined : /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1];
  if (line === undefined) return { vnni: false, amx: false };
  const have = new Set(line.trim().split(/\s+/));
  const flags = INT8_FLAGS.filter((f) => have.has(f));
  return {
    flags,
    vnni: have.has('avx512_vnni') || have.has('avx_vnni'),
    amx: have.has('amx_int8'),
  };
}

/** This machine's int8 support. */
export const hostInt8Support = (): Int8Support => int8Support(readCpuinfo());

function readCpuinfo(): string | undefined {
  try {
    return existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** One line for `doctor`: what the CPU has and what it means for int8 models (quantize, export --int8). */
export function int8Line(s: Int8Support = hostInt8Support()): string {
  if (!s.flags) return 'int8 instructions: unknown (no /proc/cpuinfo flags to read here)';
  const names = s.flags.length ? s.flags.join(' ') : 'none of AVX2, AVX-512, VNNI, AMX';
  if (s.amx || s.vnni)
    return `int8 instructions: ${names}: int8 models (quantize, export --int8) run ONNX Runtime's ${s.amx ? 'AMX' : 'VNNI'} kernels`;
  return `int8 instructions: ${names}: no VNNI or AMX, so int8 models (quantize, export --int8) gain less over float32 here (docs/COMMANDS.md, "Quantizing a tagger")`;
}
