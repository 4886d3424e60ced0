// Animated PNG frames, which libvips does not read (it gives the default image only): the acTL chunk
// found by walking the PNG's chunk headers, the frames decoded and composed (dispose and blend ops,
// as a browser shows them) by UPNG.js; each picked frame goes on as a lossless PNG to the same
// preprocessing as any image.
import UPNG from 'upng-js';
import sharp from 'sharp';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface ApngInfo {
  width: number;
  height: number;
  /** The frame count acTL declares. */
  frames: number;
  /** Each frame's rectangle, from its fcTL chunk header, in file order. */
  rects: { width: number; height: number; x: number; y: number }[];
}

/**
 * The canvas, declared frame count (acTL) and frame rectangles (fcTL) of an APNG, read from the chunk
 * headers without decoding anything; undefined for a still PNG or another file.
 */
export function apngInfo(bytes: Buffer): ApngInfo | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE)) return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  let frames: number | undefined;
  const rects: ApngInfo['rects'] = [];
  // Chunks: length (4), type (4), data, CRC (4); acTL must come before the first IDAT.
  for (let off = 8; off + 12 <= bytes.length;) {
    const length = bytes.readUInt32BE(off);
    const type = bytes.toString('latin1', off + 4, off + 8);
    if (off + 12 + length > bytes.length) break;
    if (type === 'IDAT' && frames === undefined) return undefined;
    if (type === 'acTL' && length === 8) frames = bytes.readUInt32BE(off + 8);
    // fcTL: sequence number, width, height, x offset, y offset, …
    if (type === 'fcTL' && length >= 20) {
      const at = (i: number): number => bytes.readUInt32BE(off + 8 + 4 * i);
      rects.push({ width: at(1), height: at(2), x: at(3), y: at(4) });
    }
    off += 12 + length;
  }
  return frames === undefined ? undefined : { width, height, frames, rects };
}

/**
 * Why the APNG `info` describes may not be decoded under `maxPixels`, or undefined if it may: its
 * frame count as acTL declares it, each frame inside its canvas (as the APNG specification requires),
 * and the canvas times the frames — every frame is composed onto a whole canvas in memory — within the
 * pixel limit. All from the chunk headers, before a byte is inflated.
 */
export function apngRefusal(
  info: ApngInfo,
  maxPixels: number,
): { reason: 'too-large' | 'unreadable'; detail: string } | undefined {
  const { width, height, frames, rects } = info;
  if (rects.length !== frames)
    return { reason: 'unreadable', detail: `its acTL declares ${frames} APNG frames but it holds ${rects.length}` };
  const outside = rects.findIndex((r) => r.x + r.width > width || r.y + r.height > height);
  if (outside >= 0) {
    const r = rects[outside]!;
    return {
      reason: 'unreadable',
      detail: `its APNG frame ${outside + 1} (${r.width}×${r.height} at ${r.x},${r.y}) lies outside its ${width}×${height} canvas`,
    };
  }
  if (width * height * frames > maxPixels)
    return {
      reason: 'too-large',
      detail: `an APNG of ${frames} frames of ${width}×${height}, beyond ${maxPixels} pixels in all`,
    };
  return undefined;
}

/** Frames `picks` (indices into the animation) of the APNG `info` describes, as lossless PNGs. */
export async function apngFrames(
  bytes: Buffer,
  info: { width: number; height: number },
  picks: number[],
): Promise<Buffer[]> {
  const image = UPNG.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  const frames = UPNG.toRGBA8(image);
  return Promise.all(
    picks.map((p) =>
      sharp(Buffer.from(frames[Math.min(p, frames.length - 1)]!), {
        raw: { width: info.width, height: info.height, channels: 4 },
      })
        .png({ compressionLevel: 0 })
        .toBuffer(),
    ),
  );
}
