// `hydrus --api URL --search TAG … --service NAME --model MODEL [--dry-run]`: tag the files of a Hydrus
// search and write the tags to a tag service through the Client API (src/hydrus/). The access key comes
// from HYDRUS_ACCESS_KEY or --key-file, never from the command line (where `ps` shows it).
import path from 'node:path';
import { startProgress, type Io, type Progress } from '../io.js';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { batchOf, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { withPredFlags } from '../pred-options.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { TaggerModel } from '../../model/tagger.js';
import { selectOptionsFrom } from '../../select/options.js';
import { predDefaults, type PredArgs } from '../../select/pred-spec.js';
import { HydrusClient, readAccessKey } from '../../hydrus/client.js';
import { FRAME_OPTIONS } from '../../predict/tagging.js';
import { HYDRUS_SELECT_FLAGS, namespacesFrom, tagHydrusFiles } from '../../hydrus/hydrus-tag.js';

export const OPTIONS = {
  api: { type: 'string', default: 'http://127.0.0.1:45869', describe: "The Hydrus client's Client API address" },
  search: {
    type: 'list',
    required: true,
    describe: 'A Hydrus search predicate (a tag, -tag, system:…); repeat it: all must hold',
  },
  service: { type: 'string', required: true, describe: 'The tag service to write to: its name or service key' },
  'key-file': { type: 'string', describe: 'A file holding the access key [default: HYDRUS_ACCESS_KEY]' },
  marker: {
    type: 'string',
    describe: 'The tag added to every file done, which a rerun leaves out [default: alt-i2v:MODEL_NAME]',
  },
  namespace: {
    type: 'list',
    describe:
      'CATEGORY=NAMESPACE for the tags of a category (repeatable; empty: none) [default: artist=creator, copyright=series, character=character, meta=meta, rating=rating]',
  },
  'dry-run': { type: 'boolean', default: false, describe: 'Print what would be written; write nothing' },
  'timeout-s': { type: 'number', default: 60, range: [1, 3600], integer: true, describe: 'Wait for an answer at most' },
  'max-file-mb': { type: 'number', default: 256, range: [1, 65536], integer: true, describe: 'Pass over larger files' },
  'max-pixels': {
    type: 'number',
    default: 178_956_970,
    range: [1, 2 ** 40],
    integer: true,
    describe: 'Pass over larger images (decompression bombs)',
  },
  ...FRAME_OPTIONS,
} as const satisfies Specs;

export const hydrusCommand: Command = ({ io }) =>
  defineCommand({
    command: 'hydrus',
    describe: "Tag the files of a Hydrus search and write the tags to a tag service (Hydrus' Client API)",
    builder: (y) => withPredFlags(withModelOptions(y), HYDRUS_SELECT_FLAGS).options(yargsOptions(OPTIONS)),
    handler: (argv: ArgsOf<typeof OPTIONS> & ModelArgs & PredArgs & { model: string }) =>
      runHydrus(io, process.env, argv),
  });

async function runHydrus(
  io: Io,
  env: NodeJS.ProcessEnv,
  argv: ArgsOf<typeof OPTIONS> & ModelArgs & PredArgs & { model: string },
): Promise<void> {
  const o = checkedOptions(OPTIONS, argv);
  const client = new HydrusClient({
    api: o.api,
    key: await readAccessKey(o.keyFile, env),
    timeoutS: o.timeoutS,
    maxFileBytes: o.maxFileMb * 2 ** 20,
  });
  const namespaces = namespacesFrom(o.namespace);
  const warn = (l: string): void => io.err(l);
  const model = await TaggerModel.load(argv.model, loadOptionsFrom(argv, io));
  let bar: Progress | undefined;
  const say = (l: string): void => (bar ? bar.log(l) : io.err(l));
  try {
    const pred = { ...predDefaults(), ...argv };
    const s = await tagHydrusFiles({
      client,
      search: ([] as string[]).concat(o.search),
      service: o.service,
      model,
      select: await selectOptionsFrom(pred, model.tagInfo, warn),
      namespaces,
      marker:
        o.marker ??
        `alt-i2v:${path
          .basename(argv.model)
          .replace(/\.onnx$/i, '')
          .toLowerCase()}`,
      underscores: pred.underscores,
      dryRun: o.dryRun,
      batch: batchOf(argv),
      maxPixels: o.maxPixels,
      frames: o.frames,
      framesMerge: o.framesMerge,
      info: say,
      warn: say,
      onFile: (f) => o.dryRun && io.out(`${f.hash}\t${f.tags.join(', ')}`),
      progress: (done, total) => (bar ??= startProgress(io, 'hydrus', total, 'file')).update(done),
    });
    bar?.stop();
    bar = undefined;
    io.err(
      `hydrus: ${s.found} files found, ${s.skipped} already done, ${s.tagged} ${o.dryRun ? 'would be tagged' : 'tagged'} (${s.tagsAdded} tags${o.dryRun ? ' to add' : ' added'}), ${s.gone} gone since the search, ${s.failed} failed`,
    );
  } finally {
    bar?.stop();
    await model.release();
  }
}
