// Loads the native trainer addon (native/, built by `npm run build:native`). Tries each place the
// binary can be and, if none loads, throws one message listing what it tried and what to run.
// The native surface is declared here, once.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeSpec {
  name: string;
  role: 'trainable' | 'frozen' | 'state';
  shape: number[];
}

/** Graph names the engine binds (training/model.ts `io`), checked against the graphs at load. */
export interface NativeIoNames {
  image: string;
  labels: string;
  keep: string;
  loss: string;
  probs: string;
  lr: string;
  eps: string;
  copyIn: string;
  copyOut: string;
  gradPrefix: string;
  newPrefix: string;
  mPrefix: string;
  vPrefix: string;
}

/** fused: Adam inside the step graph; graph: a separate optimizer graph; in-place: one C++ pass over the state (native engine, CPU). */
export type AdamPlacement = 'fused' | 'graph' | 'in-place';

export interface NativeLoadOptions {
  trainModel: Uint8Array;
  optimizerModel?: Uint8Array;
  evalModel: Uint8Array;
  copyModel: Uint8Array;
  /** Where Adam runs: in the step graph, in its own graph (optimizerModel), or in place (native, CPU). */
  adam: AdamPlacement;
  /** [β1, 1−β1, β2, 1−β2] as the graphs' float32 constants hold them (for the in-place Adam). */
  adamConstants: number[];
  device: 'cpu' | 'cuda';
  deviceId: number;
  tf32: boolean;
  intraOpThreads: number;
  interOpThreads: number;
  imageSize: number;
  tags: number;
  hidden: number;
  hasKeep: boolean;
  /** Frozen tensors are initializers of the train and eval graphs, not inputs (still part of the state). */
  bakedFrozen?: boolean;
  io: NativeIoNames;
  specs: NativeSpec[];
}

export interface NativeTrainSession {
  readonly busy: boolean;
  /** Whether device state is held (false before load and after dispose). */
  readonly loaded: boolean;
  load(options: NativeLoadOptions, params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void>;
  setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void>;
  step(
    images: Uint8Array,
    labels: Uint8Array,
    keep: Uint8Array | null,
    n: number,
    lrT: number,
    epsT: number,
  ): Promise<number>;
  evaluate(images: Uint8Array, labels: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }>;
  getState(): Promise<{ params: Float32Array[]; m: Float32Array[]; v: Float32Array[] }>;
  dispose(): void;
}

export interface NativeAddon {
  TrainSession: new () => NativeTrainSession;
  ortApiVersion: number;
}

/** The package root (where package.json and build/ live), from this file in src/ or dist/src/. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'CMakeLists.txt'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('alt-i2v-ort: cannot find the package root (package.json next to CMakeLists.txt)');
    dir = up;
  }
  return dir;
}

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  // ALT_I2V_NATIVE=off behaves as if the addon were not built (to try or test the fallback engine).
  if (process.env.ALT_I2V_NATIVE === 'off')
    throw new Error('the native trainer addon is turned off by ALT_I2V_NATIVE=off');
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const file of [
    process.env.ALT_I2V_NATIVE || undefined,
    path.join(root, 'build', 'Release', 'alt_i2v_native.node'),
    path.join(root, 'build', 'Debug', 'alt_i2v_native.node'),
  ]) {
    if (!file) continue;
    if (!existsSync(file)) {
      tried.push(`${file}: not found`);
      continue;
    }
    try {
      cached = require(file) as NativeAddon;
      return cached;
    } catch (err) {
      tried.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `the native trainer addon could not be loaded (tried ${tried.join('; ')}); run \`npm run build:native\` in ${root}`,
  );
}

/** Whether the addon loads, and why not (the full message, and a short form for one-line notes). */
export function addonStatus(): { ok: true; file: string } | { ok: false; reason: string; missing: string } {
  try {
    loadAddon();
    return { ok: true, file: path.join(packageRoot(), 'build', 'Release', 'alt_i2v_native.node') };
  } catch (err) {
    const reason = (err as Error).message;
    const built = path.join(packageRoot(), 'build', 'Release', 'alt_i2v_native.node');
    const rel = path.relative(packageRoot(), built);
    const missing =
      process.env.ALT_I2V_NATIVE === 'off'
        ? 'turned off by ALT_I2V_NATIVE=off'
        : existsSync(built)
          ? `${rel} does not load`
          : `no ${rel}`;
    return { ok: false, reason, missing };
  }
}
