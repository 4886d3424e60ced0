// What comes from elsewhere (issue: trust): captions that must never destroy an image or another
// caption, models whose metadata or outputs lie, vec indexes and KPI files edited by hand, `--part` on
// two mount points, hostile HTTP clients, a read-only disk. Each is refused with one line naming it,
// or handled without loss.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { gradcheckConfig, randomParams } from '../../training/gradcheck.js';
import { decodeModel, encodeModel } from '../../src/onnx/proto.js';
import { PARAM } from '../../training/params.js';
import { assertOneLine, data, fault, root, run } from './harness.js';

const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'rating:explicit'];
const CATS = [0, 0, 0, 4, 9, 9];
const config = gradcheckConfig({ tags: TAGS.length, hidden: 12 });
const modelBytes = (params = randomParams(config, 3), tags = TAGS): Uint8Array =>
  encodeInferenceModel(config, params, { tags, categories: CATS, pad: 'center', source: 'test' });
const model = path.join(root, 'foreign-cases-model.onnx');
await writeFile(model, modelBytes());

/** A model file whose metadata fields are replaced by `fields`. */
async function withMetadata(name: string, fields: Record<string, string>): Promise<string> {
  const m = decodeModel(modelBytes());
  m.metadata_props = m.metadata_props!.map((p) => (p.key in fields ? { key: p.key, value: fields[p.key]! } : p));
  const file = path.join(root, name);
  await writeFile(file, encodeModel(m));
  return file;
}

/** A folder of the first `n` synth images (no tag files). */
async function images(name: string, n = 2): Promise<{ dir: string; files: string[] }> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  const src = (await readdir(path.join(data, '000'))).filter((f) => /\.(png|jpg|webp)$/.test(f)).slice(0, n);
  for (const f of src) await cp(path.join(data, '000', f), path.join(dir, f));
  return { dir, files: src.map((f) => path.join(dir, f)) };
}

const caption = (...args: string[]): ReturnType<typeof run> =>
  run(['pred', ...args, '--model', model, '--format', 'caption']);

export function registerForeign(): void {
  fault(
    'captions: an image extension for --caption-ext (.png, .JPG) is refused before anything is written',
    async () => {
      const { dir, files } = await images('cap-ext');
      const before = await Promise.all(files.map((f) => readFile(f)));
      for (const [ext, extra] of [
        ['.png', '--append'],
        ['.JPG', '--overwrite'],
        ['.x.webp', '--overwrite'],
      ] as const) {
        const r = caption(dir, '--caption-ext', ext, extra);
        assert.equal(r.code, 2, r.err);
        assertOneLine(
          r.err,
          new RegExp(
            `Expected a text extension for --caption-ext but received "${ext.replace('.', '\\.')}", an image extension`,
          ),
        );
      }
      for (const [i, f] of files.entries()) assert.ok((await readFile(f)).equals(before[i]!), `${f} untouched`);
    },
  );

  fault(
    'captions: x.png and x.jpg in one folder each get their own caption (x.png.txt, x.jpg.txt), with a warning',
    async () => {
      const { dir, files } = await images('cap-collide', 1);
      const png = path.join(dir, 'x.png');
      await cp(files[0]!, png);
      await cp(files[0]!, path.join(dir, 'x.jpg'));
      const r = caption(png, path.join(dir, 'x.jpg'));
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.err,
        /x\.png and .*x\.jpg would share the caption .*x\.txt; each gets its own \(x\.png\.txt, x\.jpg\.txt\)/,
      );
      assert.ok(existsSync(path.join(dir, 'x.png.txt')) && existsSync(path.join(dir, 'x.jpg.txt')));
      assert.ok(!existsSync(path.join(dir, 'x.txt')));
    },
  );

  fault(
    'captions: --append keeps a UTF-16 caption UTF-16 (BOM and all); bytes in no encoding are left alone, exit 1',
    async () => {
      const { dir, files } = await images('cap-utf16', 2);
      const utf16 = files[0]!.replace(/\.\w+$/, '.txt');
      await writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('keep me, ünïcode', 'utf16le')]));
      const junk = files[1]!.replace(/\.\w+$/, '.txt');
      const junkBytes = Buffer.from([0x6b, 0xff, 0xfe, 0xfd, 0x00, 0x80]);
      await writeFile(junk, junkBytes);
      const r = caption(dir, '--append', '--threshold', '0');
      assert.equal(r.code, 1, r.err);
      const bytes = await readFile(utf16);
      assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe]);
      const text = bytes.subarray(2).toString('utf16le');
      assert.match(text, /^keep me, ünïcode, /);
      assert.ok(!text.includes('\uFFFD') && !text.includes('\0'));
      assert.ok((await readFile(junk)).equals(junkBytes));
      assert.match(r.err, /is not valid UTF-8 \(or UTF-16 with a byte-order mark\); left as it is/);
    },
  );

  fault('captions: --overwrite keeps the mode of the caption it replaces (0600 stays 0600)', async () => {
    const { dir, files } = await images('cap-mode', 1);
    const txt = files[0]!.replace(/\.\w+$/, '.txt');
    await writeFile(txt, 'old');
    await chmod(txt, 0o600);
    assert.equal(caption(dir, '--overwrite', '--threshold', '0').code, 0);
    assert.equal((await stat(txt)).mode & 0o777, 0o600);
    assert.notEqual(await readFile(txt, 'utf8'), 'old');
  });

  fault('captions: --frequency into a missing folder fails before any image is tagged', async () => {
    const { dir, files } = await images('cap-freq', 1);
    const r = caption(dir, '--frequency', path.join(root, 'no-such-folder', 'freq.csv'));
    assert.equal(r.code, 2, r.err);
    assertOneLine(
      r.err,
      /Expected a file in an existing folder for --frequency but ".*no-such-folder" cannot be used \(no such file or folder\)/,
    );
    assert.ok(!existsSync(files[0]!.replace(/\.\w+$/, '.txt')), 'no caption written');
  });

  fault('a symlinked subfolder is followed like the top folder, and a link loop ends', async () => {
    const { dir } = await images('walk-top', 1);
    const other = await images('walk-linked', 1);
    await symlink(other.dir, path.join(dir, 'linked'));
    await symlink(dir, path.join(dir, 'loop'));
    const r = run(['pred', dir, '--model', model, '--format', 'jsonl']);
    assert.equal(r.code, 0, r.err);
    const files = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).file as string);
    assert.equal(files.length, 2, `${files}`);
    assert.ok(files.some((f) => f.includes(`${path.sep}linked${path.sep}`)));
  });

  fault(
    'captions: a folder link leading out of the folder given is refused before any caption is written, naming where',
    async () => {
      const { dir, files } = await images('cap-link-top', 1);
      const outside = await images('cap-link-outside', 1);
      await symlink(outside.dir, path.join(dir, 'linked'));
      const r = caption(dir);
      assert.equal(r.code, 2, r.err);
      assertOneLine(
        r.err,
        new RegExp(
          `Expected every caption inside the folder given, but the caption of ".*linked.*" would be written in ".*cap-link-outside", outside ".*cap-link-top"`,
        ),
      );
      for (const f of [...files, ...outside.files])
        assert.ok(!existsSync(f.replace(/\.\w+$/, '.txt')), `no caption beside ${f}`);
      // The linked folder given itself is captioned as usual; a link inside the folder given is fine.
      assert.equal(caption(outside.dir).code, 0);
      await symlink(path.join(dir, files[0]!.split(path.sep).at(-1)!), path.join(dir, 'alias.png'));
      assert.equal(caption(dir, '--overwrite').code, 2, 'still refused for the folder link');
    },
  );

  fault('--part I/N agrees across mount points: the same folder under two paths splits alike', async () => {
    const { dir } = await images('part-a', 6);
    const alias = path.join(root, 'part-alias');
    await symlink(dir, alias);
    const names = (args: string[]): string[] =>
      run(['pred', ...args, '--model', model, '--format', 'jsonl', '--part', '1/2'])
        .out.trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => path.basename(JSON.parse(l).file));
    assert.deepEqual(names([dir]), names([alias]));
  });

  fault(
    'a model whose metadata names 3 tags fewer than its outputs is refused at load, naming both numbers',
    async () => {
      const file = await withMetadata('short-tags.onnx', {
        tags: JSON.stringify(TAGS.slice(3)),
        categories: JSON.stringify(CATS.slice(3)),
      });
      const { dir } = await images('short-tags', 1);
      const r = run(['pred', dir, '--model', file]);
      assert.equal(r.code, 2, r.err);
      assertOneLine(r.err, /to have 3 tags in its metadata for its probs output's 6 values/);
    },
  );

  fault(
    'a malformed metadata field (categories not a list, a tag with a control character) is a usage error naming it',
    async () => {
      const { dir } = await images('bad-meta', 1);
      for (const [key, value, message] of [
        ['categories', '{"0":1}', /in the metadata field categories of ".*bad-categories\.onnx"/],
        ['image_size', '33', /a multiple of 32 in the metadata field image_size/],
        [
          'tags',
          JSON.stringify(['a', 'b\u001b[31m', 'c', 'd', 'e', 'f']),
          /without control characters .* row 2 holds U\+001B/,
        ],
      ] as const) {
        const file = await withMetadata(`bad-${key}.onnx`, { [key]: value });
        const r = run(['pred', dir, '--model', file]);
        assert.equal(r.code, 2, r.err);
        assertOneLine(r.err, message);
        assert.ok(!r.err.includes('internal error') && !r.err.includes('\u001b'), r.err);
      }
    },
  );

  fault('a model that gives NaN: each image is an error (exit 1), never prob=NaN, never a caption', async () => {
    const params = randomParams(config, 3);
    params.get(PARAM.fc2Bias)!.fill(Number.NaN);
    const file = path.join(root, 'nan-model.onnx');
    await writeFile(file, modelBytes(params));
    const { dir, files } = await images('nan-captions', 2);
    const txt = files[0]!.replace(/\.\w+$/, '.txt');
    await writeFile(txt, 'keep me');
    const text = run(['pred', dir, '--model', file]);
    assert.equal(text.code, 1);
    assert.doesNotMatch(text.out, /NaN/);
    assert.match(text.err, /non-finite scores \(NaN or infinity\)/);
    const cap = run(['pred', dir, '--model', file, '--format', 'caption', '--overwrite']);
    assert.equal(cap.code, 1);
    assert.equal(await readFile(txt, 'utf8'), 'keep me');
  });
}
