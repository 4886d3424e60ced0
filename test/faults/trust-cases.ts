// Files and clients from elsewhere (issue: trust), second half: `vec` indexes and their descriptions,
// kpi.json and KPI targets, per-tag thresholds, hostile HTTP clients of `serve`, a read-only disk.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { tinyModel } from '../helpers.js';
import { buildServer, type ServeOptions } from '../../src/serve/app.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { assertOneLine, data, fault, isRoot, root, run, tmpfs } from './harness.js';

const TAGS = ['red_circle', 'blue_star', 'white_background', 'two_shapes', 'rating:general', 'rating:explicit'];
const model = await tinyModel(path.join(root, 'trust-cases-model.onnx'), TAGS, [0, 0, 0, 4, 9, 9]);
const folder = path.join(root, 'trust-images');
await mkdir(folder);
for (const f of (await readdir(path.join(data, '000'))).filter((x) => /\.(png|jpg|webp)$/.test(x)).slice(0, 8))
  await cp(path.join(data, '000', f), path.join(folder, f));
const vec = path.join(root, 'trust.npy');
assert.equal(run(['vec', folder, '--model', model, '--kind', 'probs', '--out', vec]).code, 0);
const goodNpy = await readFile(vec);
const goodJson = await readFile(`${vec}.json`, 'utf8');

/** A copy of the vec index with its .npy bytes and/or .json changed. */
async function index(
  name: string,
  npy: (b: Buffer) => Buffer,
  json: (j: Record<string, unknown>) => unknown = (j) => j,
): Promise<string> {
  const file = path.join(root, `${name}.npy`);
  await writeFile(file, npy(Buffer.from(goodNpy)));
  await writeFile(`${file}.json`, JSON.stringify(json(JSON.parse(goodJson))));
  return file;
}

/** The .npy header made to say `from` → `to` (same length, so the data stays where it was). */
const header =
  (from: string, to: string) =>
  (b: Buffer): Buffer => {
    const text = b.toString('latin1');
    assert.ok(text.includes(from) && from.length === to.length);
    return Buffer.from(text.replace(from, to), 'latin1');
  };

const firstImage = path.join(folder, (await readdir(folder)).sort()[0]!);
const similar = (file: string): ReturnType<typeof run> => run(['similar', firstImage, '--index', file]);

export function registerTrust(): void {
  fault(
    'a vec index that lies is refused naming the file: Fortran order, a shape larger than the data, a NaN row, big-endian floats',
    async () => {
      const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
        ['fortran', header("'fortran_order': False", "'fortran_order': True "), /Fortran order/],
        ['shape', header("'shape': (8, 6)", "'shape': (9, 6)"), /holds 192 bytes of data for shape \(9, 6\)/],
        ['bigendian', header("'<f4'", "'>f4'"), /dtype is >f4/],
        [
          'nanrow',
          (b) => {
            const out = Buffer.from(b);
            out.writeFloatLE(Number.NaN, out.length - 4 * 6 * 3);
            return out;
          },
          /row 5 holds a NaN or an infinity/,
        ],
      ];
      for (const [name, change, message] of cases) {
        const file = await index(`vec-${name}`, change, ({ npySha256: _drop, ...j }) => j);
        const r = similar(file);
        assert.equal(r.code, 2, `${name}: ${r.err}`);
        assertOneLine(r.err, message);
      }
    },
  );

  fault(
    'a .npy.json that does not describe its .npy (kind, width, or a new .npy beside the old .json) is refused',
    async () => {
      const kind = await index(
        'vec-kind',
        (b) => b,
        (j) => ({ ...j, kind: 'binary' }),
      );
      assertOneLine(similar(kind).err, /Expected binary rows of 1 uint8 values .* but they are 6 float32/);
      const dim = await index(
        'vec-dim',
        (b) => b,
        (j) => ({ ...j, dim: 7, names: undefined }),
      );
      assertOneLine(similar(dim).err, /Expected probs rows of 7 float32 values/);
      // A kill between vec's two renames: the new array beside the old description.
      const mixed = await index('vec-mixed', (b) => {
        const out = Buffer.from(b);
        out.writeFloatLE(0.5, out.length - 4);
        return out;
      });
      const r = similar(mixed);
      assert.equal(r.code, 2);
      assertOneLine(r.err, /to be the array ".*vec-mixed\.npy\.json" describes but it is another/);
    },
  );

  fault(
    'kpi.json edited by hand (short weights, a NaN, no fingerprint) and bad targets (a file twice, one value) are refused',
    async () => {
      const targets = path.join(root, 'kpi-targets.csv');
      const files = (await readdir(folder)).sort();
      await writeFile(targets, `file,value\n${files.map((f, i) => `trust-images/${f},${i % 3}`).join('\n')}\n`);
      const kpi = path.join(root, 'trust-kpi.json');
      const fit = run(['kpi', 'fit', vec, '--target', targets, '--out', kpi, '--folds', '2']);
      assert.equal(fit.code, 0, fit.err);
      const good = JSON.parse(await readFile(kpi, 'utf8'));
      for (const [name, change, message] of [
        [
          'short',
          (k: typeof good) => ({ ...k, fit: { ...k.fit, weights: k.fit.weights.slice(1) } }),
          /fit\.mean are not 5 finite numbers|fit\.weights are not/,
        ],
        ['nan', (k: typeof good) => ({ ...k, fit: { ...k.fit, intercept: 'NaN' } }), /fit\.intercept is not finite/],
        ['nofp', (k: typeof good) => ({ ...k, model: { ...k.model, fingerprint: '' } }), /names no model fingerprint/],
      ] as const) {
        const file = path.join(root, `kpi-${name}.json`);
        await writeFile(file, JSON.stringify(change(good)));
        const r = run(['kpi', 'pred', folder, '--model', model, '--kpi', file]);
        assert.equal(r.code, 2, `${name}: ${r.err}`);
        assertOneLine(r.err, message);
      }
      const twice = path.join(root, 'kpi-twice.csv');
      await writeFile(twice, `file,value\ntrust-images/${files[0]},1\ntrust-images/${files[0]},2\n`);
      assertOneLine(
        run(['kpi', 'fit', vec, '--target', twice, '--out', kpi]).err,
        /"trust-images\/.*" is on rows 2 and 3/,
      );
      const flat = path.join(root, 'kpi-flat.csv');
      await writeFile(flat, `file,value\n${files.map((f) => `trust-images/${f},7`).join('\n')}\n`);
      assertOneLine(
        run(['kpi', 'fit', vec, '--target', flat, '--out', kpi, '--folds', '2']).err,
        /every matched image has the value 7: there is nothing to fit/,
      );
    },
  );

  fault('--thresholds with a tag listed twice and a tag the model lacks: one warning each', async () => {
    const file = path.join(root, 'thresholds.csv');
    await writeFile(file, 'tag,threshold_p_eq_r\nred_circle,0.4\nred_circle,0.5\nno_such_tag,0.3\n');
    const r = run(['pred', folder, '--model', model, '--thresholds', file]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /row 3: "red_circle" is listed again/);
    assert.match(r.err, /row 4: the model has no tag "no_such_tag"/);
  });

  fault(
    'an empty --thresholds file, and a --tag_replacement target holding a newline, are refused naming them',
    async () => {
      for (const body of ['', 'tag,threshold_p_eq_r\n']) {
        const file = path.join(root, 'thresholds-empty.csv');
        await writeFile(file, body);
        const r = run(['pred', folder, '--model', model, '--thresholds', file]);
        assert.equal(r.code, 2, r.err);
        assertOneLine(r.err, /Expected per-tag thresholds .* in ".*thresholds-empty\.csv" but it has none/);
      }
      // sd-scripts' rules read the WD layout: 4 ratings, then general tags.
      const wd = await tinyModel(
        path.join(root, 'trust-wd.onnx'),
        ['general', 'sensitive', 'questionable', 'explicit', 'red_circle', 'blue_star'],
        [9, 9, 9, 9, 0, 0],
      );
      const before = await readdir(folder);
      const r = run([
        'pred',
        folder,
        '--model',
        wd,
        '--format',
        'caption',
        '--caption-style',
        'sd-scripts',
        '--tag_replacement',
        'red_circle,red\ncircle',
      ]);
      assert.equal(r.code, 2, r.err);
      assertOneLine(
        r.err,
        /Expected tags without control characters .* for --tag-replacement but received "red\\ncircle"/,
      );
      assert.deepEqual(await readdir(folder), before, 'no caption written');
    },
  );

  fault(
    'serve: a multipart body over --max-body-mb in many parts is 413 as it arrives; a malformed one 400; SVG 415',
    async () => {
      const o: ServeOptions = {
        name: 'm',
        batch: 4,
        maxWaitMs: 5,
        queue: 16,
        timeoutMs: 5000,
        bodyLimit: 64 << 10,
        maxPixels: 1e6,
      };
      const app = await buildServer(await TaggerModel.load(model), o);
      try {
        const part = (i: number): string =>
          `--B\r\nContent-Disposition: form-data; name="f${i}"; filename="f${i}.png"\r\nContent-Type: image/png\r\n\r\n${'x'.repeat(60 << 10)}\r\n`;
        const body = Array.from({ length: 6 }, (_, i) => part(i)).join('') + '--B--\r\n';
        const big = await app.inject({
          method: 'POST',
          url: '/v1/tag',
          headers: { 'content-type': 'multipart/form-data; boundary=B', 'transfer-encoding': 'chunked' },
          payload: body,
        });
        assert.equal(big.statusCode, 413, big.body);
        assert.match(big.json().error, /at most 65536 bytes/);
        for (const [ct, payload] of [
          ['multipart/form-data', 'no boundary'],
          [
            'multipart/form-data; boundary=B',
            '--B\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n\r\nabc',
          ],
        ] as const) {
          const r = await app.inject({ method: 'POST', url: '/v1/tag', headers: { 'content-type': ct }, payload });
          assert.equal(r.statusCode, 400, `${ct}: ${r.body}`);
          assert.match(r.json().error, /^Expected /);
        }
        const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';
        for (const ct of ['image/svg+xml', 'image/png']) {
          const r = await app.inject({ method: 'POST', url: '/v1/tag', headers: { 'content-type': ct }, payload: svg });
          assert.equal(r.statusCode, 415, `${ct}: ${r.body}`);
        }
      } finally {
        await app.close();
      }
    },
  );

  fault('serve: SIGTERM with a client that sent half its headers exits within seconds', async () => {
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '--model', model, '--port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const url = await new Promise<URL>((resolve) =>
      child.stderr.on(
        'data',
        (d) => ((err += d), /on (http:\/\/\S+);/.test(err) && resolve(new URL(/on (http:\/\/\S+);/.exec(err)![1]!))),
      ),
    );
    const socket = net.connect(Number(url.port), url.hostname);
    await new Promise((r) => socket.on('connect', r));
    socket.write('POST /v1/tag HTTP/1.1\r\nHost: x\r\nContent-Type: ima');
    socket.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    socket.destroy();
    assert.equal(code, 0, err);
    assert.ok(Date.now() - t0 < 10_000, `stopped after ${Date.now() - t0} ms`);
  });

  fault('a read-only disk under a new --out folder is named as read-only, not "no such file"', async () => {
    if (!isRoot) return; // needs a read-only mount
    const dir = path.join(root, 'ro-mount');
    await mkdir(dir);
    tmpfs(dir, 64, true);
    const r = run(['pairs', data, '--tags', path.join(root, 'tags.csv'), '--out', path.join(dir, 'new', 'shards')]);
    assert.equal(r.code, 2);
    assertOneLine(
      r.err,
      /Expected a folder that can be created for --out but ".*ro-mount\/new\/shards" cannot be \(read-only file system\)/,
    );
  });
}
