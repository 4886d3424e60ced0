// Image preprocessing shared by `pairs` and `pred`: decode (first frame), EXIF orientation, alpha
// flattened onto the pad colour (black for our models, white for the WD taggers), then to an S×S uint8
// RGB square: our models resize and letterbox (as they were trained), the WD taggers pad to a square
// first and then resize it (as their reference code does). Failures are classified.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { apngFrames, apngInfo, apngRefusal } from './apng.js';
import { resizeAntialiased } from './resize.js';
import { isVideoBytes } from './sniff.js';
import { isVideoFile, VideoError, videoFrames } from './video.js';
import { UsageError } from '../util/errors.js';

export type PadRule = 'center' | 'topleft';
export const PAD_RULES: readonly PadRule[] = ['center', 'topleft'];

/** PIL's decompression-bomb error threshold (2 × 89,478,485 pixels). */
export const DEFAULT_MAX_PIXELS = 178_956_970;

export type PadColor = 'black' | 'white';
export type Rgb = readonly [number, number, number];
/** How the image becomes a square: resize then letterbox (ours), pad to a square then resize (WD), or stretch. */
export type Fit = 'letterbox' | 'pad-first' | 'stretch';
export const PAD_COLORS: readonly PadColor[] = ['black', 'white'];
/** sharp's resize kernels we use: lanczos3 (sharp's default; our models), cubic (Catmull-Rom; WD), linear. */
export type ResizeKernel = 'lanczos3' | 'cubic' | 'linear';

export interface PreprocessOptions {
  size: number;
  pad: PadRule;
  maxPixels: number;
  /** Alpha is composited onto this colour, and the letterbox is filled with it (default black). */
  padColor?: PadColor | Rgb;
  kernel?: ResizeKernel;
  /**
   * letterbox (default): resize, then pad; pad-first: pad to a square (centred, top/left getting the
   * smaller half) and resize the square, as the WD taggers' reference does; stretch: resize to S×S.
   */
  fit?: Fit;
  /** The frame (page) of an animated image to decode; default the first. */
  page?: number;
}

export type SkipReason = 'not-an-image' | 'unsupported-format' | 'truncated' | 'too-large' | 'unreadable';

/** An image that cannot be used, with the reason in words a user can act on. */
export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    readonly file: string,
    readonly reason: SkipReason,
    /** What the decoder said. */
    readonly detail: string,
  ) {
    super(`${file}: ${reason} (${detail})`);
  }
}

function classify(file: string, err: unknown): ImageError {
  const text = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
  let reason: SkipReason = 'unreadable';
  // BMP is an image format users have (sd-scripts tags it), but libvips, as sharp ships it, has no
  // loader for it: say so, rather than "not an image".
  if (/\.bmp$/i.test(file) && /unsupported image format/i.test(text))
    return new ImageError(file, 'unsupported-format', 'BMP is not decoded here; convert it to PNG');
  if (/pixel limit/i.test(text)) reason = 'too-large';
  else if (/unsupported image format|empty|not a known file format|bad seek|improper image header/i.test(text))
    reason = 'not-an-image';
  else if (/premature end|truncated|end of file|not enough data|read error|out of order/i.test(text))
    reason = 'truncated';
  return new ImageError(file, reason, text);
}

/**
 * The letterboxed S×S×3 uint8 RGB pixels of one image (row-major, HWC).
 * `input` is a path or the encoded bytes; `file` names it in errors.
 */
export async function preprocessImage(input: string | Buffer, file: string, opts: PreprocessOptions): Promise<Buffer> {
  const { size, pad, maxPixels } = opts;
  const [r, g, b] = rgbOf(opts.padColor);
  try {
    if (opts.fit === 'pad-first' || opts.fit === 'stretch') return await padThenResize(input, opts, [r, g, b]);
    const { data, info } = await sharp(input, {
      limitInputPixels: maxPixels,
      failOn: 'error',
      animated: false,
      page: opts.page ?? 0,
    })
      .rotate()
      .flatten({ background: { r, g, b } })
      .resize(size, size, {
        fit: 'contain',
        position: pad === 'center' ? 'centre' : 'left top',
        background: { r, g, b, alpha: 1 },
        kernel: opts.kernel ?? 'lanczos3',
      })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
    }
    return data;
  } catch (err) {
    throw classify(file, err);
  }
}

/**
 * Pad to a square of the long side, then resize it to S×S: the order of the WD taggers' reference
 * (pad_t = pad_y // 2, then one resize of the square). sharp resizes before it extends within one
 * pipeline, so the padding is done here between two.
 */
async function padThenResize(input: string | Buffer, opts: PreprocessOptions, rgb: Rgb): Promise<Buffer> {
  const { data, info } = await sharp(input, {
    limitInputPixels: opts.maxPixels,
    failOn: 'error',
    animated: false,
    page: opts.page ?? 0,
  })
    .rotate()
    .flatten({ background: { r: rgb[0], g: rgb[1], b: rgb[2] } })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const { width: w, height: h } = info;
  if (info.channels !== 3 || data.length !== w * h * 3) throw new Error(`decoded to ${w}×${h}×${info.channels}`);
  if (opts.fit === 'stretch') return resample(data, w, h, opts);
  const side = Math.max(w, h);
  const top = opts.pad === 'center' ? Math.floor((side - h) / 2) : 0;
  const left = opts.pad === 'center' ? Math.floor((side - w) / 2) : 0;
  const grey = rgb[0] === rgb[1] && rgb[1] === rgb[2];
  const kernel = opts.kernel ?? 'lanczos3';
  if (side > opts.size && grey && kernel !== 'lanczos3') {
    const pad = { top, left, bottom: side - h - top, right: side - w - left, value: rgb[0] };
    return resizeAntialiased(data, w, h, opts.size, opts.size, kernel, pad);
  }
  const square = Buffer.alloc(side * side * 3, grey ? rgb[0] : 0);
  if (!grey) for (let i = 0; i < square.length; i += 3) square.set(rgb, i);
  for (let r = 0; r < h; r++) data.copy(square, ((r + top) * side + left) * 3, r * w * 3, (r + 1) * w * 3);
  return resample(square, side, side, opts);
}

/** w×h RGB to S×S: as is, enlarged with centres aligned (both sides grow), or resized with the kernel. */
async function resample(data: Buffer, w: number, h: number, opts: PreprocessOptions): Promise<Buffer> {
  const size = opts.size;
  if (w === size && h === size) return data;
  if (w <= size && h <= size) return enlarge(data, w, h, size);
  const kernel = opts.kernel ?? 'lanczos3';
  // Shrinking with PIL's kernels as PIL does (resize.ts); libvips' box pre-shrink would be 1–4 grey levels off.
  if (kernel !== 'lanczos3') return resizeAntialiased(data, w, h, size, size, kernel);
  const out = await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .resize(size, size, { fit: 'fill', kernel })
    .raw({ depth: 'uchar' })
    .toBuffer();
  if (out.length !== size * size * 3) throw new Error(`resized to ${out.length} bytes`);
  return out;
}

/**
 * Enlarge to S×S as PIL's bicubic does: pixel centres aligned ((X + ½)/s − ½), Catmull-Rom taps, the
 * edge pixels repeated beyond the border. (sharp's enlarging resize aligns corners, not centres: 5 grey
 * levels off on average.) Two pixels of edge copy, then an affine map whose output starts at the origin.
 */
async function enlarge(pixels: Buffer, w: number, h: number, size: number): Promise<Buffer> {
  const { data, info } = await sharp(pixels, { raw: { width: w, height: h, channels: 3 } })
    .extend({ top: 2, bottom: 2, left: 2, right: 2, extendWith: 'copy' })
    .raw()
    .toBuffer({ resolveWithObject: true })
    .then(({ data }) =>
      sharp(data, { raw: { width: w + 4, height: h + 4, channels: 3 } })
        .affine([size / w, 0, 0, size / h], { interpolator: 'bicubic', idx: -1.5, idy: -1.5, odx: -0.5, ody: -0.5 })
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true }),
    );
  if (info.width < size || info.height < size || info.channels !== 3)
    throw new Error(`enlarged to ${info.width}×${info.height}`);
  const out = Buffer.alloc(size * size * 3);
  for (let r = 0; r < size; r++) data.copy(out, r * size * 3, r * info.width * 3, (r * info.width + size) * 3);
  return out;
}

/** A pad colour as RGB. */
export function rgbOf(c: PadColor | Rgb | undefined): Rgb {
  return c === 'white' ? [255, 255, 255] : c === undefined || c === 'black' ? [0, 0, 0] : c;
}

/**
 * `count` evenly spaced frames of an animated GIF, WebP or APNG (frame ⌊i × pages / count⌋ for i < count,
 * each once), preprocessed and concatenated; an image of one frame gives one. libvips reads PNG without
 * its animation: APNG frames come from apng.ts.
 */
export async function preprocessFrames(
  input: string | Buffer,
  file: string,
  opts: PreprocessOptions,
  count: number,
): Promise<{ pixels: Buffer; frames: number }> {
  if (typeof input === 'string' ? isVideoFile(input) : isVideoBytes(input))
    return videoPixels(input, file, opts, count);
  if (count <= 1) return { pixels: await preprocessImage(input, file, opts), frames: 1 };
  let bytes: Buffer;
  let pages = 1;
  try {
    bytes = typeof input === 'string' ? await readFile(input) : input;
    pages = (await sharp(bytes, { limitInputPixels: opts.maxPixels, animated: true }).metadata()).pages ?? 1;
  } catch (err) {
    throw classify(file, err);
  }
  const apng = apngInfo(bytes);
  if (apng && apng.frames > 1) pages = apng.frames;
  const picks = [...new Set(Array.from({ length: count }, (_, i) => Math.floor((i * pages) / count)))];
  const frames = [];
  if (apng && apng.frames > 1) {
    const refusal = apngRefusal(apng, opts.maxPixels);
    if (refusal) throw new ImageError(file, refusal.reason, refusal.detail);
    let pngs: Buffer[];
    try {
      pngs = await apngFrames(bytes, apng, picks);
    } catch (err) {
      throw new ImageError(file, 'unreadable', `its APNG frames do not decode: ${(err as Error).message ?? err}`);
    }
    for (const png of pngs) frames.push(await preprocessImage(png, file, opts));
  } else for (const page of picks) frames.push(await preprocessImage(bytes, file, { ...opts, page }));
  return { pixels: Buffer.concat(frames), frames: frames.length };
}

/** `count` frames of a video (video.ts: ffmpeg), each preprocessed as an image as it comes. */
async function videoPixels(
  input: string | Buffer,
  file: string,
  opts: PreprocessOptions,
  count: number,
): Promise<{ pixels: Buffer; frames: number }> {
  const frames: Buffer[] = [];
  try {
    await videoFrames(input, Math.max(1, count), opts.maxPixels, async (png) => {
      frames.push(await preprocessImage(png, file, opts));
    });
  } catch (err) {
    if (err instanceof VideoError) throw new ImageError(file, err.reason, err.message);
    throw err;
  }
  return { pixels: Buffer.concat(frames), frames: frames.length };
}

/** A pad colour as a user writes it (`--pad-color`): a name or R,G,B (each 0–255). */
export function padColorOf(text: string, flag: string): PadColor | Rgb {
  if ((PAD_COLORS as readonly string[]).includes(text)) return text as PadColor;
  const fields = text.split(',').map((p) => p.trim());
  const parts = fields.map(Number);
  if (parts.length !== 3 || !fields.every((f, i) => /^\d{1,3}$/.test(f) && parts[i]! <= 255))
    throw new UsageError(
      `Expected white, black or R,G,B (each 0–255) for ${flag} but received ${JSON.stringify(text)}`,
    );
  return parts as unknown as Rgb;
}
