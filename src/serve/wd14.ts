// The WD14 web UI tagger's API (/tagger/v1/interrogators, /tagger/v1/interrogate) as a fastify plugin
// over `req.tagger`, so clients written for that tagger work unchanged.
import type { FastifyInstance } from 'fastify';
import { CATEGORY } from '../data/tags.js';
import { WEBUI_THRESHOLD } from '../captions/webui.js';
import { HttpError } from './http-error.js';

export async function wd14Routes(app: FastifyInstance): Promise<void> {
  const { name } = app.served.o;
  app.get('/tagger/v1/interrogators', async () => ({ models: [name] }));
  app.post('/tagger/v1/interrogate', async (req) => {
    const t = req.tagger;
    const { tags, categories } = t.model.meta;
    const body = req.body as { image?: unknown; model?: unknown; threshold?: unknown } | undefined;
    if (!body || typeof body !== 'object' || Buffer.isBuffer(body))
      throw new HttpError(
        400,
        `Expected a JSON body {"image": "<base64>", "model": NAME, "threshold": ${WEBUI_THRESHOLD}}`,
      );
    if (typeof body.image !== 'string' || body.image.length === 0)
      throw new HttpError(400, 'Expected "image" to be a base64 string');
    if (body.model !== undefined && body.model !== name)
      throw new HttpError(
        404,
        `Expected model ${JSON.stringify(name)} (GET /tagger/v1/interrogators) but received ${JSON.stringify(body.model)}`,
      );
    const threshold = body.threshold === undefined ? WEBUI_THRESHOLD : Number(body.threshold);
    if (!(threshold >= 0 && threshold <= 1))
      throw new HttpError(400, `Expected "threshold" between 0 and 1 but received ${JSON.stringify(body.threshold)}`);
    const b64 = body.image.replace(/^data:[^;,]*;base64,/, '');
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(b64))
      throw new HttpError(400, 'Expected "image" to be base64 (A–Z, a–z, 0–9, +, /, =) but it holds other characters');
    const { probs } = await t.infer(Buffer.from(b64, 'base64'), 'the image');
    const caption: Record<string, number> = {};
    // As that API answers: every rating with its probability, then the tags at or above the threshold.
    tags.forEach((tag, j) => {
      if (categories[j] === CATEGORY.rating) caption[tag] = probs[j]!;
    });
    tags
      .map((tag, j) => [tag, probs[j]!, j] as const)
      .filter(([, p, j]) => categories[j] !== CATEGORY.rating && p >= threshold)
      .sort((a, b) => b[1] - a[1])
      .forEach(([tag, p]) => (caption[tag] = p));
    return { caption };
  });
}
