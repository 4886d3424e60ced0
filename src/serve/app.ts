// The HTTP server of `serve` (fastify): one model loaded once, images decoded in parallel and batched
// into it dynamically, a bounded queue (503 + Retry-After when full), a per-request timeout, body and
// pixel limits (413), and every bad request answered 4xx with a JSON error naming the problem. Routes:
// routes.ts (our API and the WD14 web UI tagger's), page.ts (the web page).
import fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { ImageError, preprocessImage } from '../data/images.js';
import type { TaggerModel } from '../predict/model.js';
import type { NpyArray } from '../predict/npy.js';
import type { VecIndexMeta } from '../predict/vectors.js';
import { messageOf, UsageError } from '../util/errors.js';
import { limiter } from '../util/limit.js';
import { Batcher, QueueFullError } from './batcher.js';
import { registerRoutes } from './routes.js';

export interface ServeOptions {
  name: string;
  batch: number;
  maxWaitMs: number;
  queue: number;
  timeoutMs: number;
  bodyLimit: number;
  maxPixels: number;
  token?: string;
  index?: { meta: VecIndexMeta; index: NpyArray };
}

/** An HTTP error with its status; the message goes to the client as {"error": …}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ServeContext {
  model: TaggerModel;
  o: ServeOptions;
  batcher: Batcher;
  /** Images accepted and not yet answered. */
  readonly queued: number;
  /** Decode one uploaded image (parallel, bounded) and run it through the batcher, within the timeout. */
  infer(bytes: Buffer, name: string): Promise<{ probs: Float32Array; features: Float32Array }>;
}

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

export async function buildServer(model: TaggerModel, o: ServeOptions): Promise<FastifyInstance> {
  // On close: idle keep-alive connections are closed at once, requests in flight are finished.
  const app = fastify({
    bodyLimit: o.bodyLimit,
    logger: false,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  const batcher = new Batcher(model, { batch: o.batch, maxWaitMs: o.maxWaitMs, queue: o.queue });
  const decode = limiter(Math.max(2, Math.floor((await import('node:os')).availableParallelism() / 2)));
  // Images accepted and not yet answered (decoding or waiting for the model): the bounded queue.
  let queued = 0;
  const ctx: ServeContext = {
    model,
    o,
    batcher,
    get queued() {
      return queued;
    },
    infer: async (bytes, name) => {
      if (bytes.length === 0) throw new HttpError(400, `Expected image bytes for ${name} but received an empty body`);
      if (queued >= o.queue)
        throw new HttpError(503, `the server is busy (${o.queue} images queued); retry shortly`, {
          'retry-after': '1',
        });
      queued++;
      try {
        let pixels: Buffer;
        try {
          pixels = await decode(() => preprocessImage(bytes, name, { ...model.preprocess, maxPixels: o.maxPixels }));
        } catch (err) {
          if (err instanceof ImageError) {
            const status = err.reason === 'too-large' ? 413 : 400;
            throw new HttpError(
              status,
              `Expected ${status === 413 ? `an image of at most ${o.maxPixels} pixels` : 'a readable image'} for ${name} but it is ${err.reason} (${err.detail})`,
            );
          }
          throw err;
        }
        return await withTimeout(batcher.run(pixels), o.timeoutMs);
      } finally {
        queued--;
      }
    },
  };
  app.addContentTypeParser(/^image\//, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  await app.register(multipart, { limits: { fileSize: o.bodyLimit, files: 64, fields: 64 } });
  if (o.token) {
    app.addHook('onRequest', async (req: FastifyRequest) => {
      if (req.url === '/healthz') return;
      const given =
        req.headers.authorization?.replace(/^Bearer\s+/i, '') ?? new URL(req.url, 'http://x').searchParams.get('token');
      if (given !== o.token)
        throw new HttpError(
          401,
          'Expected the server token as "Authorization: Bearer TOKEN" (or ?token= for the page)',
        );
    });
  }
  app.setErrorHandler(
    (err: Error & { statusCode?: number; code?: string }, _req: FastifyRequest, reply: FastifyReply) => {
      let status =
        err instanceof HttpError
          ? err.status
          : err instanceof UsageError
            ? 400
            : err instanceof QueueFullError
              ? 503
              : (err.statusCode ?? 500);
      if (err.code === 'FST_REQ_FILE_TOO_LARGE' || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') status = 413;
      if (err instanceof HttpError) for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
      if (status === 503) void reply.header('retry-after', '1');
      const message =
        status === 415
          ? `Expected an image (image/*), multipart/form-data or JSON body but received ${JSON.stringify(_req.headers['content-type'] ?? 'none')}`
          : messageOf(err);
      void reply.code(status).send({ error: message });
    },
  );
  app.setNotFoundHandler(
    (req, reply) => void reply.code(404).send({ error: `No route ${req.method} ${req.url.split('?')[0]}` }),
  );
  registerRoutes(app, ctx);
  return app;
}
