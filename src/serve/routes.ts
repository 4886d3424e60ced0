// `serve`'s own routes, as a fastify plugin over `req.tagger`: the JSON API (/healthz, /v1/model, /v1/tag,
// /v1/vec, /v1/similar, /v1/image/:i) and the web page (/, /page.js, /page.css: files in page/, served as
// they are, under a Content-Security-Policy that allows only this server's own scripts and styles).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import ort from 'onnxruntime-node';
import { thumbnailJpeg } from '../outputs/gallery.js';
import { selectOptionsFrom } from '../select/options.js';
import { captionerFrom } from '../captions/style.js';
import { selectTags, type TagScore } from '../select/select.js';
import { CATEGORY } from '../data/tags.js';
import { nearest, packBits } from '../outputs/vectors.js';
import { Fields, predArgs, queryFields } from './fields.js';
import { HttpError, unsupportedType } from './http-error.js';
import { messageOf } from '../util/errors.js';

/** The page's files: the source folder, from this module's place in dist/ (tsc copies no .html). */
const PAGE_DIR = fileURLToPath(new URL('../../../src/serve/page/', import.meta.url));
const PAGE_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/page.js': ['page.js', 'text/javascript; charset=utf-8'],
  '/page.css': ['page.css', 'text/css; charset=utf-8'],
  '/review': ['review.html', 'text/html; charset=utf-8'],
  '/review.js': ['review.js', 'text/javascript; charset=utf-8'],
  '/review.css': ['review.css', 'text/css; charset=utf-8'],
} as const;
const CSP =
  "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const CATEGORY_NAMES = new Map<number, string>(
  Object.entries(CATEGORY).map(([name, id]): [number, string] => [id, name]),
);
const categoryName = (id: number): string => CATEGORY_NAMES.get(id) ?? `category_${id}`;

type Image = { name: string; bytes: Buffer };

/**
 * The files and fields of a multipart form, every byte of the body counted against --max-body-mb as it
 * arrives (fields and part headers too, not only files: 413 beyond). Anything the parser cannot read (an
 * unterminated part, no closing boundary) is the client's: 400.
 */
async function formParts(req: FastifyRequest, images: Image[], fields: Fields): Promise<void> {
  const limit = req.server.served.o.bodyLimit;
  const parts = req.parts();
  let seen = 0;
  const count = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen <= limit) return;
    req.raw.off('data', count);
    // The parser ends its parts with this error: the loop below throws it.
    req.raw.emit('error', new HttpError(413, `Expected a request of at most ${limit} bytes but it holds more`));
  };
  req.raw.on('data', count);
  try {
    for await (const part of parts) {
      if (part.type === 'field') {
        fields.add(part.fieldname, String(part.value));
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of part.file as AsyncIterable<Buffer>) chunks.push(chunk);
      images.push({ name: part.filename || `image ${images.length + 1}`, bytes: Buffer.concat(chunks) });
    }
  } catch (err) {
    if (err instanceof HttpError || typeof (err as { statusCode?: unknown }).statusCode === 'number') throw err;
    throw new HttpError(400, `Expected a well-formed multipart/form-data body but it is not (${messageOf(err)})`);
  } finally {
    req.raw.off('data', count);
  }
}

/** The images of a request (a raw image/* body, or the files of a multipart form) and its fields (query and form). */
async function imagesOf(req: FastifyRequest): Promise<{ images: Image[]; fields: Fields }> {
  const fields = queryFields(req);
  const images: Image[] = [];
  if (req.isMultipart()) await formParts(req, images, fields);
  else if (Buffer.isBuffer(req.body)) images.push({ name: 'the image', bytes: req.body });
  else throw unsupportedType(req.headers['content-type']);
  if (images.length === 0) throw new HttpError(400, 'Expected at least one image file in the form but it has none');
  return { images, fields };
}

function grouped(tags: readonly TagScore[]): Record<string, { tag: string; prob: number }[]> {
  const out: Record<string, { tag: string; prob: number }[]> = {};
  for (const t of tags) (out[categoryName(t.category)] ??= []).push({ tag: t.tag, prob: t.prob });
  return out;
}

async function pageRoutes(app: FastifyInstance): Promise<void> {
  for (const [url, [file, type]] of Object.entries(PAGE_FILES)) {
    const body = await readFile(PAGE_DIR + file);
    app.get(url, async (_req, reply) =>
      reply.type(type).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').send(body),
    );
  }
}

export async function routes(app: FastifyInstance): Promise<void> {
  const { o } = app.served;
  await pageRoutes(app);
  app.get('/healthz', async (req) => ({ ok: true, queued: req.tagger.queued, ...req.tagger.stats }));
  app.get('/v1/model', async (req) => {
    const { model } = req.tagger;
    const { tags, categories } = model.meta;
    return {
      name: o.name,
      source: model.meta.source,
      precision: model.meta.precision,
      input: model.contract,
      tags: tags.map((tag, j) => ({ tag, category: categoryName(categories[j] ?? 0) })),
      hidden: model.meta.hidden,
      index: o.index ? { kind: o.index.meta.kind, images: o.index.meta.files.length } : null,
      versions: { onnxruntime: ort.env.versions.common, node: process.version },
    };
  });

  app.post('/v1/tag', async (req) => {
    const t = req.tagger;
    const { model } = t;
    const { tags, categories } = model.meta;
    const { images, fields } = await imagesOf(req);
    const warnings: string[] = [];
    const args = predArgs(fields);
    const name = (option: string): string => option;
    // The captioner `pred` uses: the reported tags and the caption by the chosen style's rules.
    const captioner = captionerFrom(args, model.tagInfo, (l) => warnings.push(l), name);
    const select =
      captioner.style === 'ours'
        ? await selectOptionsFrom(args, model.tagInfo, (l) => warnings.push(l), name)
        : undefined;
    const results = await Promise.all(
      images.map(async (img) => {
        const { probs } = await t.infer(img.bytes, img.name);
        const c = captioner.caption(select ? selectTags(probs, tags, categories, select) : [], probs);
        return { name: img.name, tags: grouped(c.tags), caption: captioner.fileText(c.items).trimEnd() };
      }),
    );
    return { images: results, ...(warnings.length ? { warnings } : {}) };
  });

  app.post('/v1/vec', async (req) => {
    const t = req.tagger;
    const { model } = t;
    const { images, fields } = await imagesOf(req);
    const kind = fields.choice('kind', ['probs', 'features', 'binary'] as const) ?? 'probs';
    if (kind !== 'probs' && model.meta.hidden === 0)
      throw new HttpError(400, `Expected kind probs: this model has no features output`);
    return {
      images: await Promise.all(
        images.map(async (img) => {
          const out = await t.infer(img.bytes, img.name);
          if (kind === 'probs') return { name: img.name, vector: Array.from(out.probs) };
          if (kind === 'features') return { name: img.name, vector: Array.from(out.features) };
          return { name: img.name, hash: Buffer.from(packBits(out.features, 1, out.features.length)).toString('hex') };
        }),
      ),
    };
  });
  indexRoutes(app);
}

/** The routes over `--index`: nearest neighbours of an image, and the index's own images. */
function indexRoutes(app: FastifyInstance): void {
  const { o } = app.served;
  app.post('/v1/similar', async (req) => {
    const t = req.tagger;
    if (!o.index) throw new HttpError(404, 'Expected the server to be started with --index for /v1/similar');
    const { meta, index } = o.index;
    const { images, fields } = await imagesOf(req);
    const k = fields.integer('k', 1, 1000) ?? 10;
    const out = await t.infer(images[0]!.bytes, images[0]!.name);
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
    const given = (req.params as { i: string }).i;
    const i = /^\d+$/.test(given) ? Number(given) : -1;
    const file = o.index?.meta.files[i];
    if (!file) throw new HttpError(404, `No image ${JSON.stringify(given)} in the index`);
    const jpeg = await thumbnailJpeg(file).catch(() => {
      throw new HttpError(404, `The index's image ${i} cannot be read`);
    });
    return reply.type('image/jpeg').send(jpeg);
  });
}
