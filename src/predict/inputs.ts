// Image inputs of `pred` and `vec`: files, folders (recursive unless asked not to, sorted) and `-` for paths on stdin, then
// decoded in batches with the preprocessing of `pairs`, ahead of the model so inference never waits.
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS, ImageError, preprocessFrames, type PreprocessOptions } from '../data/images.js';
import { walkDataset } from '../data/scan.js';
import { UsageError } from '../util/errors.js';
import { limiter } from '../util/limit.js';

/** How the CLI passes `-` (a list of image paths on stdin) through yargs. */
export const STDIN_ARG = '/dev/stdin';

/**
 * Every image named by the arguments, in order: files as given, folders walked in sorted order. `key`
 * names the image independently of where the folder is mounted: its path relative to the folder
 * argument it was found under (`a/b.png`), or a file argument (or stdin line) as given.
 */
export async function* listImageEntries(
  args: readonly string[],
  stdin: NodeJS.ReadableStream = process.stdin,
  recursive = true,
): AsyncGenerator<{ file: string; key: string; root?: string }> {
  for (const arg of args) {
    if (arg === '-' || arg === STDIN_ARG) {
      for await (const line of createInterface({ input: stdin, crlfDelay: Infinity }))
        if (line.trim()) yield { file: line.trim(), key: line.trim() };
      continue;
    }
    const info = await stat(arg).catch(() => null);
    if (!info) throw new UsageError(`Expected an image file or folder but ${JSON.stringify(arg)} does not exist`);
    if (info.isDirectory()) {
      for await (const e of walkDataset(path.resolve(arg), recursive))
        if (e.kind === 'image') yield { file: e.file, key: e.name, root: path.resolve(arg) };
    } else yield { file: arg, key: arg };
  }
}

/** The image files of listImageEntries. */
export async function* listImages(
  args: readonly string[],
  stdin: NodeJS.ReadableStream = process.stdin,
): AsyncGenerator<string> {
  for await (const e of listImageEntries(args, stdin)) yield e.file;
}

export interface DecodedBatch {
  files: string[];
  /** uint8 (rows, S, S, 3): each file's frames one after another. */
  images: Uint8Array;
  /** Frames (rows) of each file; 1 each unless `frames` asked for more of animated images. */
  frames: number[];
  failures: { file: string; reason: string }[];
}

/**
 * Batches of decoded images. Up to `ahead` batches are queued in front of the consumer, decoded
 * `concurrency` images at a time (default 2, or a quarter of the cores: the model runs on every core,
 * and a few decoding threads keep ahead of it while taking the least from it).
 */
export async function* decodeBatches(
  files: AsyncIterable<string>,
  opts: Omit<PreprocessOptions, 'maxPixels'> & {
    batch: number;
    ahead?: number;
    concurrency?: number;
    maxPixels?: number;
    /** Evenly spaced frames of each animated image (default 1: the first). */
    frames?: number;
  },
): AsyncGenerator<DecodedBatch> {
  const { size, batch } = opts;
  const pre: PreprocessOptions = {
    size,
    pad: opts.pad,
    padColor: opts.padColor,
    kernel: opts.kernel,
    fit: opts.fit,
    maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
  };
  const px = size * size * 3;
  const decode = limiter(opts.concurrency ?? Math.max(2, Math.floor(os.availableParallelism() / 4)));
  const window = batch * (opts.ahead ?? 2);
  type Item = { file: string; pixels?: Buffer; frames?: number; reason?: string };
  const pending: Promise<Item>[] = [];
  const it = files[Symbol.asyncIterator]();
  let exhausted = false;
  const fill = async (): Promise<void> => {
    while (!exhausted && pending.length < window) {
      const n = await it.next();
      if (n.done) {
        exhausted = true;
        break;
      }
      const file = n.value;
      pending.push(
        decode(() => preprocessFrames(file, file, pre, opts.frames ?? 1)).then(
          (r) => ({ file, pixels: r.pixels, frames: r.frames }),
          (err: unknown) => ({
            file,
            reason: err instanceof ImageError ? err.message.slice(err.file.length + 2) : String(err),
          }),
        ),
      );
    }
  };
  // One libvips thread per image, several images at once: less contention with the model's threads.
  const prevSharp = sharp.concurrency();
  sharp.concurrency(1);
  try {
    await fill();
    while (pending.length > 0) {
      const items: Item[] = [];
      while (items.length < batch && pending.length > 0) {
        items.push(await pending.shift()!);
        await fill();
      }
      const ok = items.filter((i) => i.pixels);
      const frames = ok.map((i) => i.frames!);
      const images = new Uint8Array(frames.reduce((a, b) => a + b, 0) * px);
      let at = 0;
      for (const i of ok) {
        images.set(i.pixels!, at);
        at += i.pixels!.length;
      }
      yield {
        files: ok.map((i) => i.file),
        images,
        frames,
        failures: items.filter((i) => !i.pixels).map((i) => ({ file: i.file, reason: i.reason! })),
      };
    }
  } finally {
    sharp.concurrency(prevSharp);
  }
}
