// `serve --dataset DIR`'s review API (issue 42), a fastify plugin over `req.tagger` and the ReviewSet
// (src/review/): the images and a filter over them, one image's caption tags beside the model's (each
// agreeing, model-only or human-only), its image, caption writes that never replace a caption changed
// on disk since it was read (409 with what is there), and tag completion. Images are addressed by their
// index in the listing, never by a path from the request.
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { thumbnailJpeg } from '../outputs/gallery.js';
import { CaptionConflict, type ReviewSet } from '../review/review-set.js';
import { HttpError } from './http-error.js';
import type { Tagger } from './context.js';
import type { TaggerModel } from '../model/tagger.js';

/** A request's image index, checked against the listing. */
async function imageOf(
  set: ReviewSet,
  req: FastifyRequest,
): Promise<{ i: number; img: Awaited<ReturnType<ReviewSet['image']>> }> {
  const given = (req.params as { i: string }).i;
  const i = /^\d{1,9}$/.test(given) ? Number(given) : -1;
  if (i < 0 || i >= set.images.length) throw new HttpError(404, `No image ${JSON.stringify(given)} in the dataset`);
  try {
    return { i, img: await set.image(i) };
  } catch {
    throw new HttpError(403, `Image ${i} leads outside the dataset (a symbolic link); it is not served`);
  }
}

/** The body of a caption write: {tags: string[], etag: string}. */
function writeBody(body: unknown): { tags: string[]; etag: string } {
  const b = body as { tags?: unknown; etag?: unknown } | null;
  if (!b || !Array.isArray(b.tags) || !b.tags.every((t) => typeof t === 'string') || typeof b.etag !== 'string')
    throw new HttpError(400, 'Expected a JSON body {"tags": [strings], "etag": the caption\'s etag as read}');
  if (b.tags.length > 10_000) throw new HttpError(400, 'Expected at most 10000 tags');
  return { tags: b.tags as string[], etag: b.etag };
}

/** The threshold over which the model's tags are shown (pred's and the web UI tagger's default). */
const threshold = 0.35;

/** Each model's scores of each image, kept once computed (the images are never written to). */
const scoreCache = new WeakMap<TaggerModel, Map<number, Float32Array>>();

export async function scoresOf(t: Tagger, set: ReviewSet, i: number): Promise<Float32Array> {
  const cache = scoreCache.get(t.model) ?? scoreCache.set(t.model, new Map()).get(t.model)!;
  const hit = cache.get(i);
  if (hit) return hit;
  const img = await set.image(i);
  const { probs } = await t.infer(await readFile(img.file), img.name);
  cache.set(i, probs);
  return probs;
}

/**
 * How much the model and a caption disagree: over the model's own tags, the confidence of each tag the
 * model gives over the threshold that the caption lacks, plus the doubt (1 − score) of each caption tag
 * the model scores under it. Tags the model does not know do not count.
 */
function disagreement(probs: Float32Array, caption: readonly string[], modelTags: readonly string[]): number {
  const have = new Set(caption);
  let d = 0;
  modelTags.forEach((tag, j) => {
    const p = probs[j]!;
    if (p >= threshold && !have.has(tag)) d += p;
    else if (p < threshold && have.has(tag)) d += 1 - p;
  });
  return d;
}

/** One image: its caption, and the model's tags over the threshold beside the caption's, each marked. */
async function imageDetail(set: ReviewSet, req: FastifyRequest): Promise<Record<string, unknown>> {
  const t = req.tagger;
  const { tags: modelTags, categories } = t.model.meta;
  const { i, img } = await imageOf(set, req);
  const caption = await set.caption(img);
  const probs = await scoresOf(t, set, i);
  const human = new Set(caption.tags);
  const model = modelTags
    .map((tag, j) => ({ tag, prob: probs[j]!, category: categories[j]! }))
    .filter((x) => x.prob >= threshold)
    .sort((a, b) => b.prob - a.prob);
  const byModel = new Set(model.map((m) => m.tag));
  return {
    i,
    name: img.name,
    reviewed: set.isReviewed(img.name),
    caption,
    tags: [
      ...model.map((m) => ({ ...m, mark: human.has(m.tag) ? 'agree' : 'model-only' })),
      ...caption.tags.filter((h) => !byModel.has(h)).map((h) => ({ tag: h, prob: null, mark: 'human-only' })),
    ],
  };
}

export async function reviewRoutes(app: FastifyInstance, set: ReviewSet): Promise<void> {
  app.get('/v1/review', async (req) => {
    const t = req.tagger;
    const q = req.query as Record<string, string | undefined>;
    const want = (q.tag ?? '').split(/\s+/).filter(Boolean);
    const captions = await Promise.all(
      set.images.map((img) => set.caption(img).catch(() => ({ tags: [], etag: 'none' }))),
    );
    const rows = set.images.map((img, i) => ({
      i,
      name: img.name,
      tags: captions[i]!.tags.length,
      reviewed: set.isReviewed(img.name),
    }));
    let keep = rows.filter((r, i) => {
      const have = new Set(captions[i]!.tags);
      if (q.filter === 'untagged' && r.tags > 0) return false;
      if (q.filter === 'unreviewed' && r.reviewed) return false;
      // `tag=a b -c`: every plain tag present, every -tag absent.
      return want.every((w) => (w.startsWith('-') ? !have.has(w.slice(1)) : have.has(w)));
    });
    if (q.filter === 'disagree') {
      // Every listed image scored (once: kept), the most disagreeing first; a failing image last.
      const d = new Map<number, number>();
      for (const r of keep)
        d.set(
          r.i,
          await scoresOf(t, set, r.i).then(
            (p) => disagreement(p, captions[r.i]!.tags, t.model.meta.tags),
            () => -1,
          ),
        );
      keep = keep.map((r) => ({ ...r, disagreement: d.get(r.i)! })).sort((a, b) => d.get(b.i)! - d.get(a.i)!);
    }
    return { images: keep, total: rows.length, reviewed: set.reviewedCount };
  });

  app.get('/v1/review/:i', async (req) => imageDetail(set, req));

  app.get('/v1/review/:i/image', async (req, reply) => {
    const { img } = await imageOf(set, req);
    const jpeg = await thumbnailJpeg(img.file).catch(() => {
      throw new HttpError(404, `The image ${img.name} cannot be read`);
    });
    return reply.type('image/jpeg').send(jpeg);
  });

  app.put('/v1/review/:i', async (req) => {
    const { img } = await imageOf(set, req);
    const { tags, etag } = writeBody(req.body);
    try {
      return { etag: await set.write(img, tags, etag) };
    } catch (err) {
      if (err instanceof CaptionConflict)
        throw new HttpError(
          409,
          `The caption of ${img.name} changed on disk since it was read; nothing was written`,
          {},
          { current: err.current },
        );
      if (err instanceof RangeError) throw new HttpError(400, err.message);
      throw err;
    }
  });

  app.get('/v1/review/tags', async (req) => {
    const prefix = ((req.query as { q?: string }).q ?? '').toLowerCase();
    const counts = await set.datasetTags();
    for (const tag of req.tagger.model.meta.tags) if (!counts.has(tag)) counts.set(tag, 0);
    const hits = [...counts].filter(([tag]) => tag.toLowerCase().startsWith(prefix));
    hits.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return { tags: hits.slice(0, 20).map(([tag, count]) => ({ tag, count })) };
  });
}
