// Full disks, read-only disks, second writers, stale locks, symlinks and bad paths: each gets exit code
// and one line naming the file, and leaves no partial file under a final name.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsHeader } from '../../src/data/safetensors.js';
import { LOCK_NAME } from '../../src/util/lock.js';
import {
  assertOneLine,
  assertSameFiles,
  copyOf,
  data,
  DISK_FULL,
  fault,
  isRoot,
  root,
  run,
  shards,
  snapshot,
  tagsCsv,
  tmpfs,
  trainArgs,
} from './harness.js';

/** A folder where writes fail as on a full disk: a tiny tmpfs as root, else ENOSPC injected for `match`. */
async function fullDisk(name: string, kib: number): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  if (isRoot) tmpfs(dir, kib);
  return { dir, env: {} };
}
const inject = (match: string): Record<string, string> => (isRoot ? {} : { ALT_I2V_FAULT_ENOSPC: match });

/** No file under a final name is partial: every checkpoint of the run reads whole. */
async function noFinalPartials(runDir: string): Promise<void> {
  const dir = path.join(runDir, 'checkpoints');
  for (const f of await readdir(dir)) if (f.endsWith('.safetensors')) await readSafetensorsHeader(path.join(dir, f));
}

export function registerDisk(): void {
  fault(
    `disk full during train (${DISK_FULL}): exit 1, one line naming the file, the previous checkpoint resumes elsewhere`,
    async () => {
      const { dir } = await fullDisk('full-train', 1200);
      const out = path.join(dir, 'run');
      const r = run(trainArgs(out, 40), inject('round-000002'));
      assert.equal(r.code, 1, r.err);
      assertOneLine(
        r.err,
        // Whichever of the run's files the disk fills on: a checkpoint, or the curves beside them.
        /cannot write ".*\/run\/(checkpoints\/round-0000\d\d\.safetensors|curves\.svg)" \(no space left on the device\)|"\S+" cannot be accessed \(no space left on the device\)/,
      );
      const files = await readdir(path.join(out, 'checkpoints'));
      assert.ok(
        files.every((f) => !f.endsWith('.tmp')),
        `no temp files left: ${files}`,
      );
      await noFinalPartials(out);
      const moved = await copyOf(out, 'full-train-moved');
      const resumed = run([...trainArgs(moved, 3), '--resume']);
      assert.equal(resumed.code, 0, resumed.err);
      await noFinalPartials(moved);
    },
  );

  fault(
    `disk full during pairs (${DISK_FULL}): exit 1 naming the shard, no truncated shard; re-run with space ends identical`,
    async () => {
      const { dir } = await fullDisk('full-pairs', 300);
      const out = path.join(dir, 'shards');
      const args = [
        'pairs',
        data,
        '--tags',
        tagsCsv,
        '--out',
        out,
        '--size',
        '32',
        '--shard-size',
        '40',
        '--holdout',
        '0.15',
      ];
      const r = run(args, inject('shard-00003'));
      assert.equal(r.code, 1, r.err);
      assertOneLine(r.err, /cannot write ".*(shard-\d+\.safetensors|index\.json)" \(no space left on the device\)/);
      const moved = await copyOf(out, 'full-pairs-moved');
      const again = run([...args.slice(0, 5), moved, ...args.slice(6)]);
      assert.equal(again.code, 0, again.err);
      assertSameFiles(await snapshot(moved), await snapshot(shards), 'pairs resumed after a full disk');
    },
  );

  fault(`disk full during export (${DISK_FULL}): exit 1, no model file under its name`, async () => {
    const runDir = path.join(root, 'export-run');
    assert.equal(run(trainArgs(runDir, 1)).code, 0);
    const { dir } = await fullDisk('full-export', 64);
    await writeFile(path.join(dir, 'filler'), Buffer.alloc(isRoot ? 60 * 1024 : 1));
    const r = run(['export', runDir, '--out', path.join(dir, 'model.onnx')], inject('model.onnx'));
    assert.equal(r.code, 1, r.err);
    assertOneLine(r.err, /cannot write ".*model\.onnx" \(no space left on the device\)/);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f !== 'filler'),
      [],
    );
  });

  fault(
    'injected write failure of a checkpoint (any user): exit 1 naming it, the run resumes from the one before',
    async () => {
      const out = path.join(root, 'inject-train');
      const r = run(trainArgs(out, 3), { ALT_I2V_FAULT_ENOSPC: 'round-000002' });
      assert.equal(r.code, 1);
      assertOneLine(r.err, /cannot write ".*round-000002\.safetensors" \(no space left on the device\)/);
      assert.ok(!existsSync(path.join(out, 'checkpoints', 'round-000002.safetensors')));
      const resumed = run([...trainArgs(out, 3), '--resume']);
      assert.equal(resumed.code, 0, resumed.err);
      assert.match(resumed.err, /resuming .* from round-000001\.safetensors/);
    },
  );

  fault('a read-only output disk: exit 1 (EROFS) or 2, one line naming the folder', async () => {
    const dir = path.join(root, 'readonly');
    await mkdir(dir);
    if (isRoot) tmpfs(dir, 64, true);
    else await import('node:fs/promises').then((fs) => fs.chmod(dir, 0o555));
    const r = run(['tags', data, '--out', path.join(dir, 'tags.csv')]);
    assert.ok(r.code === 1 || r.code === 2, r.err);
    assertOneLine(r.err, /".*readonly.*" .*\((read-only file system|permission denied)\)/);
  });

  fault('two train processes on one --out: the second exits 2 naming the holder', async () => {
    const out = path.join(root, 'two-writers');
    await mkdir(out);
    await writeFile(
      path.join(out, LOCK_NAME),
      JSON.stringify({
        pid: process.pid,
        host: (await import('node:os')).hostname(),
        started: '2026-01-01T00:00:00Z',
        command: 'alt-i2v-ort train (pid 1)',
      }),
    );
    const r = run(trainArgs(out, 1));
    assert.equal(r.code, 2);
    assertOneLine(
      r.err,
      new RegExp(
        `Expected no other writer in ".*two-writers" but alt-i2v-ort train \\(pid 1\\) \\(pid ${process.pid} on .*\\) holds \\.alt-i2v-ort\\.lock`,
      ),
    );
    assert.deepEqual(await readdir(out), [LOCK_NAME], 'nothing else written');
  });

  fault("two pairs processes on one --out: the second exits 2, the first one's files untouched", async () => {
    const out = await copyOf(shards, 'two-pairs');
    await writeFile(
      path.join(out, LOCK_NAME),
      JSON.stringify({
        pid: process.pid,
        host: (await import('node:os')).hostname(),
        started: 'now',
        command: 'alt-i2v-ort pairs (pid 1)',
      }),
    );
    const before = await snapshot(out);
    const r = run([
      'pairs',
      data,
      '--tags',
      tagsCsv,
      '--out',
      out,
      '--size',
      '32',
      '--shard-size',
      '40',
      '--holdout',
      '0.15',
    ]);
    assert.equal(r.code, 2);
    assertOneLine(r.err, /Expected no other writer in .* holds \.alt-i2v-ort\.lock/);
    assertSameFiles(await snapshot(out), before, 'pairs refused');
  });

  fault('a stale lock (its process is gone) is taken over with a warning', async () => {
    const out = path.join(root, 'stale-lock');
    await mkdir(out);
    await writeFile(
      path.join(out, LOCK_NAME),
      JSON.stringify({
        pid: 2 ** 22 + 12345,
        host: (await import('node:os')).hostname(),
        started: 'then',
        command: 'alt-i2v-ort train (pid 9)',
      }),
    );
    const r = run(trainArgs(out, 1));
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.err,
      /warning: .*\.alt-i2v-ort\.lock: taking over the lock of pid \d+ \(alt-i2v-ort train \(pid 9\), since then\), which no longer runs/,
    );
    assert.ok(!existsSync(path.join(out, LOCK_NAME)), 'released at the end');
  });

  fault('a torn lock file (a writer died while writing it) is taken over', async () => {
    const out = await copyOf(shards, 'torn-lock');
    await writeFile(path.join(out, LOCK_NAME), '{"pid": 12');
    const r = run([
      'pairs',
      data,
      '--tags',
      tagsCsv,
      '--out',
      out,
      '--size',
      '32',
      '--shard-size',
      '40',
      '--holdout',
      '0.15',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /taking over the lock of a writer that died while taking it/);
  });

  fault('pairs never deletes a *.tmp file it did not create', async () => {
    const out = await copyOf(shards, 'foreign-tmp');
    await writeFile(path.join(out, 'notes.tmp'), 'mine');
    await writeFile(path.join(out, 'shard-00001.safetensors.tmp'), 'also mine');
    assert.equal(
      run(['pairs', data, '--tags', tagsCsv, '--out', out, '--size', '32', '--shard-size', '40', '--holdout', '0.15'])
        .code,
      0,
    );
    assert.equal(await readFile(path.join(out, 'notes.tmp'), 'utf8'), 'mine');
    assert.equal(await readFile(path.join(out, 'shard-00001.safetensors.tmp'), 'utf8'), 'also mine');
  });

  fault('a kill before a new run existed: --resume says so, and the same command starts it again', async () => {
    const out = path.join(root, 'early-kill');
    await mkdir(path.join(out, 'checkpoints'), { recursive: true });
    await mkdir(path.join(out, 'artifacts'));
    await writeFile(path.join(out, 'artifacts', 'train.onnx'), 'half');
    const resume = run([...trainArgs(out, 1), '--resume']);
    assert.equal(resume.code, 2);
    assertOneLine(
      resume.err,
      /has no config\.json \(its start was interrupted before it was complete: run the same command without --resume to start it again\)/,
    );
    const fresh = run(trainArgs(out, 1));
    assert.equal(fresh.code, 0, fresh.err);
  });

  fault('a start that fails (CUDA on the ort engine) leaves no run folder behind', async () => {
    const out = path.join(root, 'failed-start');
    const r = run([...trainArgs(out, 1), '--engine', 'ort', '--device', 'cuda']);
    assert.equal(r.code, 2);
    assertOneLine(r.err, /Expected --engine native \(or auto\) for --device cuda/);
    assert.ok(!existsSync(out));
  });

  fault(
    '--out under a file, a missing parent of export --out, a folder as --tags: one line naming the path',
    async () => {
      const file = path.join(root, 'plain-file');
      await writeFile(file, 'x');
      const a = run(['pairs', data, '--tags', tagsCsv, '--out', path.join(file, 'shards'), '--size', '32']);
      assert.equal(a.code, 2);
      assertOneLine(a.err, /".*plain-file\/shards" cannot be \(a part of its path is not a folder\)/);
      const runDir = path.join(root, 'export-run');
      const b = run(['export', runDir, '--out', path.join(root, 'no', 'such', 'model.onnx')]);
      assert.ok(b.code === 1 || b.code === 2);
      assertOneLine(b.err, /".*no\/such\/model\.onnx" \(no such file or folder\)/);
      const c = run(['pairs', data, '--tags', data, '--out', path.join(root, 'x-shards'), '--size', '32']);
      assert.equal(c.code, 2);
      assertOneLine(c.err, /Expected a tags\.csv file for --tags but ".*data" cannot be read \(it is a folder\)/);
    },
  );

  fault('similar with a folder as the query is a usage error', async () => {
    const r = run(['similar', data, '--index', path.join(root, 'none.npy')]);
    assert.equal(r.code, 2);
    assertOneLine(r.err, /Expected one image file for QUERY but ".*data" is a folder/);
  });

  fault('pairs --size that train would refuse is refused by pairs', async () => {
    const r = run(['pairs', data, '--tags', tagsCsv, '--out', path.join(root, 'bad-size'), '--size', '100']);
    assert.equal(r.code, 2);
    assertOneLine(r.err, /Expected a multiple of 32 for --size \(VGG16 halves the image 5 times\) but received 100/);
    assert.ok(!existsSync(path.join(root, 'bad-size')));
  });

  fault('captions: --overwrite through a symlink to an existing file leaves that file alone', async () => {
    const dir = path.join(root, 'caption-link');
    await cp(path.join(data, '000'), dir, { recursive: true, filter: (f) => !f.endsWith('.txt') });
    const img = (await readdir(dir)).find((f) => /\.(png|jpg)$/.test(f))!;
    const victim = path.join(root, 'victim.txt');
    await writeFile(victim, 'precious');
    await symlink(victim, path.join(dir, img.replace(/\.\w+$/, '.txt')));
    const runDir = path.join(root, 'export-run');
    const model = path.join(root, 'caption-model.onnx');
    assert.equal(run(['export', runDir, '--out', model]).code, 0);
    const r = run(['pred', path.join(dir, img), '--model', model, '--format', 'caption', '--overwrite']);
    assert.equal(r.code, 1);
    assert.match(r.err, /is a symbolic link; not written through/);
    assert.equal(await readFile(victim, 'utf8'), 'precious');
  });
}
