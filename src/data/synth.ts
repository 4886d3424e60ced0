// The built-in demo dataset: illustration-like pictures of coloured shapes with booru-style tags that
// are visible in the pixels, drawn from Zipf-like weights so tag frequencies are long-tailed as on a
// booru. Same seed → same bytes.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../training/rng.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { lockFolder, LOCK_NAME, type FolderLock } from '../util/lock.js';

const COLOURS: Record<string, string> = {
  red: '#e02020',
  blue: '#2050e0',
  green: '#20a040',
  yellow: '#f0d020',
  purple: '#8030c0',
  orange: '#f08020',
  pink: '#f070b0',
  cyan: '#20c0d0',
  brown: '#805020',
  grey: '#8a8a8a',
};
const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'cross'] as const;
type Shape = (typeof SHAPES)[number];
const BACKGROUNDS: Record<string, string> = { white: '#ffffff', black: '#101010', blue: '#a0c8ff', beige: '#f0e0c0' };

/** Zipf weights 1/(i+1)^s: the first items are common, the last rare. */
const zipf = (n: number, s = 1.1): number[] => Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
const COLOUR_W = zipf(Object.keys(COLOURS).length);
const SHAPE_W = zipf(SHAPES.length, 0.9);
const BG_W = [8, 2, 1.2, 0.6];

export interface SynthItem {
  svg: string;
  width: number;
  height: number;
  tags: string[];
  format: 'jpg' | 'png';
  caption: boolean;
}

function shapeSvg(shape: Shape, cx: number, cy: number, r: number, fill: string, stroke: string): string {
  const paint = `fill="${fill}" ${stroke}`;
  const pts = (list: [number, number][]): string =>
    list.map(([x, y]) => `${(cx + x * r).toFixed(1)},${(cy + y * r).toFixed(1)}`).join(' ');
  switch (shape) {
    case 'circle':
      return `<circle cx="${cx}" cy="${cy}" r="${r}" ${paint}/>`;
    case 'square':
      return `<rect x="${cx - r * 0.85}" y="${cy - r * 0.85}" width="${r * 1.7}" height="${r * 1.7}" ${paint}/>`;
    case 'triangle':
      return `<polygon points="${pts([
        [0, -1],
        [0.95, 0.8],
        [-0.95, 0.8],
      ])}" ${paint}/>`;
    case 'star': {
      const p: [number, number][] = [];
      for (let i = 0; i < 10; i++) {
        const a = (Math.PI / 5) * i - Math.PI / 2;
        const k = i % 2 === 0 ? 1 : 0.45;
        p.push([Math.cos(a) * k, Math.sin(a) * k]);
      }
      return `<polygon points="${pts(p)}" ${paint}/>`;
    }
    case 'heart':
      return `<path d="M ${cx} ${cy + r * 0.9} C ${cx - r * 1.6} ${cy - r * 0.2} ${cx - r * 0.6} ${cy - r * 1.3} ${cx} ${cy - r * 0.4} C ${cx + r * 0.6} ${cy - r * 1.3} ${cx + r * 1.6} ${cy - r * 0.2} ${cx} ${cy + r * 0.9} Z" ${paint}/>`;
    case 'cross':
      return `<polygon points="${pts([
        [-0.3, -1],
        [0.3, -1],
        [0.3, -0.3],
        [1, -0.3],
        [1, 0.3],
        [0.3, 0.3],
        [0.3, 1],
        [-0.3, 1],
        [-0.3, 0.3],
        [-1, 0.3],
        [-1, -0.3],
        [-0.3, -0.3],
      ])}" ${paint}/>`;
  }
}

/** One picture and its tags, drawn from `rng`. */
export function synthItem(rng: Rng): SynthItem {
  const width = rng.pick([256, 256, 256, 224, 320]);
  const height = rng.pick([256, 256, 256, 320, 224]);
  const bgName = Object.keys(BACKGROUNDS)[rng.weighted(BG_W)]!;
  const tags = new Set<string>([`${bgName}_background`]);
  const striped = rng.next() < 0.06;
  let body = `<rect width="${width}" height="${height}" fill="${BACKGROUNDS[bgName]}"/>`;
  if (striped) {
    tags.add('striped_background');
    for (let x = 0; x < width; x += 32) body += `<rect x="${x}" width="12" height="${height}" fill="#00000022"/>`;
  }
  const count = rng.weighted([5, 3, 1.5, 1]) + 1;
  tags.add(count === 1 ? 'single_shape' : count === 2 ? 'two_shapes' : 'multiple_shapes');
  // Shapes sit in distinct cells of a 2×2 grid so they stay visible.
  const cells = rng.shuffle([0, 1, 2, 3]).slice(0, count);
  const colourNames = Object.keys(COLOURS);
  for (const cell of cells) {
    const colour = colourNames[rng.weighted(COLOUR_W)]!;
    const shape = SHAPES[rng.weighted(SHAPE_W)]!;
    const outlined = rng.next() < 0.08;
    const cw = width / 2;
    const ch = height / 2;
    const r = Math.min(cw, ch) * (count === 1 ? 0.75 : 0.36) * (0.8 + rng.next() * 0.3);
    const cx =
      count === 1
        ? width / 2 + (rng.next() - 0.5) * width * 0.1
        : (cell % 2) * cw + cw / 2 + (rng.next() - 0.5) * cw * 0.2;
    const cy =
      count === 1
        ? height / 2 + (rng.next() - 0.5) * height * 0.1
        : Math.floor(cell / 2) * ch + ch / 2 + (rng.next() - 0.5) * ch * 0.2;
    const stroke = outlined ? 'stroke="#000000" stroke-width="7"' : '';
    body += shapeSvg(shape, Math.round(cx), Math.round(cy), Math.round(r), COLOURS[colour]!, stroke);
    tags.add(`${colour}_${shape}`);
    tags.add(shape);
    if (outlined) tags.add('outlined');
  }
  tags.add(bgName === 'black' ? 'rating:sensitive' : 'rating:general');
  return {
    svg: `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${body}</svg>`,
    width,
    height,
    tags: [...tags],
    format: rng.next() < 0.8 ? 'jpg' : 'png',
    caption: rng.next() < 0.1,
  };
}

export async function renderSynthItem(item: SynthItem): Promise<Buffer> {
  const img = sharp(Buffer.from(item.svg));
  return item.format === 'jpg' ? img.flatten().jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}

export function tagText(item: SynthItem): string {
  return item.caption ? `${item.tags.map((t) => t.replace(/_/g, ' ')).join(', ')}\n` : `${item.tags.join(' ')}\n`;
}

/** Write `count` items as DIR/NNN/NNNNN.{jpg,png} + .txt, 250 per folder. */
export async function writeSynthDataset(
  out: string,
  count: number,
  seed: number,
  onItem?: (done: number) => void,
): Promise<void> {
  const rng = new Rng(seed);
  const items = Array.from({ length: count }, () => synthItem(rng));
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const item = items[i]!;
      const dir = path.join(out, String(Math.floor(i / 250)).padStart(3, '0'));
      await mkdir(dir, { recursive: true });
      const stem = path.join(dir, String(i).padStart(5, '0'));
      await writeFile(`${stem}.${item.format}`, await renderSynthItem(item));
      await writeFile(`${stem}.txt`, tagText(item));
      onItem?.(++done);
    }
  };
  await Promise.all(Array.from({ length: os.availableParallelism() }, worker));
}

const DEMO_MARKER = '.alt-i2v-ort-demo';

/**
 * `demo --out`'s folder, locked and emptied for a new run: only ever what an earlier demo made (its
 * marker file is there) or an empty folder; anything else is refused, naming `given`. The caller
 * releases the lock.
 */
export async function replaceDemoFolder(out: string, given: string, warn: (l: string) => void): Promise<FolderLock> {
  await mkdir(out, { recursive: true });
  const lock = await lockFolder(out, `alt-i2v-ort demo (pid ${process.pid})`, warn);
  try {
    const marker = path.join(out, DEMO_MARKER);
    const entries = (await readdir(out)).filter((e) => e !== LOCK_NAME);
    if (entries.length > 0 && !existsSync(marker))
      throw new UsageError(
        `Expected an empty or earlier demo folder for --out but ${JSON.stringify(given)} holds other files; choose another --out`,
      );
    for (const e of entries) await rm(path.join(out, e), { recursive: true, force: true });
    await writeFileAtomic(marker, 'made by alt-i2v-ort demo; the next demo run replaces this folder\n');
    return lock;
  } catch (e) {
    await lock.release();
    throw e;
  }
}
