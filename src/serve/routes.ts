// `serve`'s routes: our JSON API (/healthz, /v1/model, /v1/tag, /v1/vec, /v1/similar, /v1/image/:i), the
// WD14 web UI tagger's API (/tagger/v1/interrogators, /tagger/v1/interrogate) so its clients work
// unchanged, and the web page at /.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import ort from 'onnxruntime-node';
import { captionText, orderCaption } from '../predict/caption.js';
import { thumbnailJpeg } from '../predict/gallery.js';
import { captionOptionsFrom, selectOptionsFrom, type PredArgs } from '../predict/options.js';
import { CATEGORY, selectTags, type TagScore } from '../predict/select.js';
import { nearest, packBits } from '../predict/vectors.js';
import { HttpError, type ServeContext } from './app.js';
import { PAGE } from './page.js';

type Fields = Record<string, string[]>;

const CATEGORY_NAMES = new Map<number, string>(
  Object.entries(CATEGORY).map(([name, id]): [number, string] => [id, name]),
);
const categoryName = (id: number): string => CATEGORY_NAMES.get(id) ?? `category_${id}`;

/** The images of a request (a raw image/* body, or the files of a multipart form) and its option fields (query and form). */
async function imagesOf(req: FastifyRequest): Promise<{ images: { name: string; bytes: Buffer }[]; fields: Fields }> {
  const fields: Fields = {};
  const add = (k: string, v: string): void => void (fields[k.replace(/_/g, '-')] ??= []).push(v);
  for (const [k, v] of new URL(req.url, 'http://x').searchParams) if (k !== 'token') add(k, v);
  const images: { name: string; bytes: Buffer }[] = [];
  if (req.isMultipart()) {
    for await (const part of req.parts()) {
      if (part.type === 'file')
        images.push({ name: part.filename || `image ${images.length + 1}`, bytes: await part.toBuffer() });
      else add(part.fieldname, String(part.value));
    }
  } else if (Buffer.isBuffer(req.body)) images.push({ name: 'the image', bytes: req.body });
  else
    throw new HttpError(
      415,
      `Expected an image (image/*) or multipart/form-data body but received ${JSON.stringify(req.headers['content-type'] ?? 'none')}`,
    );
  if (images.length === 0) throw new HttpError(400, 'Expected at least one image file in the form but it has none');
  return { images, fields };
}

/** pred's options from string fields (`general-threshold=0.4`, `exclude=a,b`, `rating=all`, …). */
function predArgs(f: Fields): PredArgs {
  const one = (k: string): string | undefined => f[k]?.at(-1);
  const num = (k: string): number | undefined => {
    const v = one(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n))
      throw new HttpError(400, `Expected a number for ${k} but received ${JSON.stringify(v)}`);
    return n;
  };
  const flag = (k: string): boolean => ['1', 'true', 'yes', ''].includes(one(k)?.toLowerCase() ?? 'no');
  return {
    top: num('top'),
    threshold: num('threshold'),
    generalThreshold: num('general-threshold'),
    characterThreshold: num('character-threshold'),
    categoryThreshold: f['category-threshold'],
    mcut: one('mcut'),
    rating: one('rating') ?? 'top',
    ratingPosition: one('rating-position') ?? 'first',
    exclude: f.exclude,
    replace: f.replace,
    alwaysFirst: f['always-first'],
    characterFirst: flag('character-first'),
    underscores: flag('underscores'),
    escapeBrackets: flag('escape-brackets'),
    weighted: flag('weighted'),
    separator: one('separator') ?? ', ',
    sort: one('sort') ?? 'confidence',
  };
}

function grouped(tags: readonly TagScore[]): Record<string, { tag: string; prob: number }[]> {
  const out: Record<string, { tag: string; prob: number }[]> = {};
  for (const t of tags) (out[categoryName(t.category)] ??= []).push({ tag: t.tag, prob: t.prob });
  return out;
}

export function registerRoutes(app: FastifyInstance, ctx: ServeContext): void {
  const { model, o } = ctx;
  const { tags, categories } = model.meta;

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
  app.get('/healthz', async () => ({ ok: true, queued: ctx.queued, ...ctx.batcher.stats }));
  app.get('/v1/model', async () => ({
    name: o.name,
    source: model.meta.source,
    precision: model.meta.precision,
    input: model.contract,
    tags: tags.map((t, j) => ({ tag: t, category: categoryName(categories[j] ?? 0) })),
    hidden: model.meta.hidden,
    index: o.index ? { kind: o.index.meta.kind, images: o.index.meta.files.length } : null,
    versions: { onnxruntime: ort.env.versions.common, node: process.version },
  }));

  app.post('/v1/tag', async (req) => {
    const { images, fields } = await imagesOf(req);
    const warnings: string[] = [];
    const args = predArgs(fields);
    const select = await selectOptionsFrom(args, model, (l) => warnings.push(l.replace(/^warning: --?/, '')));
    const caption = captionOptionsFrom(args, model, (l) => warnings.push(l.replace(/^warning: --?/, '')));
    const results = await Promise.all(
      images.map(async (img) => {
        const chosen = selectTags((await ctx.infer(img.bytes, img.name)).probs, tags, categories, select);
        return { name: img.name, tags: grouped(chosen), caption: captionText(orderCaption(chosen, caption), caption) };
      }),
    );
    return { images: results, ...(warnings.length ? { warnings } : {}) };
  });

  app.post('/v1/vec', async (req) => {
    const { images, fields } = await imagesOf(req);
    const kind = fields.kind?.at(-1) ?? 'probs';
    if (!['probs', 'features', 'binary'].includes(kind))
      throw new HttpError(400, `Expected kind probs, features or binary but received ${JSON.stringify(kind)}`);
    if (kind !== 'probs' && model.meta.hidden === 0)
      throw new HttpError(400, `Expected kind probs: this model has no features output`);
    return {
      images: await Promise.all(
        images.map(async (img) => {
          const out = await ctx.infer(img.bytes, img.name);
          if (kind === 'probs') return { name: img.name, vector: Array.from(out.probs) };
          if (kind === 'features') return { name: img.name, vector: Array.from(out.features) };
          return { name: img.name, hash: Buffer.from(packBits(out.features, 1, out.features.length)).toString('hex') };
        }),
      ),
    };
  });

  app.post('/v1/similar', async (req) => {
    if (!o.index) throw new HttpError(404, 'Expected the server to be started with --index for /v1/similar');
    const { meta, index } = o.index;
    const { images, fields } = await imagesOf(req);
    const k = Math.min(Math.max(1, Number(fields.k?.at(-1) ?? 10) || 10), 1000);
    const out = await ctx.infer(images[0]!.bytes, images[0]!.name);
    const q =
      meta.kind === 'probs'
        ? out.probs
        : meta.kind === 'features'
          ? out.features
          : packBits(out.features, 1, out.features.length);
    const byFile = new Map(meta.files.map((f, i) => [f, i]));
    return {
      kind: meta.kind,
      neighbours: nearest(q, index, meta, k).map((n) => ({
        file: n.file,
        score: n.score,
        image: `/v1/image/${byFile.get(n.file)}`,
      })),
    };
  });

  app.get('/v1/image/:i', async (req, reply) => {
    const i = Number((req.params as { i: string }).i);
    const file = o.index?.meta.files[i];
    if (!Number.isInteger(i) || !file)
      throw new HttpError(404, `No image ${JSON.stringify((req.params as { i: string }).i)} in the index`);
    const jpeg = await thumbnailJpeg(file).catch(() => {
      throw new HttpError(404, `The index's image ${i} cannot be read`);
    });
    return reply.type('image/jpeg').send(jpeg);
  });
  registerWd14Routes(app, ctx);
}

/** The WD14 web UI tagger's API: clients written for it work unchanged. */
function registerWd14Routes(app: FastifyInstance, ctx: ServeContext): void {
  const { model, o } = ctx;
  const { tags, categories } = model.meta;
  app.get('/tagger/v1/interrogators', async () => ({ models: [o.name] }));
  app.post('/tagger/v1/interrogate', async (req) => {
    const body = req.body as { image?: unknown; model?: unknown; threshold?: unknown } | undefined;
    if (!body || typeof body !== 'object' || Buffer.isBuffer(body))
      throw new HttpError(400, 'Expected a JSON body {"image": "<base64>", "model": NAME, "threshold": 0.35}');
    if (typeof body.image !== 'string' || body.image.length === 0)
      throw new HttpError(400, 'Expected "image" to be a base64 string');
    if (body.model !== undefined && body.model !== o.name)
      throw new HttpError(
        404,
        `Expected model ${JSON.stringify(o.name)} (GET /tagger/v1/interrogators) but received ${JSON.stringify(body.model)}`,
      );
    const threshold = body.threshold === undefined ? 0.35 : Number(body.threshold);
    if (!(threshold >= 0 && threshold <= 1))
      throw new HttpError(400, `Expected "threshold" between 0 and 1 but received ${JSON.stringify(body.threshold)}`);
    const b64 = body.image.replace(/^data:[^;,]*;base64,/, '');
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(b64))
      throw new HttpError(400, 'Expected "image" to be base64 (A–Z, a–z, 0–9, +, /, =) but it holds other characters');
    const { probs } = await ctx.infer(Buffer.from(b64, 'base64'), 'the image');
    const caption: Record<string, number> = {};
    // As that API answers: every rating with its probability, then the tags at or above the threshold.
    tags.forEach((t, j) => {
      if (categories[j] === CATEGORY.rating) caption[t] = probs[j]!;
    });
    tags
      .map((t, j) => [t, probs[j]!, j] as const)
      .filter(([, p, j]) => categories[j] !== CATEGORY.rating && p >= threshold)
      .sort((a, b) => b[1] - a[1])
      .forEach(([t, p]) => (caption[t] = p));
    return { caption };
  });
}
