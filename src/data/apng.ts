// Animated PNG frames, which libvips does not read (it gives the default image only): the acTL chunk
// found by walking the PNG's chunk headers, the frames decoded and composed (dispose and blend ops,
// as a browser shows them) by UPNG.js; each picked frame goes on as a lossless PNG to the same
// preprocessing as any image.
import UPNG from 'upng-js';
import sharp from 'sharp';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The size and animation frame count (acTL) of an APNG; undefined for a still PNG or another file. */
export function apngInfo(bytes: Buffer): { width: number; height: number; frames: number } | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE)) return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  // Chunks: length (4), type (4), data, CRC (4); acTL must come before the first IDAT.
  for (let off = 8; off + 12 <= bytes.length;) {
    const length = bytes.readUInt32BE(off);
    const type = bytes.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT' || off + 12 + length > bytes.length) return undefined;
    if (type === 'acTL' && length === 8) return { width, height, frames: bytes.readUInt32BE(off + 8) };
    off += 12 + length;
  }
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
