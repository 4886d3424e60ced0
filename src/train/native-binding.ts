// The native trainer addon's raw binding (native/, built by `npm run build:native`): where the binary is
// loaded from (each place tried, one message listing them when none loads), and its surface declared
// once, as native/native_engine.cc defines it (DefineClass: the methods in NATIVE_METHODS, the accessors
// busy and loaded; test/structure/seam.test.ts checks the list against the C++). The TrainEngine that
// training uses is the adapter above it (native-engine.ts).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainEngine } from './engine.js';

/** The methods the C++ class defines. */
export const NATIVE_METHODS = ['load', 'step', 'evaluate', 'getState', 'setState', 'dispose'] as const;

/**
 * The C++ engine class as JavaScript sees it: the methods above and the busy/loaded accessors, each
 * taking and returning exactly what TrainEngine's does. It trusts the TypeScript side for the values
 * (TrainSession checks them once) and checks what memory safety needs: each options field's type and
 * dimensions (native/load_options.cc), array counts and sizes, one call at a time.
 */
export type NativeEngineBinding = Pick<TrainEngine, (typeof NATIVE_METHODS)[number] | 'busy' | 'loaded'>;

/** The addon's exports. */
export interface NativeAddon {
  NativeEngine: new () => NativeEngineBinding;
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
