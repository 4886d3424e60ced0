// Image preprocessing shared by `pairs` and `pred`: decode (first frame), EXIF orientation, alpha
// flattened onto the pad colour (black for our models, white for the WD taggers), letterbox to a
// square, resize to S×S, uint8 RGB. Failures are classified.
import sharp from 'sharp';

export type PadRule = 'center' | 'topleft';
export const PAD_RULES: readonly PadRule[] = ['center', 'topleft'];

/** PIL's decompression-bomb error threshold (2 × 89,478,485 pixels). */
export const DEFAULT_MAX_PIXELS = 178_956_970;

export type PadColor = 'black' | 'white';
export const PAD_COLORS: readonly PadColor[] = ['black', 'white'];
/** sharp's resize kernels we use: lanczos3 (sharp's default; our models) and cubic (Catmull-Rom; WD). */
export type ResizeKernel = 'lanczos3' | 'cubic';

export interface PreprocessOptions {
  size: number;
  pad: PadRule;
  maxPixels: number;
  /** Alpha is composited onto this colour, and the letterbox is filled with it (default black). */
  padColor?: PadColor;
  kernel?: ResizeKernel;
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
  const v = opts.padColor === 'white' ? 255 : 0;
  try {
    const { data, info } = await sharp(input, { limitInputPixels: maxPixels, failOn: 'error', animated: false })
      .rotate()
      .flatten({ background: { r: v, g: v, b: v } })
      .resize(size, size, {
        fit: 'contain',
        position: pad === 'center' ? 'centre' : 'left top',
        background: { r: v, g: v, b: v, alpha: 1 },
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
