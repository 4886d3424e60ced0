// `serve --model FILE.onnx [--host 127.0.0.1] [--port 8080] …`: the HTTP API and web page (src/serve/).
// Binding anything but the loopback needs --token. SIGINT/SIGTERM: stop accepting, finish in-flight
// requests, exit 0.
import path from 'node:path';
import type { Io } from '../io.js';
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf } from '../../util/option-spec.js';
import { SERVE_OPTIONS } from '../../serve/serve-spec.js';
import { batchOf, loadOptionsFrom, withModelOptions, type ModelArgs } from '../model-options.js';
import { UsageError } from '../../util/errors.js';
import { TaggerModel } from '../../model/tagger.js';
import { readVecIndex } from '../../outputs/vectors.js';
import { buildServer, closeServer } from '../../serve/app.js';
import { ReviewSet } from '../../review/review-set.js';
import { TeachJob } from '../../review/teach-job.js';
import { captionFormat, REVIEW_CAPTION_FLAGS, type CaptionFormatArgs } from '../../review/caption-format.js';
import { captionStyleOf } from '../../captions/style.js';
import { isGiven, predDefaults } from '../../select/pred-spec.js';
import { withPredFlags } from '../pred-options.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export const OPTIONS = SERVE_OPTIONS;

export const serveCommand: Command = ({ io }) =>
  defineCommand({
    command: 'serve',
    describe: 'Serve a model over HTTP: JSON API, the WD14 tagger API, and a web page to try it',
    builder: (y) => withPredFlags(withModelOptions(y), REVIEW_CAPTION_FLAGS).options(yargsOptions(OPTIONS)),
    handler: (argv: RunServeArgs) => runServe(io, argv),
  });

type RunServeArgs = ArgsOf<typeof OPTIONS> & ModelArgs & CaptionFormatArgs & { model: string };

/** The review page's merged model: --teach-out, or alt-i2v-taught.onnx among the dataset's images. */
function teachOut(given: string | undefined, dir: string): string {
  if (given !== undefined && !/\.onnx$/i.test(given))
    throw new UsageError(`Expected --teach-out ending in .onnx but received ${JSON.stringify(given)}`);
  return path.resolve(given ?? path.join(dir, 'alt-i2v-taught.onnx'));
}

/** The review's caption format, its flags checked as pred checks them (one a style lacks is refused). */
function reviewFormat(argv: RunServeArgs) {
  const a = { ...predDefaults(), ...argv };
  captionStyleOf(a);
  const given = [...REVIEW_CAPTION_FLAGS.filter((f) => isGiven(a, f)), ...(argv.teachOut ? ['teach-out'] : [])];
  if (!argv.dataset && given.length)
    throw new UsageError(`Expected --dataset with --${given[0]}: it is an option of the review page`);
  return captionFormat(argv);
}

async function runServe(io: Io, argv: RunServeArgs): Promise<void> {
  const o = checkedOptions(OPTIONS, argv);
  if (!LOOPBACK.test(argv.host) && !argv.token)
    throw new UsageError(
      `Expected --token to bind ${argv.host}, which is reachable from other machines (or bind 127.0.0.1)`,
    );
  const format = reviewFormat(argv);
  const opts = {
    name: path.basename(argv.model, path.extname(argv.model)),
    batch: batchOf(argv),
    maxWaitMs: o.maxWaitMs,
    queue: o.queue,
    timeoutMs: o.timeoutMs,
    bodyLimit: o.maxBodyMb * 2 ** 20,
    maxPixels: o.maxPixels,
    token: argv.token,
    frames: o.frames,
    framesMerge: o.framesMerge,
    index: argv.index ? await readVecIndex(argv.index) : undefined,
    dataset: argv.dataset ? await ReviewSet.open(argv.dataset, format) : undefined,
  };
  const load = loadOptionsFrom(argv, io);
  const model = await TaggerModel.load(argv.model, load);
  const set = opts.dataset;
  const teach =
    set &&
    new TeachJob({
      set,
      base: { model: argv.model, load },
      out: teachOut(argv.teachOut, set.dir),
      modelBatch: opts.batch,
      threads: argv.threads,
    });
  // The first requests should not pay the runtime's first-run work: warm up on a dummy batch while fastify starts.
  const warm = model.warmUp(opts.batch);
  const app = await buildServer(model, { ...opts, teach });
  await warm;
  const address = await app.listen({ host: argv.host, port: o.port }).catch(async (err: Error) => {
    await app.close();
    throw new UsageError(`Expected to listen on ${argv.host}:${o.port} but it fails: ${err.message}`);
  });
  io.err(
    `serve: ${opts.name} (${model.meta.tags.length} tags, ${model.meta.precision}) on ${address}; API under /v1 and /tagger/v1, page at /${opts.dataset ? `, review of ${opts.dataset.images.length} images at /review` : ''}`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.err('serve: stopping: no new requests; finishing those in flight');
      void closeServer(app, opts.timeoutMs + 5000).then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  io.err('serve: stopped');
}
