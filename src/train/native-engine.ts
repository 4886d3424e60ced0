// NativeEngine: loads the native trainer addon (native/, built by `npm run build:native`), whose engine
// class implements TrainEngine. Tries each place the binary can be and, if none loads, throws one
// message listing what it tried and what to run. The native surface is declared here, once.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainEngine } from './engine.js';

/** The addon's exports: its engine class is a TrainEngine (native/native_engine.cc). */
export interface NativeAddon {
  NativeEngine: new () => TrainEngine;
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
