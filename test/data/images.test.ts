import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { ImageError, preprocessImage, type PreprocessOptions } from '../../src/data/images.js';
import { near, pixel, solid } from '../helpers.js';

const S = 32;
const opts: PreprocessOptions = { size: S, pad: 'center', maxPixels: 10_000_000 };
const RED: [number, number, number] = [220, 20, 20];

async function rejects(input: Buffer, reason: string): Promise<void> {
  await assert.rejects(preprocessImage(input, 'in.img', opts), (e: unknown) => {
    assert.ok(e instanceof ImageError, String(e));
    assert.equal(e.reason, reason, e.message);
    assert.match(e.message, /^in\.img: /);
    return true;
  });
}

test('letterboxes a wide image centred, black bars above and below', async () => {
  const out = await preprocessImage(await solid(64, 32, RED).png().toBuffer(), 'wide.png', opts);
  assert.equal(out.length, S * S * 3);
  assert.deepEqual(pixel(out, S, 16, 2), [0, 0, 0]);
  assert.ok(near(pixel(out, S, 16, 16), RED));
  assert.deepEqual(pixel(out, S, 16, 30), [0, 0, 0]);
});

test('--pad topleft puts the image at the top-left like the seed', async () => {
  const out = await preprocessImage(await solid(32, 64, RED).png().toBuffer(), 'tall.png', { ...opts, pad: 'topleft' });
  assert.ok(near(pixel(out, S, 2, 16), RED));
  assert.deepEqual(pixel(out, S, 30, 16), [0, 0, 0]);
});

test('flattens a PNG alpha channel onto black', async () => {
  const png = await sharp({
    create: { width: 16, height: 16, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 0 } },
  })
    .png()
    .toBuffer();
  const out = await preprocessImage(png, 'alpha.png', opts);
  assert.deepEqual(pixel(out, S, 16, 16), [0, 0, 0]);
});

test('grayscale, CMYK JPEG and 16-bit PNG all come out as 8-bit sRGB', async () => {
  const gray = await solid(16, 16, [128, 128, 128]).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(gray).metadata()).channels, 1);
  assert.ok(near(pixel(await preprocessImage(gray, 'gray.png', opts), S, 16, 16), [128, 128, 128], 3));

  const cmyk = await solid(16, 16, [255, 128, 0]).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  assert.ok(near(pixel(await preprocessImage(cmyk, 'cmyk.jpg', opts), S, 16, 16), [255, 128, 0], 30));

  const deep = await solid(16, 16, [200, 100, 50]).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(deep).metadata()).depth, 'ushort');
  assert.ok(near(pixel(await preprocessImage(deep, 'deep.png', opts), S, 16, 16), [200, 100, 50], 2));
});

test('an animated GIF gives its first frame', async () => {
  const red = await solid(16, 16, [255, 0, 0]).png().toBuffer();
  const blue = await solid(16, 16, [0, 0, 255]).png().toBuffer();
  const gif = await sharp([red, blue], { join: { animated: true } })
    .gif()
    .toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  assert.ok(near(pixel(await preprocessImage(gif, 'anim.gif', opts), S, 16, 16), [255, 0, 0], 20));
});

test('applies EXIF orientation before letterboxing', async () => {
  // 40×20 stored, left half red, right half blue; orientation 6 = rotate 90° clockwise to display.
  const raw = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  const jpg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const out = await preprocessImage(jpg, 'rotated.jpg', opts);
  assert.ok(near(pixel(out, S, 16, 6), [255, 0, 0], 40), `top ${pixel(out, S, 16, 6)}`);
  assert.ok(near(pixel(out, S, 16, 26), [0, 0, 255], 40), `bottom ${pixel(out, S, 16, 26)}`);
  assert.deepEqual(pixel(out, S, 2, 16), [0, 0, 0]);
});

test('rejects a zero-byte file as not an image', () => rejects(Buffer.alloc(0), 'not-an-image'));

test('rejects random bytes named .jpg as not an image', () =>
  rejects(Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) % 251)), 'not-an-image'));

test('rejects a truncated JPEG', async () => {
  const jpg = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 31) % 256)), {
    raw: { width: 64, height: 64, channels: 3 },
  })
    .jpeg()
    .toBuffer();
  await rejects(jpg.subarray(0, Math.floor(jpg.length / 2)), 'truncated');
});

test('rejects huge declared dimensions (decompression bomb) without decoding', async () => {
  // A valid 16×16 JPEG whose SOF header is patched to declare 60000×60000.
  const jpg = Buffer.from(await solid(16, 16, RED).jpeg().toBuffer());
  let i = 2;
  while (!(jpg[i] === 0xff && jpg[i + 1] === 0xc0)) i += 2 + jpg.readUInt16BE(i + 2);
  jpg.writeUInt16BE(60000, i + 5);
  jpg.writeUInt16BE(60000, i + 7);
  await rejects(jpg, 'too-large');
});
