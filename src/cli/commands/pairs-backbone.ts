// `pairs DATASET --tags NEW.csv --out SHARDS --backbone MODEL`: shards of a tagger's embeddings
// (src/teach/embed-shards.ts), with the base tagger loaded as pred loads it.
import path from 'node:path';
import type { Specs } from '../../util/option-spec.js';
import { checkDatasetDir } from '../../data/scan.js';
import { TagIndex } from '../../data/tags.js';
import type { ShardIndexJson } from '../../data/shards.js';
import { TaggerModel } from '../../model/tagger.js';
import { modelSha256 } from '../../model/model-hash.js';
import { describeContract } from '../../contracts/contract.js';
import { makeEmbeddingShards } from '../../teach/embed-shards.js';
import { EMBEDDING_OPTION, loadOptionsFrom, MODEL_OPTIONS, type ModelArgs } from '../model-options.js';
import { startProgress, type Io, type Progress } from '../io.js';

/** The model options pred has, for the --backbone tagger (its tags file is --backbone-tags). */
const { model: _model, tags: _tags, ...backboneOptions } = MODEL_OPTIONS;
/** pairs' options for shards of a tagger's embedding: the tagger, its tags file, and pred's model options. */
export const BACKBONE_OPTIONS = {
  backbone: {
    type: 'string',
    describe:
      "A tagger to embed with instead of pixels (any model pred runs: a file or hf:OWNER/REPO): the shards hold its embedding, for a head taught new tags (train); --size and --pad are then the tagger's own",
  },
  'backbone-tags': {
    type: 'string',
    describe: "The --backbone tagger's own tags file, where it is not beside the model (pred's --tags)",
  },
  ...backboneOptions,
  ...EMBEDDING_OPTION,
} as const satisfies Specs;

/** What pairs made, for its summary line: images kept in each split, and the skips by kind. */
export function shardCounts(index: ShardIndexJson): { kept: number; train: number; holdout: number; skipped: string } {
  const train = index.shards.filter((s) => s.split === 'train').reduce((a, s) => a + s.count, 0);
  const skipped =
    Object.entries(index.stats.skipped)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  return { kept: index.stats.kept, train, holdout: index.stats.kept - train, skipped };
}

/** pairs' arguments, checked, that the embedding path reads. */
export type EmbeddingPairsArgs = Omit<ModelArgs, 'tags'> & {
  dataset: string;
  tags: string;
  out: string;
  shardSize: number;
  holdout: number;
  backbone: string;
  backboneTags?: string;
  embedding?: string;
};

export async function runEmbeddingPairs(io: Io, o: EmbeddingPairsArgs): Promise<void> {
  const argv = o;
  const dataset = await checkDatasetDir(argv.dataset);
  const tags = await TagIndex.load(argv.tags);
  const out = path.resolve(argv.out);
  const embedding: string | true = o.embedding ?? true;
  const load = { ...loadOptionsFrom({ ...argv, tags: o.backboneTags }, io), embedding };
  const model = await TaggerModel.load(o.backbone, load);
  let bar: Progress | undefined;
  try {
    const sha256 = await modelSha256(model.file);
    const index = await makeEmbeddingShards({
      dataset,
      tags,
      out,
      shardSize: o.shardSize,
      holdout: o.holdout,
      model,
      batch: o.batch,
      source: {
        model: path.resolve(model.file),
        sha256,
        tensor: o.embedding ?? null,
        load: {
          ...(model.tagsFile ? { tags: path.resolve(model.tagsFile) } : {}),
          ...(o.preset !== 'auto' ? { preset: o.preset } : {}),
          ...(o.contract ? { contract: path.resolve(o.contract) } : {}),
          ...(o.channels ? { channels: o.channels } : {}),
          ...(o.scale ? { scale: o.scale } : {}),
          ...(argv.padColor ? { padColor: argv.padColor } : {}),
        },
        contract: describeContract(model.contract),
      },
      onStart: ({ images, toEmbed }) => {
        io.err(
          `pairs: ${images} images, ${images - toEmbed} embeddings cached, ${toEmbed} to embed with ${model.file}`,
        );
        if (toEmbed > 0) bar = startProgress(io, 'embed', toEmbed);
      },
      onProgress: (done) => bar?.update(done),
      onWarning: (line) => (bar ? bar.log(line) : io.err(line)),
    });
    bar?.stop();
    bar = undefined;
    const c = shardCounts(index);
    io.out(
      `kept ${c.kept} (train ${c.train}, holdout ${c.holdout}) embeddings of ${index.embedding!.width} numbers in ${index.shards.length} shards; skipped: ${c.skipped}`,
    );
    io.out(`next: alt-i2v-ort train ${argv.out} --out run --hidden 0`);
  } finally {
    bar?.stop();
    await model.release();
  }
}
