// The review page's Teach API (issue 42, item 3), a fastify plugin over the TeachJob (src/review/):
// start a run in the background, poll its progress and per-tag AP (beside the served model's), swap the
// served model for the merged one (served.ts: requests in flight finish on the old one), and download
// the merged model and its tags and thresholds files.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { checkExternalData } from '../model/external-data.js';
import { TaggerModel } from '../model/tagger.js';
import type { ReviewSet } from '../review/review-set.js';
import { TeachBusy, type TeachJob } from '../review/teach-job.js';
import { HttpError } from './http-error.js';
import { UsageError } from '../util/errors.js';
import { scoresOf } from './review-routes.js';

/** The tags of a body: {} (absent) or {"tags": [names]}, for a start and for a swap. */
function tagsBody(body: unknown): string[] | undefined {
  const b = (body ?? {}) as { tags?: unknown };
  if (typeof b !== 'object' || Buffer.isBuffer(b))
    throw new HttpError(400, 'Expected a JSON body {} or {"tags": [tag names]}');
  if (b.tags === undefined) return undefined;
  if (!Array.isArray(b.tags) || b.tags.length === 0 || b.tags.length > 10_000)
    throw new HttpError(400, 'Expected "tags" to be a list of 1 to 10000 tag names');
  if (!b.tags.every((t) => typeof t === 'string' && /^[^\s,]{1,200}$/u.test(t)))
    throw new HttpError(400, 'Expected each of "tags" to be a tag name (1 to 200 characters, no spaces or commas)');
  return [...new Set(b.tags as string[])];
}

const FILES = {
  model: ['model', 'application/octet-stream'],
  tags: ['tagsFile', 'text/csv; charset=utf-8'],
  thresholds: ['thresholdsFile', 'text/csv; charset=utf-8'],
} as const;

export async function teachRoutes(app: FastifyInstance, set: ReviewSet, job: TeachJob): Promise<void> {
  app.get('/v1/review/teach', async () => job.status);

  app.post('/v1/review/teach', async (req, reply) => {
    const chosen = tagsBody(req.body);
    const t = req.tagger;
    try {
      // The served model now is the one to compare with; its scores are those the review shows.
      void job.start(chosen, { tags: t.model.meta.tags, scoresOf: (i) => scoresOf(t, set, i) });
    } catch (err) {
      if (err instanceof TeachBusy) throw new HttpError(409, err.message);
      throw err;
    }
    return reply.code(202).send(job.status);
  });

  app.post('/v1/review/teach/swap', async (req) => {
    const keep = tagsBody(req.body);
    const r = job.status.result;
    if (job.status.state !== 'done' || !r) throw new HttpError(409, 'Expected a finished teach run to serve');
    if (r.swapped) throw new HttpError(409, `The server already serves ${path.basename(r.model)}`);
    // Only the chosen taught tags: the merged model is written again without the others.
    if (keep)
      await job.keepOnly(keep).catch((err: Error) => {
        throw err instanceof UsageError ? new HttpError(400, err.message) : err;
      });
    const { threads, executionProviders } = job.o.base.load;
    const model = await TaggerModel.load(r.model, { threads, executionProviders }).catch((err: Error) => {
      throw new HttpError(500, `The merged model ${path.basename(r.model)} does not load: ${err.message}`);
    });
    await model.warmUp(app.served.o.batch);
    await app.served.swap(model);
    job.markSwapped();
    return { model: path.basename(r.model), tags: model.meta.tags.length, taught: r.kept };
  });

  app.get('/v1/review/teach/files/:kind', async (req, reply) => {
    const kind = (req.params as { kind: string }).kind;
    const r = job.status.result;
    if (!Object.hasOwn(FILES, kind))
      throw new HttpError(404, `No file ${JSON.stringify(kind)}: model, tags or thresholds`);
    const [key, type] = FILES[kind as keyof typeof FILES];
    const file = r?.[key];
    if (!file) throw new HttpError(404, `Expected a finished teach run with a ${kind} file`);
    const bytes = await readFile(file).catch(() => {
      throw new HttpError(404, `The ${kind} file ${path.basename(file)} is gone`);
    });
    if (kind === 'model' && (await checkExternalData(bytes, file)).length > 0)
      throw new HttpError(
        409,
        `The merged model ${file} names the base model's external data files: copy it from its folder with them`,
      );
    return reply
      .type(type)
      .header('content-disposition', `attachment; filename="${path.basename(file).replace(/[^\w.-]/g, '_')}"`)
      .send(bytes);
  });
}
