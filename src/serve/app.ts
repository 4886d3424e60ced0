// The HTTP server of `serve` (fastify): one model loaded once, images decoded in parallel and batched
// into it dynamically, a bounded admission (503 + Retry-After when full), a per-request timeout, body and
// pixel limits (413), and every bad request answered 4xx with a JSON error naming the problem. The routes
// are plugins over `app.tagger` (context.ts): routes.ts (our API and the page), wd14.ts (the WD14 web UI
// tagger's API).
import { availableParallelism } from 'node:os';
import fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { ImageError, preprocessFrames } from '../data/images.js';
import type { TaggerModel } from '../model/tagger.js';
import { mergeFrames, type FrameMerge } from '../predict/tagging.js';
import { limiter } from '../util/limit.js';
import { Batcher } from './batcher.js';
import type { ServeOptions, Tagger } from './context.js';
import { describeNonImage, imageFormatOf, isVideoBytes } from '../data/sniff.js';
import { HttpError, replyOf, unsupportedType } from './http-error.js';
import { routes } from './routes.js';
import { wd14Routes } from './wd14.js';
import { reviewRoutes } from './review-routes.js';

export type { ServeOptions } from './context.js';

/** Paths that answer without the token: they hold no model output (the page asks for the token itself). */
const OPEN_PATHS = new Set(['/healthz', '/', '/page.js', '/page.css', '/review', '/review.js', '/review.css']);

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new HttpError(503, `timed out after ${ms} ms waiting for the model`, { 'retry-after': '1' })),
        ms,
      );
    }),
  ]);
}

type Outputs = { probs: Float32Array; features: Float32Array };

/** One image's outputs from its frames': scores merged as `pred --frames-merge` merges them, features averaged. */
function mergeOutputs(outs: Outputs[], merge: FrameMerge): Outputs {
  if (outs.length === 1) return outs[0]!;
  const stack = (key: keyof Outputs): Float32Array => {
    const k = outs[0]![key].length;
    const all = new Float32Array(outs.length * k);
    outs.forEach((o, i) => all.set(o[key], i * k));
    return mergeFrames(all, 0, outs.length, k, key === 'probs' ? merge : 'mean');
  };
  return { probs: stack('probs'), features: stack('features') };
}

/** The routes' shared state: admission into the bounded queue, decoding, batching, the timeout. */
function tagger(model: TaggerModel, o: ServeOptions): Tagger {
  const batcher = new Batcher(model, { batch: o.batch, maxWaitMs: o.maxWaitMs });
  const decode = limiter(Math.max(2, Math.floor(availableParallelism() / 2)));
  const decodeOne = async (bytes: Buffer, name: string): Promise<{ pixels: Buffer; frames: number }> => {
    try {
      const pre = { ...model.preprocess, maxPixels: o.maxPixels };
      return await decode(() => preprocessFrames(bytes, name, pre, o.frames ?? 1));
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      const status = err.reason === 'too-large' ? 413 : 400;
      const want = status === 413 ? `an image of at most ${o.maxPixels} pixels` : 'a readable image';
      throw new HttpError(status, `Expected ${want} for ${name} but it is ${err.reason} (${err.detail})`);
    }
  };
  let queued = 0;
  return {
    model,
    o,
    get queued() {
      return queued;
    },
    stats: batcher.stats,
    infer: async (bytes, name) => {
      if (bytes.length === 0) throw new HttpError(400, `Expected image bytes for ${name} but received an empty body`);
      // The bytes decide, not the declared type: only the raster formats go on to libvips, which would
      // also render SVG (scripts, external references) behind a byte-order mark, spaces or gzip.
      if (!imageFormatOf(bytes) && !isVideoBytes(bytes))
        throw new HttpError(
          415,
          `Expected JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIF bytes (or a video) for ${name} but they are ${describeNonImage(bytes)}`,
        );
      if (queued >= o.queue)
        throw new HttpError(503, `the server is busy (${o.queue} images queued); retry shortly`, {
          'retry-after': '1',
        });
      queued++;
      try {
        const { pixels, frames } = await decodeOne(bytes, name);
        const px = pixels.length / frames;
        const runs = Array.from({ length: frames }, (_, f) => batcher.run(pixels.subarray(f * px, (f + 1) * px)));
        return mergeOutputs(await withTimeout(Promise.all(runs), o.timeoutMs), o.framesMerge ?? 'max');
      } finally {
        queued--;
      }
    },
  };
}

/** Requests in flight per server, and what to do when they reach none (closeServer). */
const inflight = new WeakMap<FastifyInstance, { count: number; onIdle?: () => void }>();

/**
 * Stop: no new requests (503), those in flight finish, then every connection is closed, half-open ones
 * (a client that sent part of its headers) included; after `graceMs` the rest are cut too.
 */
export async function closeServer(app: FastifyInstance, graceMs: number): Promise<void> {
  const state = inflight.get(app)!;
  const cut = (): void => app.server.closeAllConnections();
  const timer = setTimeout(cut, graceMs);
  if (state.count === 0) setImmediate(cut);
  else state.onIdle = cut;
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
}

/** Counts the requests in flight, for closeServer. */
function trackInflight(app: FastifyInstance): void {
  const state: { count: number; onIdle?: () => void } = { count: 0 };
  inflight.set(app, state);
  const done = (): void => {
    if (--state.count === 0) state.onIdle?.();
  };
  app.addHook('onRequest', async () => void state.count++);
  app.addHook('onResponse', async () => done());
  app.addHook('onRequestAbort', async (_req) => done()); // fastify wants this hook's one argument declared
}

export async function buildServer(model: TaggerModel, o: ServeOptions): Promise<FastifyInstance> {
  // On close: idle keep-alive connections are closed at once, requests in flight are finished.
  const app = fastify({
    bodyLimit: o.bodyLimit,
    logger: false,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  trackInflight(app);
  app.decorate('tagger', tagger(model, o));
  // A whole request is bounded by --max-body-mb before it is read: its declared length up front, a
  // multipart form's parts counted as they arrive (routes.ts), any other body by fastify's bodyLimit.
  app.addHook('onRequest', async (req) => {
    const declared = Number(req.headers['content-length']);
    if (declared > o.bodyLimit)
      throw new HttpError(413, `Expected a request of at most ${o.bodyLimit} bytes but it declares ${declared}`);
  });
  app.addContentTypeParser(/^(image|video)\//, { parseAs: 'buffer' }, (req, body, done) =>
    /^image\/svg/i.test(req.headers['content-type'] ?? '')
      ? done(unsupportedType(req.headers['content-type']), undefined)
      : done(null, body),
  );
  await app.register(multipart, { limits: { fileSize: o.bodyLimit, files: 64, fields: 64 } });
  if (o.token) {
    const token = o.token;
    app.addHook('onRequest', async (req) => {
      if (OPEN_PATHS.has(req.url.split('?')[0]!)) return;
      if (req.headers.authorization?.replace(/^Bearer\s+/i, '') !== token)
        throw new HttpError(401, 'Expected the server token as "Authorization: Bearer TOKEN"');
    });
  }
  app.setErrorHandler((err, req, reply) => {
    const e = replyOf(err, req.headers['content-type']);
    // Refused before its body was read whole (413 as it arrives): the connection closes after the reply,
    // so no client is left sending into it and no socket waits on the rest.
    const close = req.raw.complete ? {} : { connection: 'close' };
    void reply
      .code(e.status)
      .headers({ ...e.headers, ...close })
      .send({ error: e.message, ...e.body });
  });
  app.setNotFoundHandler(
    (req, reply) => void reply.code(404).send({ error: `No route ${req.method} ${req.url.split('?')[0]}` }),
  );
  await app.register(routes);
  await app.register(wd14Routes);
  if (o.dataset) {
    const set = o.dataset;
    await app.register(async (a) => reviewRoutes(a, set));
  }
  return app;
}
