// The HTTP server of `serve` (fastify): one model loaded once, images decoded in parallel and batched
// into it dynamically, a bounded admission (503 + Retry-After when full), a per-request timeout, body and
// pixel limits (413), and every bad request answered 4xx with a JSON error naming the problem. The routes
// are plugins over `req.tagger` (context.ts; the model a request runs on, served.ts): routes.ts (our API and the page), wd14.ts (the WD14 web UI
// tagger's API).
import fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { TaggerModel } from '../model/tagger.js';
import type { ServeOptions, Tagger } from './context.js';
import { ServedModels } from './served.js';
import { HttpError, replyOf, unsupportedType } from './http-error.js';
import { routes } from './routes.js';
import { wd14Routes } from './wd14.js';
import { reviewRoutes } from './review-routes.js';
import { teachRoutes } from './teach-routes.js';

export type { ServeOptions } from './context.js';

/** Paths that answer without the token: they hold no model output (the page asks for the token itself). */
const OPEN_PATHS = new Set(['/healthz', '/', '/page.js', '/page.css', '/review', '/review.js', '/review.css']);

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
  // Each request holds the model it started with (req.tagger) to its end: a swap (served.ts) never
  // changes the model under a request in flight, and the old model is released after its last one.
  const served = new ServedModels(model, o);
  app.decorate('served', served);
  app.decorateRequest('tagger', null as unknown as Tagger);
  app.addHook('onRequest', async (req) => void (req.tagger = served.acquire()));
  const done = async (req: FastifyRequest): Promise<void> => {
    const t = req.tagger as Tagger | null;
    (req as unknown as { tagger: Tagger | null }).tagger = null;
    if (t) await served.done(t);
  };
  app.addHook('onResponse', done);
  app.addHook('onRequestAbort', done);
  app.addHook('onClose', async () => served.close()); // the server owns its models from here
  trackInflight(app);
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
    const job = o.teach;
    if (job) await app.register(async (a) => teachRoutes(a, set, job));
  }
  return app;
}
