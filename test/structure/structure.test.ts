// The tree's rules, checked on the sources: src/onnx/ is the ground floor (imports nothing of ours), training/
// imports from src/ only src/onnx/, no two source files share a name,
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

test('the ground floor src/onnx/ imports nothing of ours; training/ imports from src/ only src/onnx/', () => {
  const up = sources.flatMap((f) =>
    importsOf(f)
      .filter((i) =>
        f.startsWith('src/onnx/')
          ? !i.startsWith('src/onnx/')
          : f.startsWith('training/') && i.startsWith('src/') && !i.startsWith('src/onnx/'),
      )
      .map((i) => `${f} → ${i}`),
  );
  assert.deepEqual(up, []);
});

test("no two source files share a name (a command file may carry its command's name)", () => {
  const byName = new Map<string, string[]>();
  for (const f of sources.filter((f) => !f.startsWith('src/cli/commands/')))
    byName.set(path.basename(f), [...(byName.get(path.basename(f)) ?? []), f]);
  assert.deepEqual(
    [...byName.values()].filter((fs) => fs.length > 1),
    [],
  );
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

test('comments and docs name only source files that exist (a bare name: in its own folder or the tree)', () => {
  const tree = [...sources, ...native, ...filesUnder('test', /\.ts$/), ...filesUnder('bench', /\.(ts|sh|py)$/)];
  const basenames = new Set(tree.map((f) => path.basename(f)));
  const cited: string[] = [];
  const texts = [...tree, ...filesUnder('docs', /\.md$/), 'README.md', 'CMakeLists.txt'];
  for (const f of texts) {
    const text = readFileSync(path.join(root, f), 'utf8');
    const md = f.endsWith('.md');
    for (const line of text.split('\n')) {
      const comment = md || /^\s*(\/\/|\*|\/\*|#)/.test(line);
      if (!comment) continue;
      // Paths from the repository root (bench/results/ holds what benches write), and bare .ts names.
      for (const m of line.matchAll(
        /(?<![\w.@/-])((?:src|training|native|test|bench|docs|scripts)\/[\w./-]*\.(?:ts|cc|h|json|sh|py))\b/g,
      ))
        if (!m[1]!.startsWith('bench/results/') && !existsSync(path.join(root, m[1]!))) cited.push(`${f}: ${m[1]}`);
      for (const m of line.matchAll(/(?<![\w.@/-])([a-z][\w-]+\.ts)\b(?!\/)/g)) {
        const name = m[1]!;
        if (!existsSync(path.join(root, path.dirname(f), name)) && !basenames.has(name)) cited.push(`${f}: ${name}`);
      }
    }
  }
  assert.deepEqual(cited, []);
});
