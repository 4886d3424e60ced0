// The TypeScript ↔ C++ seam spelled once: the keys the native addon reads from NativeEngine.load()'s
// options (native/load_options.cc) are exactly those engineOptions() writes, and its graph names exactly
// ENGINE_IO's (src/train/engine.ts), so a field added on one side and not the other fails here, not at
// run time on a GPU.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ENGINE_IO, engineOptions } from '../../src/train/engine.js';
import { gradcheckConfig } from '../../training/gradcheck.js';
import { NATIVE_METHODS } from '../../src/train/native-binding.js';

const root = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'CMakeLists.txt'))) dir = path.dirname(dir);
  return dir;
})();

/** The body of C++ function `name` in `text` (from its signature to the closing brace at column 0). */
export function functionBody(text: string, name: string): string {
  const start = text.search(new RegExp(`^\\S.*\\b${name}\\(`, 'm'));
  assert.ok(start >= 0, `${name} not found`);
  return text.slice(start, text.indexOf('\n}\n', start));
}

/** The option keys a C++ body reads: o.Get("k"), and the XOf(o, "k") helpers. */
export const keysRead = (body: string): Set<string> =>
  new Set([...body.matchAll(/\bo\.Get\("(\w+)"\)|\b\w+Of\(o, "(\w+)"/g)].map((m) => (m[1] ?? m[2])!));

const cc = readFileSync(path.join(root, 'native/load_options.cc'), 'utf8');

test('the graph names the addon reads are exactly ENGINE_IO', () => {
  assert.deepEqual([...keysRead(functionBody(cc, 'ParseIoNames'))].sort(), Object.keys(ENGINE_IO).sort());
});

test('the load options the addon reads are exactly those engineOptions() writes (and the reader reads)', () => {
  const read = new Set(
    ['ParseLoadOptions', 'ParseAdam', 'ParseInput'].flatMap((f) => [...keysRead(functionBody(cc, f))]),
  );
  const written = Object.keys(
    engineOptions(gradcheckConfig(), { device: 'cuda', adam: 'fused', cudaOptions: { prefer_nhwc: '1' } }),
  );
  assert.deepEqual([...read].sort(), written.sort());
  assert.deepEqual([...keysRead('x = o.Get("a"); y = IntOf(o, "b", 0); z = s.Get("c");')], ['a', 'b']);
});

test("the C++ class defines exactly the binding's methods and its two accessors", () => {
  const cls = readFileSync(path.join(root, 'native/native_engine.cc'), 'utf8');
  const defined = (kind: string): string[] =>
    [...cls.matchAll(new RegExp(`Instance${kind}<&NativeEngine::\\w+>\\("(\\w+)"\\)`, 'g'))].map((m) => m[1]!).sort();
  assert.deepEqual(defined('Method'), [...NATIVE_METHODS].sort());
  assert.deepEqual(defined('Accessor'), ['busy', 'loaded']);
});
