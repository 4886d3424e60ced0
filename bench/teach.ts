// `npm run bench -- teach`: teaching tags a base model was trained without (issue 41, item 5). On synth
// data, a tiny VGG16 base trained on every tag but TAUGHT; then those 20 tags taught from 5, 10, 20, 50
// and 100 positives each (`teach`'s defaults: a linear head, early stopping on a 20% holdout), scored on
// a separate evaluation set beside (a) a float64 logistic regression on the same embeddings and (b) the
// same VGG16 trained from scratch on all tags; and the wall time split into embedding extraction (beside
// `vec --kind features` on the same images, alternating, medians) and head training.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { parseNpy } from '../src/outputs/npy.js';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../src/cli/index.js';
import type { Io } from '../src/cli/io.js';
import { countTags, formatTagsCsv, selectTags, TagIndex } from '../src/data/tags.js';
import { readShard, readShardIndex, writeShardIndex, type ShardIndexJson } from '../src/data/shards.js';
import { writeSafetensors, sha256Hex } from '../src/data/safetensors.js';
import { averagePrecision } from '../src/metrics/metrics.js';
import { modelSha256 } from '../src/model/model-hash.js';
import { TaggerModel } from '../src/model/tagger.js';
import { fromHalf } from '../src/onnx/half.js';
import { decodeBatches, listImages } from '../src/predict/inputs.js';
import { makeEmbeddingShards } from '../src/teach/embed-shards.js';
import { headHoldout } from '../src/teach/head-report.js';
import { exportTaught } from '../src/teach/export-taught.js';
import { TEACH_DEFAULTS } from '../src/teach/teach.js';
import { exportState } from '../src/train/export.js';
import { readRunConfig } from '../src/train/run-config.js';
import { trainRun } from '../src/train/run.js';
import { Rng } from '../training/rng.js';
import { median, saveResult } from './common.js';
import { logisticAp } from './logistic.js';
import { teachPlot } from './teach-plot.js';

const COUNTS = [5, 10, 20, 50, 100];
const quiet: Io = { out: () => undefined, err: () => undefined, tty: false };

async function cli(...argv: string[]): Promise<void> {
  const lines: string[] = [];
  const code = await runCli(argv, { out: () => undefined, err: (l) => lines.push(l), tty: false });
  if (code !== 0) throw new Error(`alt-i2v-ort ${argv.join(' ')}: ${lines.join('\n')}`);
}

interface Rows {
  names: string[];
  emb: Buffer[];
  labels: Buffer[];
}

/** Every row of the shards in `dir`. */
async function rowsOf(dir: string): Promise<Rows & { index: ShardIndexJson }> {
  const index = await readShardIndex(dir);
  const d = index.embedding!.width;
  const k = index.tags.count;
  const r: Rows = { names: [], emb: [], labels: [] };
  for (const e of index.shards) {
    const s = await readShard(dir, e, index);
    s.names.forEach((n, i) => {
      r.names.push(n);
      r.emb.push(Buffer.from(s.images.subarray(i * d * 2, (i + 1) * d * 2)));
      r.labels.push(Buffer.from(s.labels.subarray(i * k, (i + 1) * k)));
    });
  }
  return { ...r, index };
}

/** A shards folder of `train` rows (split train/holdout by the index's rule) from `of`'s index. */
async function writeSubset(
  dir: string,
  of: ShardIndexJson,
  rows: Rows,
  holdout: (i: number) => boolean,
): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const index: ShardIndexJson = { ...of, shards: [], holdout: TEACH_DEFAULTS.holdout };
  for (const split of ['train', 'holdout'] as const) {
    const idx = rows.names.flatMap((_, i) => (holdout(i) === (split === 'holdout') ? [i] : []));
    if (idx.length === 0) continue;
    const file = `shard-${String(index.shards.length).padStart(5, '0')}.safetensors`;
    const emb = idx.map((i) => rows.emb[i]!);
    const lab = idx.map((i) => rows.labels[i]!);
    await writeSafetensors(
      path.join(dir, file),
      {
        embeddings: { dtype: 'F16', shape: [idx.length, of.embedding!.width], chunks: emb },
        labels: { dtype: 'U8', shape: [idx.length, of.tags.count], chunks: lab },
      },
      {
        format: 'alt-i2v-ort/shard',
        tags_sha256: of.tags.sha256,
        files: JSON.stringify(idx.map((i) => rows.names[i])),
      },
    );
    index.shards.push({ file, split, count: idx.length, sha256: sha256Hex([...emb, ...lab]) });
  }
  await writeShardIndex(dir, index);
}

/** Mean AP over `tags` of a model's scores on the images of `dir`, by its own output columns. */
async function modelAp(file: string, dir: string, tags: string[]): Promise<number> {
  const m = await TaggerModel.load(file);
  const k = m.meta.tags.length;
  const cols = tags.map((t) => m.meta.tags.indexOf(t));
  const scores: number[][] = tags.map(() => []);
  const labels: number[][] = tags.map(() => []);
  const { readTagFile } = await import('../src/data/scan.js');
  for await (const b of decodeBatches(listImages([dir]), { ...m.preprocess, batch: 32 })) {
    const r = await m.run(b.images, b.files.length);
    for (const [i, f] of b.files.entries()) {
      const have = new Set(await readTagFile(f.replace(/\.\w+$/, '.txt')));
      cols.forEach((c, j) => {
        scores[j]!.push(r.probs[i * k + c]!);
        labels[j]!.push(have.has(tags[j]!) ? 1 : 0);
      });
    }
  }
  await m.release();
  const aps = tags.map((_, j) => averagePrecision(scores[j]!, labels[j]!) ?? 0);
  return aps.reduce((a, b) => a + b, 0) / aps.length;
}

/** `vec`'s float32 rows by image name (relative to `dataset`, with `prefix`), as float64. */
async function float32Rows(npy: string, dataset: string, prefix = ''): Promise<Map<string, Float64Array>> {
  const a = parseNpy(await readFile(npy), npy);
  const files = (JSON.parse(await readFile(`${npy}.json`, 'utf8')) as { files: string[] }).files;
  const d = a.shape[1];
  return new Map(
    files.map((f, i) => [
      `${prefix}${path.relative(dataset, f)}`,
      Float64Array.from(a.data.subarray(i * d, (i + 1) * d)),
    ]),
  );
}

export async function benchTeach(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const root = path.join(os.tmpdir(), `alt-i2v-teach-bench-${process.pid}`);
  await mkdir(root, { recursive: true });
  const [pool, evalSet] = [path.join(root, 'pool'), path.join(root, 'eval')];
  const poolCount = opts.quick ? 1500 : 3000;
  await cli('synth', '--out', pool, '--count', String(poolCount), '--seed', '101');
  await cli('synth', '--out', evalSet, '--count', opts.quick ? '400' : '800', '--seed', '202');
  // TAUGHT: 20 tags with at least 100 positives to spare; the base knows every other tag on 20+ images.
  const counts = await countTags(pool);
  const all = selectTags(counts.counts, 5000, 20);
  const taught = all
    .filter((r) => r.count >= 125 && !r.name.startsWith('rating:'))
    .slice(-20)
    .map((r) => r.name);
  const baseRows = all.filter((r) => !taught.includes(r.name));
  const allCsv = path.join(root, 'all.csv');
  const baseCsv = path.join(root, 'base.csv');
  const taughtCsv = path.join(root, 'taught.csv');
  await writeFile(allCsv, formatTagsCsv(all));
  await writeFile(baseCsv, formatTagsCsv(baseRows));
  await writeFile(taughtCsv, formatTagsCsv(all.filter((r) => taught.includes(r.name))));
  const rounds = String(opts.quick ? 8 : 20);
  const model = async (name: string, csv: string): Promise<string> => {
    const shards = path.join(root, `${name}-shards`);
    await cli(
      'pairs',
      pool,
      '--tags',
      csv,
      '--out',
      shards,
      '--size',
      '64',
      '--holdout',
      '0.05',
      '--shard-size',
      '20000',
    );
    await cli(
      'train',
      shards,
      '--out',
      path.join(root, `${name}-run`),
      '--backbone',
      'vgg16-tiny',
      '--hidden',
      '128',
      '--rounds',
      rounds,
    );
    await cli('export', path.join(root, `${name}-run`), '--out', path.join(root, `${name}.onnx`));
    return path.join(root, `${name}.onnx`);
  };
  const t0 = performance.now();
  const base = await model('base', baseCsv);
  const baseSeconds = (performance.now() - t0) / 1000;
  const scratch = await model('scratch', allCsv);
  const scratchAp = await modelAp(scratch, evalSet, taught);
  console.error(
    `teach: base trained in ${baseSeconds.toFixed(0)} s; from scratch on all tags: mean AP ${scratchAp.toFixed(3)} on the ${taught.length} tags`,
  );

  // Embedding extraction beside `vec --kind features` on the same images: alternating, medians.
  const tags = await TagIndex.load(taughtCsv);
  const sha256 = await modelSha256(base);
  const embedOnce = async (out: string, dataset: string, holdout: number): Promise<number> => {
    await rm(out, { recursive: true, force: true });
    const m = await TaggerModel.load(base, { embedding: true });
    const t = performance.now();
    await makeEmbeddingShards({
      dataset,
      tags,
      out,
      shardSize: 100_000,
      holdout,
      model: m,
      batch: 32,
      source: { model: base, sha256, tensor: null, load: {}, contract: '' },
    });
    await m.release();
    return (performance.now() - t) / 1000;
  };
  const vecOnce = async (dataset = pool, out = path.join(root, 'vec.npy')): Promise<number> => {
    const t = performance.now();
    await runCli(['vec', dataset, '--model', base, '--kind', 'features', '--batch', '32', '--out', out], quiet);
    return (performance.now() - t) / 1000;
  };
  const embedTimes: number[] = [];
  const vecTimes: number[] = [];
  for (let r = 0; r < (opts.quick ? 1 : 3); r++) {
    vecTimes.push(await vecOnce());
    embedTimes.push(await embedOnce(path.join(root, 'pool-emb'), pool, 0));
  }
  await embedOnce(path.join(root, 'eval-emb'), evalSet, 1);
  // The same embeddings in float32 (vec), by image name: float16 storage checked against them.
  await vecOnce(evalSet, path.join(root, 'vec-eval.npy'));
  const f32 = new Map([
    ...(await float32Rows(path.join(root, 'vec.npy'), pool)),
    ...(await float32Rows(path.join(root, 'vec-eval.npy'), evalSet, 'eval/')),
  ]);
  const poolRows = await rowsOf(path.join(root, 'pool-emb'));
  const d = poolRows.index.embedding!.width;
  const k = tags.size;

  const results: Record<string, unknown>[] = [];
  for (const c of COUNTS) {
    // c positives of each taught tag (co-occurring tags bring more), and images with none of them.
    const rng = new Rng(c);
    const pick = new Set<number>();
    for (let j = 0; j < k; j++) {
      const has = poolRows.names.flatMap((_, i) => (poolRows.labels[i]![j] ? [i] : []));
      rng
        .shuffle(has)
        .slice(0, c)
        .forEach((i) => pick.add(i));
    }
    const negatives = rng.shuffle(poolRows.names.flatMap((_, i) => (poolRows.labels[i]!.some(Boolean) ? [] : [i])));
    negatives.slice(0, 4 * c + 100).forEach((i) => pick.add(i));
    const idx = [...pick];
    const rows: Rows = {
      names: idx.map((i) => poolRows.names[i]!),
      emb: idx.map((i) => poolRows.emb[i]!),
      labels: idx.map((i) => poolRows.labels[i]!),
    };
    const hold = (i: number): boolean => new Rng(i * 7919 + c).next() < TEACH_DEFAULTS.holdout;
    const shards = path.join(root, `teach-${c}`);
    await writeSubset(shards, poolRows.index, rows, hold);
    const head = async (posWeight: 'none' | 'auto'): Promise<{ ap: number; seconds: number }> => {
      const runDir = path.join(root, `teach-${c}-run${posWeight === 'auto' ? '-weighted' : ''}`);
      await rm(runDir, { recursive: true, force: true });
      const t = performance.now();
      await trainRun({
        shards,
        out: runDir,
        backbone: 'vgg16',
        rounds: TEACH_DEFAULTS.rounds,
        batch: TEACH_DEFAULTS.batch,
        lr: TEACH_DEFAULTS.lr,
        device: 'cpu',
        seed: 1,
        resume: false,
        hidden: TEACH_DEFAULTS.hidden,
        keep: 2,
        patience: TEACH_DEFAULTS.patience,
        best: TEACH_DEFAULTS.best,
        posWeight,
        logEvery: 1000,
        threads: 0,
      });
      const seconds = (performance.now() - t) / 1000;
      const run = await readRunConfig(runDir);
      const { state } = await exportState(runDir, run);
      const report = await headHoldout(run.model, state.params, path.join(root, 'eval-emb'));
      return { ap: report.tags.reduce((a, x) => a + (x.ap ?? 0), 0) / k, seconds };
    };
    // Both weightings (class imbalance: positives weighted by negatives/positives); teach's is the one
    // its rule picks for this count (src/teach/teach.ts, TEACH_DEFAULTS.weightBelow).
    const train = rows.names.flatMap((_, i) => (hold(i) ? [] : [i]));
    const positives = Array.from({ length: k }, (_, j) => train.filter((i) => rows.labels[i]![j]).length);
    const plain = await head('none');
    const weighted = await head('auto');
    const sorted = [...positives].sort((a, b) => a - b);
    const teachWeights = sorted[Math.floor((k - 1) / 2)]! < TEACH_DEFAULTS.weightBelow;
    const [headAp, headSeconds] = teachWeights ? [weighted.ap, weighted.seconds] : [plain.ap, plain.seconds];
    const [unweightedAp, weightedAp] = [plain.ap, weighted.ap];
    // (a) float64 logistic regression per tag on the same training rows (the run's train split).
    const x = train.map((i) =>
      Float64Array.from(fromHalf(new Uint16Array(rows.emb[i]!.buffer, rows.emb[i]!.byteOffset, d))),
    );
    const evalRows = await rowsOf(path.join(root, 'eval-emb'));
    const ex = evalRows.emb.map((e) => Float64Array.from(fromHalf(new Uint16Array(e.buffer, e.byteOffset, d))));
    const lrAps = Array.from({ length: k }, (_, j) =>
      logisticAp(
        x,
        train.map((i) => rows.labels[i]![j]!),
        ex,
        evalRows.labels.map((l) => l[j]!),
      ),
    );
    const lrAp = lrAps.reduce((a, b) => a + b, 0) / k;
    const x32 = train.map((i) => f32.get(rows.names[i]!)!);
    const ex32 = evalRows.names.map((n) => f32.get(`eval/${n}`)!);
    const lr32 =
      Array.from({ length: k }, (_, j) =>
        logisticAp(
          x32,
          train.map((i) => rows.labels[i]![j]!),
          ex32,
          evalRows.labels.map((l) => l[j]!),
        ),
      ).reduce((a, b) => a + b, 0) / k;
    results.push({
      count: c,
      images: rows.names.length,
      headAp,
      lrAp,
      lrApFloat32: lr32,
      unweightedAp,
      teachWeights,
      weightedAp,
      headSeconds,
      minPositives: Math.min(...positives),
      medianPositives: median(positives),
    });
    console.error(
      `teach: ${c} positives per tag (${rows.names.length} images): head mean AP ${headAp.toFixed(3)}, logistic regression ${lrAp.toFixed(3)} (on float32 embeddings ${lr32.toFixed(3)}); positives unweighted ${unweightedAp.toFixed(3)}, weighted ${weightedAp.toFixed(3)}; head trained in ${headSeconds.toFixed(1)} s`,
    );
  }
  // The merged model (the 100-positive head) against its base in `pred`: alternating, medians.
  const lastRun = path.join(root, `teach-${COUNTS.at(-1)}-run`);
  const merged = path.join(root, 'merged.onnx');
  await exportTaught(lastRun, await readRunConfig(lastRun), merged);
  const predOnce = async (model: string): Promise<number> => {
    const t = performance.now();
    await runCli(['pred', evalSet, '--model', model, '--batch', '32', '--format', 'jsonl'], quiet);
    return (performance.now() - t) / 1000;
  };
  const predTimes: Record<'base' | 'merged', number[]> = { base: [], merged: [] };
  for (let r = 0; r < (opts.quick ? 1 : 3); r++) {
    predTimes.base.push(await predOnce(base));
    predTimes.merged.push(await predOnce(merged));
  }
  const evalImages = opts.quick ? 400 : 800;
  const predVsBase = median(predTimes.base) / median(predTimes.merged);
  const baseRate = taught.reduce((a, t) => a + counts.counts.get(t)! / counts.images, 0) / k;
  const row = {
    taught,
    baseTags: baseRows.length,
    embeddingWidth: d,
    embedSeconds: median(embedTimes),
    vecSeconds: median(vecTimes),
    embedVsVec: median(vecTimes) / median(embedTimes),
    predImgPerS: { base: evalImages / median(predTimes.base), merged: evalImages / median(predTimes.merged) },
    predVsBase,
    scratchAp,
    baseRate,
    counts: results,
    runs: { embedTimes, vecTimes, predTimes },
  };
  await saveResult('teach', row);
  await writeFile(path.join('docs', 'teach.svg'), teachPlot(row));
  for (const r of results as { count: number; headAp: number; lrAp: number; headSeconds: number; images: number }[])
    console.log(
      `| teach ${taught.length} tags from ${r.count} positives each (${r.images} images): holdout mean AP (\`teach\`) | ${r.headAp.toFixed(3)} | float64 logistic regression: ${r.lrAp.toFixed(3)}; from scratch on all tags: ${scratchAp.toFixed(3)} | Δ ${(r.headAp - r.lrAp).toFixed(3)} | head trained in ${r.headSeconds.toFixed(1)} s |`,
    );
  console.log(
    `| embedding ${poolCount} images with the base (\`teach\`, pairs --backbone) | ${(poolCount / row.embedSeconds).toFixed(0)} img/s | \`vec --kind features\`: ${(poolCount / row.vecSeconds).toFixed(0)} img/s | ${row.embedVsVec.toFixed(2)}× | |`,
  );
  console.log(
    `| \`pred\` with the merged model (base + 20 taught tags), ${evalImages} images | ${row.predImgPerS.merged.toFixed(0)} img/s | the base model: ${row.predImgPerS.base.toFixed(0)} img/s | ${predVsBase.toFixed(2)}× | |`,
  );
  await rm(root, { recursive: true, force: true });
  return row;
}
