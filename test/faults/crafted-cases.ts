// Crafted and damaged files: safetensors headers with bad offsets, bit flips caught by the SHA-256,
// damaged or non-finite checkpoints, torn logs, foreign checkpoints, index.json and .npy.json without
// their fields, tag files in odd encodings. Each is refused (or passed over) with one line naming it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/data/safetensors.js';
import { listCheckpoints, readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { readRunConfig } from '../../src/train/run-config.js';
import { assertOneLine, copyOf, data, fault, root, run, shards, tagsCsv, trainArgs } from './harness.js';

/** A safetensors file with the given header object and data bytes. */
function safetensors(header: Record<string, unknown>, dataBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]);
}

/** Replace shard-00000 of a copy of the shards with `bytes`; returns the `eval`-free reader's verdict via train. */
async function withShard(
  name: string,
  bytes: Buffer | ((b: Buffer) => Buffer),
): Promise<{ dir: string; file: string }> {
  const dir = await copyOf(shards, name);
  const file = path.join(dir, 'shard-00000.safetensors');
  await writeFile(file, typeof bytes === 'function' ? bytes(await readFile(file)) : bytes);
  return { dir, file };
}

const trainOn = (dir: string, out: string, extra: string[] = []): ReturnType<typeof run> =>
  run([
    'train',
    dir,
    '--out',
    path.join(root, out),
    '--backbone',
    'vgg16-tiny',
    '--hidden',
    '16',
    '--batch',
    '8',
    '--rounds',
    '4',
    ...extra,
  ]);

const CRAFTED: [string, Record<string, unknown>, number, RegExp][] = [
  [
    'negative offsets',
    { images: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } },
    1,
    /tensor images with data_offsets \[-1,0\] \(expected \[begin, end\], 0 ≤ begin ≤ end\)/,
  ],
  [
    'overlapping offsets',
    { a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] }, b: { dtype: 'U8', shape: [4], data_offsets: [2, 6] } },
    6,
    /tensor b overlapping the one before it/,
  ],
  [
    'a gap between tensors',
    { a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'U8', shape: [2], data_offsets: [4, 6] } },
    6,
    /2 bytes before tensor b that no tensor covers/,
  ],
  [
    'offsets past the end',
    { a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] } },
    4,
    /tensor a ending at byte 8 of a 4-byte data section \(truncated\?\)/,
  ],
  ['an unknown dtype', { a: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }, 1, /tensor a with dtype "Q7"/],
  [
    'a shape that does not fit its bytes',
    { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
    8,
    /tensor a whose 8 bytes do not fit shape \[3\] F32/,
  ],
];

export function registerCrafted(): void {
  for (const [what, header, bytes, message] of CRAFTED) {
    fault(`a shard with ${what} is refused naming the file and the field`, async () => {
      const { dir, file } = await withShard(`crafted-${what.replace(/\W+/g, '-')}`, safetensors(header, bytes));
      const r = trainOn(dir, `crafted-run-${what.replace(/\W+/g, '-')}`);
      assert.equal(r.code, 2, r.err);
      assertOneLine(r.err, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*${message.source}`));
    });
  }

  fault('shard labels outside {0,1} are refused naming image and tag', async () => {
    const { dir, file } = await withShard('labels-2', (b) => {
      const copy = Buffer.from(b);
      copy[copy.length - 1] = 2; // the last label byte
      return copy;
    });
    const r = trainOn(dir, 'labels-run', ['--no-verify']);
    assert.equal(r.code, 2, r.err);
    assertOneLine(
      r.err,
      new RegExp(`Expected labels of 0 or 1 in ".*${path.basename(file)}" but image \\d+, tag \\d+ has 2`),
    );
  });

  fault('a bit flip in a shard is caught by its SHA-256; --no-verify reads it anyway', async () => {
    const { dir, file } = await withShard('bitflip-shard', (b) => {
      const copy = Buffer.from(b);
      copy[copy.length >> 1]! ^= 0x10; // a pixel, in the middle of the images
      return copy;
    });
    const r = trainOn(dir, 'bitflip-run');
    assert.equal(r.code, 2);
    assertOneLine(
      r.err,
      new RegExp(
        `Expected ".*${path.basename(file)}" to have the SHA-256 that index\\.json records .* but its data hashes to .*: the file is damaged`,
      ),
    );
    assert.equal(trainOn(dir, 'bitflip-run-noverify', ['--no-verify', '--rounds', '1']).code, 0);
  });

  fault(
    'index.json without its fields, or with a shard path outside the folder: one line naming the field',
    async () => {
      const dir = await copyOf(shards, 'index-fields');
      const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
      await writeFile(path.join(dir, 'index.json'), JSON.stringify({ ...index, tags: undefined }));
      const a = trainOn(dir, 'index-fields-run');
      assert.equal(a.code, 2);
      assertOneLine(a.err, /Expected a hash string for tags\.sha256 in ".*index\.json"/);
      index.shards[0].file = '../../../etc/passwd';
      await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
      const b = trainOn(dir, 'index-fields-run');
      assertOneLine(b.err, /Expected a name like shard-00000\.safetensors for shards\.0\.file/);
    },
  );

  fault(
    'resume passes over a truncated newest checkpoint with a warning, and continues from the one before',
    async () => {
      const out = path.join(root, 'trunc-ckpt');
      assert.equal(run(trainArgs(out, 2)).code, 0);
      const newest = path.join(out, 'checkpoints', 'round-000002.safetensors');
      const b = await readFile(newest);
      await writeFile(newest, b.subarray(0, b.length >> 1));
      const r = run([...trainArgs(out, 3), '--resume']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /warning: .*round-000002\.safetensors: passed over, .*truncated/);
      assert.match(r.err, /resuming .* from round-000001\.safetensors/);
    },
  );

  fault('a bit flip in a checkpoint is caught by its SHA-256: passed over on resume, refused by export', async () => {
    const out = path.join(root, 'flip-ckpt');
    assert.equal(run(trainArgs(out, 2)).code, 0);
    const newest = path.join(out, 'checkpoints', 'round-000002.safetensors');
    const b = Buffer.from(await readFile(newest));
    b[b.length - 100]! ^= 0x01;
    await writeFile(newest, b);
    const ex = run(['export', out, '--out', path.join(root, 'flip.onnx'), '--checkpoint', newest]);
    assert.equal(ex.code, 2);
    assertOneLine(
      ex.err,
      /round-000002\.safetensors" to have the SHA-256 its metadata records .*: the file is damaged/,
    );
    const r = run([...trainArgs(out, 3), '--resume']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /round-000002\.safetensors: passed over, .*the file is damaged/);
  });

  fault('NaN weights in the newest checkpoint: never exported, passed over on resume', async () => {
    const out = path.join(root, 'nan-ckpt');
    assert.equal(run(trainArgs(out, 1)).code, 0);
    const config = await readRunConfig(out);
    const last = (await listCheckpoints(path.join(out, 'checkpoints'))).at(-1)!;
    const { state } = await readCheckpoint(last.file, config.model);
    state.params.get('fc2.weight')!.fill(Number.NaN);
    await writeCheckpoint(path.join(out, 'checkpoints'), config.model, state, {
      round: 1,
      position: -1,
      tagsSha256: config.tags.sha256,
    });
    const ex = run(['export', out, '--out', path.join(root, 'nan.onnx'), '--checkpoint', last.file]);
    assert.equal(ex.code, 2);
    assertOneLine(
      ex.err,
      /Expected finite weights in ".*round-000001\.safetensors" but fc2\.weight holds NaN or infinite values/,
    );
    assert.ok(!existsSync(path.join(root, 'nan.onnx')));
    const r = run([...trainArgs(out, 2), '--resume']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /round-000001\.safetensors: passed over, fc2\.weight holds NaN or infinite values/);
    assert.match(r.err, /from round-000000\.safetensors/);
  });

  fault('checkpoint metadata of the wrong type (round "abc") is named, not resumed as round NaN', async () => {
    const out = path.join(root, 'abc-ckpt');
    assert.equal(run(trainArgs(out, 1)).code, 0);
    for (const c of await listCheckpoints(path.join(out, 'checkpoints'))) {
      const { header, data: tensors } = await readSafetensors(c.file);
      const specs = Object.fromEntries(
        [...header.tensors].map(([name, t]) => [
          name,
          { dtype: t.dtype, shape: t.shape, chunks: [tensors.get(name)!] },
        ]),
      );
      await writeSafetensors(c.file, specs, { ...header.metadata, round: 'abc' });
    }
    const r = run([...trainArgs(out, 2), '--resume']);
    assert.equal(r.code, 2);
    assert.match(r.err, /passed over, Expected an integer ≥ 0 as metadata round of ".*" but it is "abc"/);
    assertOneLine(r.err, /Expected a usable checkpoint to resume from in .* but none reads with finite weights/);
  });

  fault('a torn last line in log.jsonl is dropped with a warning; the resumed log repeats no step', async () => {
    const out = path.join(root, 'torn-log');
    assert.equal(run(trainArgs(out, 1)).code, 0);
    const log = path.join(out, 'log.jsonl');
    await writeFile(log, `${await readFile(log, 'utf8')}{"type":"step","round":2,"st`);
    const r = run([...trainArgs(out, 2), '--resume']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /warning: .*log\.jsonl: dropped a torn last line/);
    const steps = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'step')
      .map((e) => e.step);
    assert.deepEqual(steps, [...new Set(steps)]);
  });

  fault('export --checkpoint of another run with the same tag count but other tags is refused', async () => {
    const dataB = path.join(root, 'data-b');
    const tagsB = path.join(root, 'tags-b.csv');
    const csv = (await readFile(tagsCsv, 'utf8')).split('\n');
    await writeFile(
      tagsB,
      [
        csv[0],
        ...csv
          .slice(1)
          .filter(Boolean)
          .map((l) => l.replace(/^(\d+),([^,]+)/, '$1,x_$2')),
      ].join('\n') + '\n',
    );
    assert.ok(!existsSync(dataB));
    const a = path.join(root, 'export-run');
    if (!existsSync(a)) assert.equal(run(trainArgs(a, 1)).code, 0);
    const b = path.join(root, 'other-tags-run');
    assert.equal(run(trainArgs(b, 1)).code, 0);
    const config = await readRunConfig(b);
    await writeFile(
      path.join(b, 'config.json'),
      JSON.stringify({ ...config, tags: { ...config.tags, sha256: 'f'.repeat(64) } }),
    );
    const ck = (await listCheckpoints(path.join(a, 'checkpoints'))).at(-1)!.file;
    const r = run(['export', b, '--out', path.join(root, 'foreign.onnx'), '--checkpoint', ck]);
    assert.equal(r.code, 2);
    assertOneLine(
      r.err,
      /Expected a checkpoint of this run's tags in .* but it was trained with another tags\.csv .*: its outputs would get the wrong tag names/,
    );
  });

  fault('.npy.json without its files list: one line naming it', async () => {
    const idx = path.join(root, 'vec.npy');
    await writeFile(
      idx,
      Buffer.from(
        '\x93NUMPY\x01\x00v\x00' + "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }".padEnd(117) + '\n',
        'latin1',
      ),
    );
    await writeFile(`${idx}.json`, JSON.stringify({ format: 'alt-i2v-ort/vec', kind: 'probs' }));
    const img = path.join(
      data,
      '000',
      (await readdir(path.join(data, '000'))).find((f) => /\.(png|jpg)$/.test(f))!,
    );
    const r = run(['similar', img, '--index', idx]);
    assert.equal(r.code, 2);
    assertOneLine(
      r.err,
      /Expected a vec index description in ".*vec\.npy\.json" but its files are not a list of paths/,
    );
  });

  registerTagFiles();
}

function registerTagFiles(): void {
  const make = async (name: string, files: Record<string, Buffer | string>): Promise<string> => {
    const dir = path.join(root, name);
    await mkdir(dir, { recursive: true });
    const png = await readFile(
      path.join(
        data,
        '000',
        (await readdir(path.join(data, '000'))).find((f) => f.endsWith('.png'))!,
      ),
    );
    for (const [f, content] of Object.entries(files)) {
      await writeFile(path.join(dir, `${f}.png`), png);
      if (content !== '') await writeFile(path.join(dir, `${f}.txt`), content);
    }
    return dir;
  };
  fault(
    'tag files: UTF-16 with a BOM is decoded; invalid UTF-8, NUL bytes and a 1 MB line are warned about, not counted',
    async () => {
      const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('smile, long hair', 'utf16le')]);
      const dir = await make('tagfiles', {
        a: utf16,
        b: Buffer.from([0x61, 0x62, 0xff, 0xfe, 0x20, 0x63]),
        c: 'tag_one\u0000tag_two',
        d: `ok_tag ${'x'.repeat(1_000_000)}`,
        e: 'smile',
      });
      const out = path.join(root, 'tagfiles.csv');
      const r = run(['tags', dir, '--out', out, '--min-count', '1']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /b\.txt: skipped, it is not valid UTF-8/);
      assert.match(r.err, /c\.txt: skipped, it holds a control character \(U\+0000\)/);
      assert.match(r.err, /d\.txt: tag of 1000000 characters left out \(over 200\)/);
      const names = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',')[1])
        .sort();
      assert.deepEqual(names, ['long_hair', 'ok_tag', 'smile']);
      const counts = Object.fromEntries(
        (await readFile(out, 'utf8'))
          .trim()
          .split('\n')
          .slice(1)
          .map((l) => [l.split(',')[1], Number(l.split(',')[3])]),
      );
      assert.equal(counts.smile, 2, 'the UTF-16 file counts');
    },
  );

  fault('a dangling symlink as a tag file is a warning in tags and a skip in pairs, not an abort', async () => {
    const dir = await make('dangling', { a: 'smile', b: '' });
    await symlink(path.join(root, 'nowhere.txt'), path.join(dir, 'b.txt'));
    const out = path.join(root, 'dangling.csv');
    const r = run(['tags', dir, '--out', out, '--min-count', '1']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /b\.txt: skipped, it cannot be read \(no such file or folder\)/);
    const p = run([
      'pairs',
      dir,
      '--tags',
      out,
      '--out',
      path.join(root, 'dangling-shards'),
      '--size',
      '32',
      '--holdout',
      '0',
    ]);
    assert.equal(p.code, 0, p.err);
    assert.match(p.err, /b\.png: skipped, bad-tag-file/);
  });
}
