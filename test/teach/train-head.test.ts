// Training a head with few examples: a tag without a training positive refused in one line, tags with
// fewer than 5 positives named, --patience stopping on the holdout's best round, and the thresholds
// file beside a merged model: its APs are the holdout APs the trainer's own eval graph measured (an
// independent path: TrainSession's eval graph, not the exported head), and pred --thresholds reads it.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { exportState } from '../../src/train/export.js';
import { readShard, readShardIndex } from '../../src/data/shards.js';
import { readRunConfig } from '../../src/train/run-config.js';
import { cli, cliSteps, tempDir } from '../helpers.js';
import { captionedSynth, writeBaseTagger } from './base-tagger.js';

const root = await tempDir();
const { data, tagsCsv } = await captionedSynth(root, 80, 21, 6);
const base = await writeBaseTagger(path.join(root, 'base'));
const shards = path.join(root, 'shards');
await cliSteps(['pairs', data, '--tags', tagsCsv, '--out', shards, '--backbone', base.file, '--holdout', '0.3']);

test('a tag no training image has is refused in one line; rare tags are named', async () => {
  const withGhost = path.join(root, 'ghost.csv');
  await writeFile(withGhost, `${(await readFile(tagsCsv, 'utf8')).trimEnd()}\n999,no_such_tag,0,0\n`);
  const s = path.join(root, 'ghost-shards');
  await cliSteps(['pairs', data, '--tags', withGhost, '--out', s, '--backbone', base.file, '--holdout', '0.3']);
  const r = await cli('train', s, '--out', path.join(root, 'ghost-run'), '--hidden', '0', '--rounds', '1');
  assert.equal(r.code, 2);
  assert.match(
    r.err.at(-1)!,
    /^alt-i2v-ort: Expected at least one training image of every tag in .* but no_such_tag has none: remove it/,
  );
  const ok = await cli('train', shards, '--out', path.join(root, 'rare-run'), '--hidden', '0', '--rounds', '1');
  assert.equal(ok.code, 0, ok.err.join('\n'));
  const rare = ok.err.filter((l) =>
    /^warning: tag \S+ has \d+ positives? in training and \d+ in the holdout: fewer than 5/.test(l),
  );
  assert.ok(rare.length > 0, ok.err.join('\n'));
});

test('--patience stops when the holdout mAP has not improved for that many rounds, keeping the best checkpoint', async () => {
  const run = path.join(root, 'patience');
  const r = await cli(
    'train',
    shards,
    '--out',
    run,
    '--hidden',
    '0',
    '--rounds',
    '400',
    '--batch',
    '16',
    '--lr',
    '0.02',
    '--patience',
    '3',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const line = r.err.find((l) => l.startsWith('train: stopping early'))!;
  const m = /after round (\d+): .* for (\d+) rounds \(best [\d.]+ at round (\d+)/.exec(line)!;
  assert.equal(Number(m[1]) - Number(m[3]), 3);
  assert.ok(Number(m[1]) < 400);
  const rounds = (await readFile(path.join(run, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'round');
  const maps = rounds.map((e) => e.map as number);
  assert.equal(rounds.at(-1).round, Number(m[1]));
  assert.equal(Math.max(...maps), maps[Number(m[3]) - 1]);
  assert.ok(maps.slice(Number(m[3])).every((v) => v <= maps[Number(m[3]) - 1]!));
  assert.match(r.out.join('\n'), new RegExp(`done: round ${m[1]} of 400 \\(stopped early\\)`));
});

test("the thresholds file beside a merged model holds the holdout's APs and best-F1 thresholds; pred --thresholds reads it", async () => {
  const run = path.join(root, 'patience');
  const out = path.join(root, 'merged.onnx');
  const r = await cli('export', run, '--out', out);
  assert.equal(r.code, 0, r.err.join('\n'));
  const rows = parse(await readFile(path.join(root, 'merged.thresholds.csv')), { columns: true }) as Record<
    string,
    string
  >[];
  const cfg = await readRunConfig(run);
  assert.deepEqual(
    rows.map((x) => x.tag),
    cfg.tags.names,
  );
  const aps = rows.filter((x) => x.ap !== '').map((x) => Number(x.ap));
  const { info } = await exportState(run, cfg);
  assert.ok(Math.abs(aps.reduce((a, b) => a + b, 0) / aps.length - info.metrics!.map) < 1e-5, `${info.metrics!.map}`);
  for (const x of rows.filter((x) => x.threshold !== '')) assert.ok(Number(x.threshold) > 0 && Number(x.threshold) < 1);
  const p = await cli(
    'pred',
    data,
    '--model',
    out,
    '--thresholds',
    path.join(root, 'merged.thresholds.csv'),
    '--format',
    'json',
  );
  assert.equal(p.code, 0, p.err.join('\n'));
  assert.ok(!p.err.some((l) => /warning|has no tag/.test(l)), p.err.join('\n'));
});

test('--best loss: the round with the lowest holdout loss in log.jsonl is kept and exported, and --patience counts from it', async () => {
  const run = path.join(root, 'by-loss');
  const r = await cli(
    'train',
    shards,
    '--out',
    run,
    '--hidden',
    '0',
    '--rounds',
    '30',
    '--batch',
    '16',
    '--lr',
    '0.05',
    '--keep',
    '1',
    '--best',
    'loss',
    '--patience',
    '4',
  );
  assert.equal(r.code, 0, r.err.join('\n'));
  const rounds = (await readFile(path.join(run, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'round');
  let best = rounds[0];
  for (const x of rounds) if (x.holdoutLoss <= best.holdoutLoss) best = x; // ties: the later one
  const name = `round-${String(best.round).padStart(6, '0')}.safetensors`;
  assert.ok((await readdir(path.join(run, 'checkpoints'))).includes(name));
  if (rounds.length < 30) assert.equal(rounds.at(-1).round - best.round, 4);
  const e = await cli('export', run, '--out', path.join(root, 'by-loss.onnx'));
  assert.equal(e.code, 0, e.err.join('\n'));
  assert.match(e.out[0]!, new RegExp(`from .*${name}`));
  assert.equal(JSON.parse(await readFile(path.join(run, 'config.json'), 'utf8')).best, 'loss');
});

test("--pos-weight auto: each tag's weight is its negatives / positives in the training shards, clamped to 1–100", async () => {
  const run = path.join(root, 'weighted');
  const r = await cli('train', shards, '--out', run, '--hidden', '0', '--rounds', '1', '--pos-weight', 'auto');
  assert.equal(r.code, 0, r.err.join('\n'));
  const index = await readShardIndex(shards);
  const k = index.tags.count;
  const pos = new Array<number>(k).fill(0);
  let n = 0;
  for (const e of index.shards.filter((x) => x.split === 'train')) {
    const s = await readShard(shards, e, index);
    n += s.count;
    for (let i = 0; i < s.count * k; i++) pos[i % k]! += s.labels[i]!;
  }
  const want = pos.map((p) => Math.min(100, Math.max(1, (n - p) / p)));
  const got = JSON.parse(await readFile(path.join(run, 'config.json'), 'utf8')).model.posWeight as number[];
  got.forEach((w, j) => assert.ok(Math.abs(w - want[j]!) < 1e-9, `${index.tags.names[j]}: ${w} vs ${want[j]}`));
  assert.ok(got.some((w) => w > 1));
});
