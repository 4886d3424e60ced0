// The docs against the tree: every src/ folder is in README's layout table and ARCHITECTURE's folder
// list; every file ARCHITECTURE names exists where it says; each folder imports only what its bullet
// says it may; every path the docs name exists; every section a comment cites ("docs/ARCHITECTURE.md, "Files"") is a heading.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'CMakeLists.txt'))) dir = path.dirname(dir);
  return dir;
})();
const read = (f: string): string => readFileSync(path.join(root, f), 'utf8');

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(rel, ext) : ext.test(e.name) ? [rel] : [];
  });
}

const README = read('README.md');
const ARCH = read('docs/ARCHITECTURE.md');
const srcFolders = readdirSync(path.join(root, 'src'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => `src/${e.name}/`);

/** ARCHITECTURE's folder bullets: `- **`DIR/`** — …` up to the next bullet, by folder. */
export function folderBullets(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const section = text.slice(text.indexOf('## Folders'), text.indexOf('\n## ', text.indexOf('## Folders') + 3));
  for (const m of section.matchAll(/^- \*\*`([^`]+\/)`\*\*([\s\S]*?)(?=^- \*\*|$(?![\s\S]))/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Backticked file names (x.ts, x.cc, x.h, x.js, x.html, x.css) in a text. */
const namedFiles = (text: string): string[] =>
  [...text.matchAll(/`([\w./-]+\.(?:ts|cc|h|js|html|css))`/g)].map((m) => m[1]!);

test("every src/ folder is in README's layout table and ARCHITECTURE's folder list", () => {
  const bullets = folderBullets(ARCH);
  assert.deepEqual(
    srcFolders.filter((f) => !bullets.has(f)),
    [],
    'folders missing from docs/ARCHITECTURE.md',
  );
  assert.deepEqual(
    srcFolders.filter((f) => !README.includes(`\`${f}\``)),
    [],
    'folders missing from README',
  );
  assert.deepEqual(
    [...bullets.keys()].filter((f) => !existsSync(path.join(root, f))),
    [],
    'folders the docs name that do not exist',
  );
});

test('each file ARCHITECTURE names under a folder exists there', () => {
  const missing: string[] = [];
  for (const [dir, text] of folderBullets(ARCH)) {
    if (!dir.startsWith('src/') && dir !== 'training/' && dir !== 'native/') continue;
    const here = filesUnder(dir, /\.(ts|cc|h|js|html|css)$/).map((f) => path.relative(dir, f));
    for (const n of namedFiles(text))
      if (!n.includes('/') && !here.some((f) => f === n || path.basename(f) === n)) missing.push(`${dir}${n}`);
  }
  assert.deepEqual(missing, [], 'named in docs/ARCHITECTURE.md but not there');
});

/** The src/ folders a bullet's "Imports `a/`, `b/`…" sentence allows (`anything above`: all). */
export function allowedImports(bullet: string): Set<string> | 'any' {
  const m = /Imports ([^.]*)\./.exec(bullet.replace(/\s+/g, ' '));
  if (!m) return new Set();
  if (/anything above/.test(m[1]!)) return 'any';
  return new Set([...m[1]!.matchAll(/`([\w-]+)\/`/g)].map((x) => `src/${x[1]}`));
}

test('each src/ folder imports only the folders its ARCHITECTURE bullet names (and the parser reads a bullet)', () => {
  const bullets = folderBullets(ARCH);
  const wrong: string[] = [];
  for (const dir of srcFolders) {
    const allowed = allowedImports(bullets.get(dir) ?? '');
    if (allowed === 'any') continue;
    const imported = new Set<string>();
    for (const f of filesUnder(dir, /\.ts$/))
      for (const m of read(f).matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)'/gms)) {
        const to = path.normalize(path.join(path.dirname(f), m[1]!)).split(path.sep);
        if (to[0] === 'src' && `src/${to[1]}/` !== dir) imported.add(`src/${to[1]}`);
      }
    for (const i of imported) if (!allowed.has(i)) wrong.push(`${dir} imports ${i}/`);
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(
    allowedImports('owns x. Imports `data/`, `util/`, `training/`.'),
    new Set(['src/data', 'src/util', 'src/training']),
  );
});

test('every repository path the docs name exists', () => {
  const missing: string[] = [];
  for (const [doc, text] of [
    ['README.md', README],
    ...filesUnder('docs', /\.md$/).map((f) => [f, read(f)] as const),
  ] as const) {
    for (const m of text.matchAll(/`((?:src|training|native|test|bench|docs|scripts)\/[\w./-]*)`/g)) {
      const p = m[1]!.replace(/\/$/, '');
      if (!existsSync(path.join(root, p))) missing.push(`${doc}: ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
});

/** The sections comments cite: (doc, title) for `docs/NAME.md, "Title"` and `README, "Title"`. */
export function citedSections(text: string): { doc: string; title: string }[] {
  return [
    ...text.matchAll(/\b(docs\/[A-Z]+\.md|ARCHITECTURE\.md|README(?:\.md)?),\s*(?:\/\/\s*|\*\s*)?"([^"]+)"/g),
  ].map((m) => ({
    doc: m[1]!.startsWith('README') ? 'README.md' : m[1] === 'ARCHITECTURE.md' ? 'docs/ARCHITECTURE.md' : m[1]!,
    // A title wrapped over two comment lines reads as one.
    title: m[2]!.replace(/\s*\n\s*(?:\/\/|\*)?\s*/g, ' '),
  }));
}

const headings = (text: string): string[] => [...text.matchAll(/^#{2,4} (.+)$/gm)].map((m) => m[1]!.trim());

test('every section a comment cites is a heading of that document (and the finder finds citations)', () => {
  const sources = [
    ...filesUnder('src', /\.(ts|js)$/),
    ...filesUnder('training', /\.ts$/),
    ...filesUnder('native', /\.(cc|h)$/),
    ...filesUnder('bench', /\.(ts|sh)$/),
    'CMakeLists.txt',
  ];
  const docs = new Map<string, string[]>([
    ['README.md', headings(README)],
    ...filesUnder('docs', /\.md$/).map((f) => [f, headings(read(f))] as const),
  ]);
  const dangling: string[] = [];
  let cited = 0;
  for (const f of sources) {
    for (const c of citedSections(read(f))) {
      cited++;
      if (!(docs.get(c.doc) ?? []).some((h) => h.startsWith(c.title))) dangling.push(`${f}: ${c.doc}, "${c.title}"`);
    }
  }
  assert.deepEqual(dangling, []);
  assert.ok(cited >= 5, `${cited} citations found`);
  assert.deepEqual(
    citedSections('// (docs/ARCHITECTURE.md, "Nowhere")\n// see README, "Far\n// away"; docs/COMMANDS.md, "X"'),
    [
      { doc: 'docs/ARCHITECTURE.md', title: 'Nowhere' },
      { doc: 'README.md', title: 'Far away' },
      { doc: 'docs/COMMANDS.md', title: 'X' },
    ],
  );
});
