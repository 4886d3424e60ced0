// What an image's bytes are, from their first bytes (their "magic numbers"), whatever a file name or an
// HTTP Content-Type says: the formats this tool decodes (through sharp/libvips, or ffmpeg for video), and
// a name for common bytes that are not one of them. `serve` refuses anything else before libvips sees it — libvips would
// also parse SVG (with or without a byte-order mark, gzip-compressed as SVGZ), and that is not an image
// a tagging server should render.

/** The raster formats decoded, as sharp names them. */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1', 'avif', 'avis']);
const VIDEO_BRANDS = new Set(['isom', 'iso2', 'mp41', 'mp42', 'avc1', 'M4V ', 'qt  ', 'dash', '3gp4', '3gp5']);

const starts = (b: Buffer, sig: readonly number[], at = 0): boolean =>
  b.length >= at + sig.length && sig.every((x, i) => b[at + i] === x);
const ascii = (b: Buffer, from: number, to: number): string => b.toString('latin1', from, to);
/** The major brand of an ISO base media file (a box of type ftyp first: HEIF, AVIF, MP4, MOV), or undefined. */
const ftypBrand = (b: Buffer): string | undefined => (ascii(b, 4, 8) === 'ftyp' ? ascii(b, 8, 12) : undefined);

/** The raster format of `bytes`, or undefined when they start as none of IMAGE_FORMATS does. */
export function imageFormatOf(bytes: Buffer): ImageFormat | undefined {
  if (starts(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (starts(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return 'webp';
  if (/^GIF8[79]a$/.test(ascii(bytes, 0, 6))) return 'gif';
  if (starts(bytes, [0x49, 0x49, 0x2a, 0x00]) || starts(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  // An ISO base media file of an image brand (an MP4 or MOV video has the same box with its own brands).
  if (HEIF_BRANDS.has(ftypBrand(bytes) ?? '')) return 'heif';
  return undefined;
}

/** Whether `bytes` start as a video: Matroska/WebM's EBML header, or an ISO base media file of a video brand. */
export function isVideoBytes(bytes: Buffer): boolean {
  return starts(bytes, [0x1a, 0x45, 0xdf, 0xa3]) || VIDEO_BRANDS.has(ftypBrand(bytes) ?? '');
}

/** What bytes that are not an image look like, for a message: XML (SVG) after what a browser strips, gzip, or unknown. */
export function describeNonImage(bytes: Buffer): string {
  if (starts(bytes, [0x1f, 0x8b])) return 'gzip-compressed data (SVGZ or other)';
  let text = bytes.subarray(0, 256).toString('utf8');
  if (starts(bytes, [0xff, 0xfe]) || starts(bytes, [0xfe, 0xff]))
    text = bytes
      .subarray(2, 512)
      .toString(bytes[0] === 0xff ? 'utf16le' : 'latin1')
      .replace(/\0/g, '');
  if (/^[\s\ufeff\u00a0]*</.test(text)) return 'SVG or other XML/HTML';
  return `of an unknown format (first bytes ${[...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`;
}
