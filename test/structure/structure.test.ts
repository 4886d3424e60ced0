// The tree's rules, checked on the sources: training/ is the ground floor (imports nothing from src/),
// src/ folders and source files import each other without loops, no file over 400 lines, no function
// over 80, and comments point only at files inside the repository.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'CMakeLists.txt'))) dir = path.dirname(dir);
  return dir;
})();

function filesUnder(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(rel, ext));
    else if (ext.test(e.name)) out.push(rel);
  }
  return out.sort();
}

const sources = [...filesUnder('src', /\.ts$/), ...filesUnder('training', /\.ts$/)];
const native = filesUnder('native', /\.(cc|h)$/);

/** Relative imports of a file, resolved to repository paths (`src/data/shards.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)'/gms)].map((m) =>
    path.normalize(path.join(path.dirname(file), m[1]!)).replace(/\.js$/, '.ts'),
  );
}

/** The folder graph of src/ (src/cli, src/data, …): an edge for each import between two folders. */
export function folderGraph(files: readonly string[], importsFn: (f: string) => string[]): Map<string, Set<string>> {
  const g = new Map<string, Set<string>>();
  const folder = (f: string): string | null => (f.startsWith('src/') ? f.split('/').slice(0, 2).join('/') : null);
  for (const f of files) {
    const from = folder(f);
    if (!from) continue;
    if (!g.has(from)) g.set(from, new Set());
    for (const imp of importsFn(f)) {
      const to = folder(imp);
      if (to && to !== from) g.get(from)!.add(to);
    }
  }
  return g;
}

/** A cycle in a directed graph as a list of nodes, or null. */
export function findCycle(g: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of g.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of g.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

test('training/ imports nothing from src/', () => {
  const up = sources
    .filter((f) => f.startsWith('training/'))
    .flatMap((f) =>
      importsOf(f)
        .filter((i) => i.startsWith('src/'))
        .map((i) => `${f} → ${i}`),
    );
  assert.deepEqual(up, []);
});

test('src/ folders import each other without a loop (and the loop finder finds one)', (t) => {
  const g = folderGraph(sources, importsOf);
  t.diagnostic([...g].map(([k, v]) => `${k} → ${[...v].sort().join(', ') || '∅'}`).join('; '));
  assert.equal(findCycle(g), null);
  // The checker itself: a loop planted between two folders is reported.
  const planted = new Map([...g].map(([k, v]) => [k, new Set(v)]));
  planted.get('src/data')!.add('src/train');
  assert.deepEqual(findCycle(planted)?.slice(-1), [findCycle(planted)![0]]);
});

test('source files import each other without a loop (type imports included)', () => {
  const g = new Map(sources.map((f) => [f, new Set(importsOf(f))]));
  assert.equal(findCycle(g)?.join(' → ') ?? null, null);
  // The checker on files: two files that import each other are reported.
  const planted = new Map(g);
  planted.set('src/serve/routes.ts', new Set([...(g.get('src/serve/routes.ts') ?? []), 'src/serve/app.ts']));
  assert.deepEqual(new Set(findCycle(planted)), new Set(['src/serve/app.ts', 'src/serve/routes.ts']));
});

test('no source file over 400 lines', () => {
  const long = [...sources, ...native]
    .map((f) => [f, readFileSync(path.join(root, f), 'utf8').split('\n').length] as const)
    .filter(([, n]) => n > 400);
  assert.deepEqual(long, []);
});

test('no function over 80 lines', () => {
  const long: string[] = [];
  for (const f of sources) {
    const src = ts.createSourceFile(f, readFileSync(path.join(root, f), 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body) {
        const a = src.getLineAndCharacterOfPosition(n.getStart()).line;
        const b = src.getLineAndCharacterOfPosition(n.end).line;
        if (b - a + 1 > 80) long.push(`${f}:${a + 1} (${b - a + 1} lines)`);
      }
      ts.forEachChild(n, visit);
    };
    visit(src);
  }
  assert.deepEqual(long, []);
});

test('comments and README name only documents inside the repository', () => {
  const cited: string[] = [];
  for (const f of [
    ...sources,
    ...native,
    'CMakeLists.txt',
    'README.md',
    ...filesUnder('bench', /\.(ts|sh|py)$/),
    ...filesUnder('docs', /\.md$/),
  ]) {
    const text = readFileSync(path.join(root, f), 'utf8');
    for (const m of text.matchAll(/(?<![\w/.-])((?:\.\.\/|\.\/)?[\w./-]*[A-Za-z]\.md)\b/g)) {
      const name = m[1]!;
      const candidates = [path.join(root, name), path.join(root, path.dirname(f), name)];
      if (!candidates.some((c) => existsSync(c) && c.startsWith(root + path.sep))) cited.push(`${f}: ${name}`);
    }
  }
  assert.deepEqual(cited, []);
});
