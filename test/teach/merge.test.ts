// export of a head taught over a tagger: one merged ONNX model. On stand-ins of each contract family
// (WD: NHWC, probabilities, MatMul or Gemm head; JoyTag: NCHW, logits, 1×1 Conv head; weights in an
// external data file) the merged model's base outputs are bit for bit the base model's, its taught
// outputs are the head run alone (onnxruntime on buildHeadGraph) on the embeddings stored in the
// shards, a taught tag named as a base tag replaces that output, and it loads with no flag.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { readShard, readShardIndex } from '../../src/data/shards.js';
import { TaggerModel } from '../../src/model/tagger.js';
import { decodeBatches, listImages } from '../../src/predict/inputs.js';
import { exportState } from '../../src/train/export.js';
import { readRunConfig } from '../../src/train/run-config.js';
import { buildHeadGraph, HEAD_SCORES } from '../../training/graphs.js';
import { io } from '../../training/params.js';
import { readMetadataProps } from '../../src/onnx/proto.js';
import { withMetadataProps } from '../../src/onnx/wire.js';
import { TAUGHT_KEY } from '../../src/model/taught.js';
import { cli, cliSteps, tempDir } from '../helpers.js';
import { captionedSynth, writeBaseTagger, type BaseOptions } from './base-tagger.js';

const root = await tempDir();
const { data, tagsCsv } = await captionedSynth(root, 36, 8, 4);

/** Scores of `model` on every image of `data`, by relative name (a logits model's after the sigmoid, as pred reads them). */
async function scores(model: TaggerModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const k = model.meta.tags.length;
  for await (const b of decodeBatches(listImages([data]), { ...model.preprocess, batch: 5 })) {
    const r = await model.run(b.images, b.files.length);
    b.files.forEach((f, i) => out.set(path.relative(data, f), r.probs.slice(i * k, (i + 1) * k)));
  }
  return out;
}

/** The head alone on the shards' stored embeddings: name → scores (after the sigmoid for a logits base). */
async function headAlone(shards: string, runDir: string, logits: boolean): Promise<Map<string, Float32Array>> {
  const run = await readRunConfig(runDir);
  const { state } = await exportState(runDir, run);
  const session = await ort.InferenceSession.create(buildHeadGraph(run.model, state.params, logits).encode());
  const index = await readShardIndex(shards);
  const d = index.embedding!.width;
  const k = run.model.tags;
  const out = new Map<string, Float32Array>();
  for (const e of index.shards) {
    const s = await readShard(shards, e, index);
    const x = new ort.Tensor('float16', new Uint16Array(s.images.buffer, s.images.byteOffset, s.count * d), [
      s.count,
      d,
    ]);
    const y = (await session.run({ [io.embedding]: x }))[HEAD_SCORES]!.data as Float32Array;
    s.names.forEach((n, i) => {
      const row = y.slice(i * k, (i + 1) * k);
      out.set(n, logits ? row.map((v) => 1 / (1 + Math.exp(-v))) : row);
    });
  }
  await session.release();
  return out;
}

const VARIANTS: [string, BaseOptions][] = [
  ['WD (NHWC, probabilities, MatMul head)', {}],
  ['WD with a Gemm head and external data', { op: 'Gemm', external: true }],
  ['JoyTag (NCHW, logits, 1×1 Conv head)', { family: 'joytag' }],
];

for (const [label, options] of VARIANTS) {
  test(`merged model of a head taught over ${label}: base outputs bit for bit, taught outputs = the head alone on the stored embeddings`, async () => {
    const dir = path.join(root, label.replace(/\W+/g, '-'));
    const base = await writeBaseTagger(path.join(dir, 'base'), options);
    const shards = path.join(dir, 'shards');
    const runDir = path.join(dir, 'run');
    await cliSteps(
      ['pairs', data, '--tags', tagsCsv, '--out', shards, '--backbone', base.file, '--holdout', '0.2'],
      ['train', shards, '--out', runDir, '--hidden', '0', '--rounds', '2', '--batch', '8', '--engine', 'ort'],
    );
    // External weights: the merged model names the base's data file, so it is written beside it.
    const out = options.external ? path.join(dir, 'base', 'merged.onnx') : path.join(dir, 'merged.onnx');
    const r = await cli('export', runDir, '--out', out);
    assert.equal(r.code, 0, r.err.join('\n'));
    const [b, m] = [await TaggerModel.load(base.file), await TaggerModel.load(out)];
    const taught = (await readRunConfig(runDir)).tags.names;
    const replaced = taught.filter((t) => b.meta.tags.includes(t));
    assert.equal(m.meta.tags.length, b.meta.tags.length + taught.length - replaced.length);
    assert.deepEqual(m.meta.tags.slice(0, b.meta.tags.length), b.meta.tags);
    const [bs, ms] = [await scores(b), await scores(m)];
    const alone = await headAlone(shards, runDir, options.family === 'joytag');
    const k = b.meta.tags.length;
    for (const [name, want] of bs) {
      const got = ms.get(name)!;
      const head = alone.get(name)!;
      b.meta.tags.forEach((t, i) => {
        const j = taught.indexOf(t);
        assert.equal(got[i], j >= 0 ? head[j] : want[i], `${name}: ${t}`);
      });
      m.meta.tags.slice(k).forEach((t, i) => assert.equal(got[k + i], head[taught.indexOf(t)], `${name}: taught ${t}`));
    }
    if (options.family === 'joytag') {
      assert.deepEqual(replaced, ['circle']);
      // --keep: circle left out keeps the base's output bit for bit; a new tag left out is not in the model.
      const others = taught.filter((t) => t !== 'circle');
      const kept = path.join(dir, 'kept.onnx');
      const rk = await cli('export', runDir, '--out', kept, '--keep', others.slice(1).join(','));
      assert.equal(rk.code, 0, rk.err.join('\n'));
      const km = await TaggerModel.load(kept);
      assert.deepEqual(km.meta.tags, [...b.meta.tags, ...others.slice(1)]);
      const ks = await scores(km);
      for (const [name, want] of bs) {
        const got = ks.get(name)!;
        b.meta.tags.forEach((t, i) => assert.equal(got[i], want[i], `${name}: base ${t}`));
        others
          .slice(1)
          .forEach((t, i) => assert.equal(got[k + i], alone.get(name)![taught.indexOf(t)], `${name}: ${t}`));
      }
      await km.release();
      assert.match(
        (await readFile(`${kept.replace(/\.onnx$/, '')}.thresholds.csv`, 'utf8')).split('\n').slice(1).join(),
        new RegExp(others[1]!),
      );
      assert.doesNotMatch(await readFile(`${kept.replace(/\.onnx$/, '')}.thresholds.csv`, 'utf8'), /^circle,/m);
      const bad = await cli('export', runDir, '--out', kept, '--keep', 'no_such_tag');
      assert.equal(bad.code, 2);
      assert.match(
        bad.err.at(-1)!,
        /Expected the tags to keep to be some of the run's taught tags .* but "no_such_tag" is not one/,
      );
    }
    assert.match(r.err.join('\n'), replaced.length ? /the taught tag circle replaces the base model's output/ : /^$/);
    await b.release();
    await m.release();
    const only = path.join(dir, 'only-new.onnx');
    assert.equal(
      (await cli('export', runDir, '--out', only, ...(options.external ? ['--base', base.file] : []))).code,
      options.external ? 2 : 0,
    );
    if (!options.external) {
      assert.equal((await cli('export', runDir, '--out', only, '--only-new')).code, 0);
      const o = await TaggerModel.load(only);
      assert.deepEqual(o.meta.tags, taught);
      for (const [name, got] of await scores(o)) assert.deepEqual(got, alone.get(name), name);
      await o.release();
    }
  });
}

test('export refuses a base model other than the one the shards were embedded with, in one line', async () => {
  const dir = path.join(root, 'WD-NHWC-probabilities-MatMul-head-');
  const other = await writeBaseTagger(path.join(root, 'other'), { seed: 99 });
  const r = await cli('export', path.join(dir, 'run'), '--out', path.join(root, 'x.onnx'), '--base', other.file);
  assert.equal(r.code, 2);
  assert.match(
    r.err.at(-1)!,
    /^alt-i2v-ort: Expected the base model the run was taught on \(SHA-256 \w{12}…, the shards' index\.json\) in .* but it has SHA-256 \w{12}…/,
  );
  const base = path.join(dir, 'base', 'model.onnx');
  const before = await readFile(base);
  const over = await cli('export', path.join(dir, 'run'), '--out', base);
  assert.equal(over.code, 2);
  assert.match(
    over.err.at(-1)!,
    /^alt-i2v-ort: Expected --out to name new files, but .* is .*model\.onnx", a file of the base model/,
  );
  assert.deepEqual(await readFile(base), before);
  const tampered = path.join(root, 'tampered.onnx');
  const bytes = await readFile(path.join(dir, 'merged.onnx'));
  const meta = JSON.parse(readMetadataProps(bytes).get(TAUGHT_KEY)!);
  await writeFile(tampered, withMetadataProps(bytes, { [TAUGHT_KEY]: JSON.stringify({ ...meta, taught: 7 }) }));
  const t = await cli('pred', data, '--model', tampered);
  assert.equal(t.code, 2);
  assert.match(t.err.at(-1)!, /Expected taught: a list of the model's tags in the metadata alt_i2v_taught/);
});
