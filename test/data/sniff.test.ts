// The formats `serve` lets through to libvips are told from their bytes: every format sharp writes here
// is recognised as itself, and what is not an image (SVG however dressed, gzip, text) is not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { describeNonImage, imageFormatOf, IMAGE_FORMATS } from '../../src/data/sniff.js';

test('every raster format sharp encodes is recognised from its bytes, as sharp itself reads it', async () => {
  const base = sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } });
  const encoded = {
    jpeg: base.clone().jpeg(),
    png: base.clone().png(),
    webp: base.clone().webp(),
    gif: base.clone().gif(),
    tiff: base.clone().tiff(),
    heif: base.clone().avif(),
  };
  assert.deepEqual(Object.keys(encoded).sort(), [...IMAGE_FORMATS].sort());
  for (const [format, s] of Object.entries(encoded)) {
    const bytes = await s.toBuffer();
    assert.equal(imageFormatOf(bytes), format, format);
    assert.equal((await sharp(bytes).metadata()).format, format, format);
  }
});

test('SVG behind a byte-order mark, spaces, UTF-16 or gzip, and plain text, are not images', () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>';
  for (const bytes of [
    Buffer.from(svg),
    Buffer.from(`\ufeff${svg}`),
    Buffer.from(` \r\n\t\u00a0${svg}`),
    Buffer.from(`\ufeff${svg}`, 'utf16le'),
    Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(svg, 'utf16le').swap16()]),
  ]) {
    assert.equal(imageFormatOf(bytes), undefined);
    assert.equal(describeNonImage(bytes), 'SVG or other XML/HTML');
  }
  assert.equal(imageFormatOf(gzipSync(svg)), undefined);
  assert.match(describeNonImage(gzipSync(svg)), /^gzip/);
  assert.equal(imageFormatOf(Buffer.from('hello')), undefined);
  // An MP4's ftyp box (major brand isom) is no HEIF image.
  const mp4 = Buffer.concat([
    Buffer.from([0, 0, 0, 0x20]),
    Buffer.from('ftypisom\0\0\x02\0isomiso2avc1mp41', 'latin1'),
  ]);
  assert.equal(imageFormatOf(mp4), undefined);
  assert.equal(describeNonImage(Buffer.from('hello')), 'of an unknown format (first bytes 68 65 6c 6c 6f)');
  assert.equal(imageFormatOf(Buffer.alloc(0)), undefined);
});
