// `eval SHARDS --model model.onnx`: metrics on the holdout (or other) shards, and per-tag AP/F1.
import { stringify } from 'csv-stringify/sync';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { setIntegrityCheck } from '../../data/safetensors.js';
import { batchOf, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { evaluatePredictions } from '../../metrics/metrics.js';
import { predictShards } from '../../outputs/evaluate.js';
import { describeContract } from '../../contracts/contract.js';
import { TaggerModel } from '../../model/tagger.js';

const SPLITS = ['holdout', 'train', 'all'] as const;

export const OPTIONS = {
  split: { type: 'string', choices: SPLITS, default: 'holdout', describe: 'Which shards' },
  threshold: { type: 'number', default: 0.5, range: [0, 1], describe: 'Threshold for F1' },
  format: { type: 'string', choices: ['text', 'json'], default: 'text', describe: 'text, or json for scripts' },
  'per-tag': { type: 'string', describe: 'Write per-tag AP and F1 to this CSV file' },
  verify: { type: 'boolean', default: true, describe: 'Check each shard against its SHA-256 (--no-verify skips it)' },
} as const satisfies Specs;

export const evalCommand: Command = ({ io }) =>
  defineCommand({
    command: 'eval <shards>',
    describe: 'Evaluate a model on shards: MSE, mAP, micro/macro F1 at a threshold and at P = R',
    builder: (y) =>
      withModelOptions(
        y.positional('shards', { type: 'string', demandOption: true, describe: 'Shards folder made by `pairs`' }),
      ).options(yargsOptions(OPTIONS)),
    handler: async (argv: ModelArgs & ArgsOf<typeof OPTIONS> & { shards: string; model: string }) => {
      setIntegrityCheck(argv.verify);
      const { threshold, split } = checkedOptions(OPTIONS, argv);
      const batch = batchOf(argv);
      const model = await TaggerModel.load(argv.model, loadOptionsFrom(argv, io));
      if (model.contract.kind !== 'ours')
        io.err(
          `warning: the model expects its own preprocessing (${describeContract(model.contract)}) but shards are letterboxed on black; its scores may be a little lower than on its own preprocessing`,
        );
      try {
        const p = await predictShards(model, argv.shards, split, batch);
        const r = evaluatePredictions(p.probs, p.labels, p.n, p.names, threshold);
        if (argv.perTag) {
          const rows = r.perTag.map((t) => [t.tag, t.positives, t.ap ?? '', t.f1, t.thresholdPR ?? '', t.f1PR ?? '']);
          await writeFileAtomic(
            argv.perTag,
            stringify(rows, {
              header: true,
              columns: ['tag', 'positives', 'ap', `f1_at_${threshold}`, 'threshold_p_eq_r', 'f1_at_p_eq_r'],
            }),
          );
        }
        if (argv.format === 'json') {
          const { perTag: _omit, ...summary } = r;
          io.out(JSON.stringify(summary, null, 1));
        } else {
          io.out(`${r.images} images, ${r.tags} tags (${split} shards)`);
          io.out(`MSE ${r.mse.toFixed(5)}  mAP ${r.map.toFixed(4)}`);
          io.out(`at threshold ${threshold}: micro-F1 ${r.microF1.toFixed(4)}, macro-F1 ${r.macroF1.toFixed(4)}`);
          io.out(
            `at P = R (micro threshold ${r.microThresholdPR.toFixed(4)}): micro-F1 ${r.microF1PR.toFixed(4)}; per-tag P = R thresholds: macro-F1 ${r.macroF1PR.toFixed(4)}`,
          );
        }
      } finally {
        await model.release();
      }
    },
  });
