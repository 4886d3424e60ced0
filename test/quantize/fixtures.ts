// What the quantize tests write beside their taggers: a WD-style tags file and small PNG images.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

/** selected_tags.csv in the WD taggers' columns (tag_id, name, category, count), all general tags. */
export async function writeSelectedTags(dir: string, tags: string[]): Promise<void> {
  const rows = tags.map((t, i) => `${i},${t},0,1`).join('\n');
  await writeFile(path.join(dir, 'selected_tags.csv'), `tag_id,name,category,count\n${rows}\n`);
}

/** `count` RGB PNGs of `size` × `size` as `dir`/<i>.png (the folder made), byte j of image i from `pixel(i, j)`. */
export async function writePngs(
  dir: string,
  count: number,
  size: number,
  pixel: (i: number, j: number) => number,
): Promise<string> {
  await mkdir(dir);
  for (let i = 0; i < count; i++) {
    const raw = Buffer.from(Uint8Array.from({ length: size * size * 3 }, (_, j) => pixel(i, j)));
    await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toFile(path.join(dir, `${i}.png`));
  }
  return dir;
}
