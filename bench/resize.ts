// `npm run bench -- resize --against DIR`: what PIL's antialiased downscale (src/data/resize.ts) costs
// `pred` with a WD-style tagger, side by side with another build of this tool (DIR: a checkout with
// dist/ built, e.g. a `git worktree` of the commit before): the same photos (850×1200, 2000×1500 and
// 4000×3000 JPEGs, 1.9× to 8.9× the 448 input) and two stand-in taggers, the bench's light one and one
// of a WD ViT-B's weight, each command line run by both builds in turn, medians of runs.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { median, saveResult } from './common.js';
import { standInGflop, standInModel, standInTags, type Convs } from './wd.js';

const PHOTOS: [number, number][] = [
  [850, 1200],
  [2000, 1500],
  [4000, 3000],
];
const MODELS: { name: string; convs?: Convs }[] = [
  { name: 'light' },
  {
    name: 'vit-b-weight',
    convs: [
      [96, 2],
      [192, 1],
      [384, 2],
      [768, 2],
      [768, 1],
    ],
  },
];

/** `count` photo-like JPEGs of w×h (blurred noise: detail at every scale, as photos have). */
async function photos(dir: string, w: number, h: number, count: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `${i}.jpg`);
    if (existsSync(file)) continue;
    const raw = Buffer.alloc(w * h * 3);
    for (let p = 0; p < raw.length; p++) raw[p] = (Math.imul(p, 2654435761) + i * 977) >>> 24;
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .blur(1.2)
      .jpeg({ quality: 90 })
      .toFile(file);
  }
}

/** img/s of `pred` by the build in `tree`, from its summary line. */
function predImgPerS(tree: string, args: string[]): number {
  const r = spawnSync(process.execPath, [path.join(tree, 'dist/src/cli/main.js'), 'pred', ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const m = /^pred: \d+ images in [\d.]+ s, ([\d.]+) img\/s/m.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`pred in ${tree} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  return Number(m[1]);
}

export async function benchResize(opts: { quick: boolean; against?: string }): Promise<Record<string, unknown>> {
  if (!opts.against)
    throw new Error(
      'Expected --against DIR: another build to compare with (git worktree add /tmp/base HEAD~1, link node_modules, npx tsc there)',
    );
  const base = path.resolve(opts.against);
  const here = path.resolve('.');
  const count = opts.quick ? 8 : 16;
  const runs = opts.quick ? 2 : 3;
  const root = path.resolve('bench', 'data', 'resize');
  const rows = [];
  for (const model of MODELS) {
    const file = path.join(root, `${model.name}.onnx`);
    await mkdir(root, { recursive: true });
    await writeFile(file, standInModel(model.convs));
    await writeFile(path.join(root, 'selected_tags.csv'), standInTags());
    for (const [w, h] of PHOTOS) {
      const dir = path.join(root, `${w}x${h}-${count}`);
      await photos(dir, w, h, count);
      const args = [dir, '--model', file, '--tags', path.join(root, 'selected_tags.csv'), '--batch', '8'];
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let r = 0; r < runs; r++) {
        theirs.push(predImgPerS(base, args));
        ours.push(predImgPerS(here, args));
      }
      const row = {
        model: model.name,
        gflopPerImage: standInGflop(model.convs),
        photo: `${w}×${h}`,
        imgPerS: median(ours),
        againstImgPerS: median(theirs),
        cost: 1 - median(ours) / median(theirs),
        runs: { ours, against: theirs },
      };
      rows.push(row);
      console.log(
        `| pred, ${model.name} stand-in (${row.gflopPerImage.toFixed(1)} GFLOP/img), ${row.photo} JPEGs | ${row.imgPerS.toFixed(2)} img/s | ${path.basename(base)} ${row.againstImgPerS.toFixed(2)} img/s | ${(row.cost * 100).toFixed(1)}% cost |`,
      );
    }
  }
  const f = await saveResult('resize', { against: base, images: count, rows });
  console.log(`  results in ${f}`);
  return { rows };
}
