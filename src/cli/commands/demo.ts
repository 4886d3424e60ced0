// `demo [--out DIR]`: the whole pipeline on built-in demo data, each step printed as the command it
// runs: synth → tags → pairs → train (vgg16-tiny, 64 px) → export → predictions on holdout images next
// to their true tags, with the holdout mAP against the base rate.
import path from 'node:path';
import { defineCommand, yargsOptions, type Command, type Ctx } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import type { Io } from '../io.js';
import { DEVICES } from '../../runtime/providers.js';
import { ENGINES } from '../../train/engines.js';
import { PRECISIONS } from '../../train/run-config.js';
import { readShard, readShardIndex } from '../../data/shards.js';
import { replaceDemoFolder } from '../../data/synth.js';
import { readTagFile } from '../../data/scan.js';
import { holdoutBaseRate } from '../../outputs/evaluate.js';
import { bestCheckpoint, listCheckpoints } from '../../train/checkpoint.js';
import { TaggerModel } from '../../model/tagger.js';
import { tagImages } from '../../predict/tagging.js';

export const OPTIONS = {
  out: {
    type: 'string',
    default: 'demo-out',
    describe: 'Working folder, replaced on each run (an empty or earlier demo folder)',
  },
  count: { type: 'number', default: 1200, range: [50, 1_000_000], integer: true, describe: 'Demo images to draw' },
  rounds: { type: 'number', default: 60, range: [1, 100_000], integer: true, describe: 'Training rounds' },
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where it trains' },
  engine: { type: 'string', choices: ENGINES, default: 'auto', describe: 'Training engine (see train --help)' },
  precision: {
    type: 'string',
    choices: PRECISIONS,
    default: 'fp32',
    describe: 'Training precision (see train --help)',
  },
} as const satisfies Specs;

export const demoCommand: Command = ({ io, run }) =>
  defineCommand({
    command: 'demo',
    describe: 'Run the whole pipeline on built-in demo data: synth → tags → pairs → train → export → predictions',
    builder: (y) => y.options(yargsOptions(OPTIONS)),
    handler: async (argv: ArgsOf<typeof OPTIONS>) => {
      const { count, rounds, device, engine, precision } = checkedOptions(OPTIONS, argv);
      const out = path.resolve(argv.out);
      const lock = await replaceDemoFolder(out, argv.out, (l) => io.err(l));
      try {
        await runDemo(out, count, rounds, { device, engine, precision }, { io, run });
      } finally {
        await lock.release();
      }
    },
  });

async function runDemo(
  out: string,
  count: number,
  rounds: number,
  { device, engine, precision }: { device: string; engine: string; precision: string },
  { io, run }: Ctx,
): Promise<void> {
  const data = path.join(out, 'data');
  const shards = path.join(out, 'shards');
  const model = path.join(out, 'model.onnx');
  const [tags, runDir, gallery] = [path.join(out, 'tags.csv'), path.join(out, 'run'), path.join(out, 'gallery.html')];
  // The demo's recipe: the 30 most frequent tags (rare colour–shape pairs left out, so the holdout has
  // positives for every tag), 64 px, the tiny VGG16 with a 128-wide head at lr 7e-4 for 60 rounds.
  const recipe = flags({ out: runDir, backbone: 'vgg16-tiny', hidden: 128, batch: 16, lr: 0.0007, rounds });
  const train = ['train', shards, ...recipe, ...flags({ device, engine, precision })];
  const steps: string[][] = [
    ['synth', ...flags({ out: data, count, seed: 1 })],
    ['tags', data, ...flags({ out: tags, top: 30, 'min-count': 5 })],
    ['pairs', data, ...flags({ tags, out: shards, size: 64, 'shard-size': Math.ceil(count / 3), holdout: 0.18 })],
    train,
    ['export', runDir, ...flags({ out: model })],
    ['gallery', shards, ...flags({ model, out: gallery, limit: 48 })],
  ];
  const t0 = performance.now();
  for (const step of steps) {
    io.out(`\n$ alt-i2v-ort ${step.join(' ')}`);
    const code = await run(step);
    if (code !== 0) throw new Error(`demo step "${step[0]}" failed with exit code ${code}`);
  }
  const index = await readShardIndex(shards);
  const holdouts = index.shards.filter((s) => s.split === 'holdout');
  await showPredictions(io, data, model, await readShard(shards, holdouts[0]!, index));
  const { base, n } = await holdoutBaseRate(shards, index);
  const best = bestCheckpoint(await listCheckpoints(path.join(runDir, 'checkpoints')));
  io.out(
    `\nholdout mAP ${best?.metrics?.map.toFixed(3) ?? '?'} (${n} images, ${index.tags.count} tags) vs ${base.toFixed(3)} for a tagger that only knows tag frequencies; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  io.out(`curves: ${path.join(runDir, 'curves.svg')}; model: ${model}; gallery of holdout images: ${gallery}`);
}

/** Predictions on a few holdout images, read back from their files through `pred`'s own tagging. */
async function showPredictions(io: Io, data: string, model: string, first: { names: string[] }): Promise<void> {
  const tagger = await TaggerModel.load(model);
  io.out('\npredictions on holdout images (probability ≥ 0.5), true tags after "|":');
  const entries = first.names.slice(0, 5).map((name) => ({ file: path.join(data, name), key: name }));
  try {
    for await (const t of tagImages(tagger, entries, { batch: 5, select: { threshold: 0.5, rating: 'all' } })) {
      const predicted = t.tags?.map((s) => `${s.tag} ${s.prob.toFixed(2)}`).join(', ') || `(${t.failure ?? 'none'})`;
      const truth = (await readTagFile(t.file.replace(/\.\w+$/, '.txt'))).filter((x) => tagger.meta.tags.includes(x));
      io.out(`  ${path.relative(data, t.file)}: ${predicted}\n      | ${truth.join(', ')}`);
    }
  } finally {
    await tagger.release();
  }
}

/** `--name value` pairs in the order given. */
const flags = (o: Record<string, string | number>): string[] =>
  Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)]);
