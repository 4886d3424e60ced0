// A gallery of results, as the original write-up showed them: one self-contained HTML page (images
// embedded as small JPEG/PNG data URIs, no scripts, no external assets) with each image's predicted tags
// as probability bars and, where the true tags are known (shards, or .txt files beside the images),
// each tag marked correct, wrong or missed.
import { readShard, readShardIndex } from '../data/shards.js';
import sharp from 'sharp';
import { readTagFile } from '../data/scan.js';
import { stat } from 'node:fs/promises';
import { decodeBatches, listImages } from '../predict/inputs.js';
import type { TaggerModel } from '../model/tagger.js';
import { NON_FINITE, nonFiniteError } from '../predict/tagging.js';

export interface GalleryItem {
  name: string;
  /** A data: URI of the thumbnail. */
  src: string;
  probs: Float32Array;
  /** The true tags, when known. */
  truth?: Set<string>;
}

export interface GalleryOptions {
  limit: number;
  threshold: number;
}

const THUMB = 192;

/** A small JPEG of an image file or of raw S×S×3 pixels (gallery cards, serve's /v1/image). */
export async function thumbnailJpeg(input: string | { raw: Buffer; size: number }): Promise<Buffer> {
  const img =
    typeof input === 'string'
      ? sharp(input, { failOn: 'error', animated: false }).rotate()
      : sharp(input.raw, { raw: { width: input.size, height: input.size, channels: 3 } });
  return img
    .resize(THUMB, THUMB, { fit: 'inside' })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 80 })
    .toBuffer();
}

async function thumbnail(input: string | { raw: Buffer; size: number }): Promise<string> {
  return `data:image/jpeg;base64,${(await thumbnailJpeg(input)).toString('base64')}`;
}

/** Gallery items from a folder of images (true tags from sibling .txt files) or a shards folder (holdout first). */
export async function galleryItems(
  model: TaggerModel,
  source: string,
  opts: GalleryOptions,
  onFailure: (file: string, reason: string) => void,
): Promise<GalleryItem[]> {
  const isShards = await stat(`${source}/index.json`).then(
    (s) => s.isFile(),
    () => false,
  );
  return isShards ? shardItems(model, source, opts.limit) : folderItems(model, source, opts.limit, onFailure);
}

async function* firstN(files: AsyncIterable<string>, n: number): AsyncGenerator<string> {
  let i = 0;
  for await (const f of files) {
    if (i++ >= n) return;
    yield f;
  }
}

async function folderItems(
  model: TaggerModel,
  dir: string,
  limit: number,
  onFailure: (file: string, reason: string) => void,
): Promise<GalleryItem[]> {
  const items: GalleryItem[] = [];
  const k = model.meta.tags.length;
  for await (const b of decodeBatches(firstN(listImages([dir]), limit), { ...model.preprocess, batch: 8 })) {
    for (const f of b.failures) onFailure(f.file, f.reason);
    if (b.files.length === 0) continue;
    const { probs, nonFinite } = await model.run(b.images, b.files.length);
    for (const [i, file] of b.files.entries()) {
      if (nonFinite.includes(i)) {
        onFailure(file, NON_FINITE);
        continue;
      }
      const truth = await readTagFile(file.replace(/\.[^./\\]+$/, '.txt')).then(
        (t) => new Set(t),
        () => undefined,
      );
      items.push({
        name: file.slice(dir.length).replace(/^[/\\]/, ''),
        src: await thumbnail(file),
        probs: probs.slice(i * k, (i + 1) * k),
        truth,
      });
    }
  }
  return items;
}

async function shardItems(model: TaggerModel, dir: string, limit: number): Promise<GalleryItem[]> {
  const index = await readShardIndex(dir);
  const items: GalleryItem[] = [];
  const s = index.imageSize;
  const k = index.tags.count;
  const entries = [...index.shards].sort((a, b) => (a.split === b.split ? 0 : a.split === 'holdout' ? -1 : 1));
  for (const e of entries) {
    if (items.length >= limit) break;
    const shard = await readShard(dir, e, index);
    const n = Math.min(shard.count, limit - items.length);
    const { probs, nonFinite } = await model.run(shard.images.subarray(0, n * s * s * 3), n);
    if (nonFinite.length > 0) throw nonFiniteError(model, nonFinite.length, n);
    for (let i = 0; i < n; i++) {
      const truth = new Set(index.tags.names.filter((_, j) => shard.labels[i * k + j] === 1));
      items.push({
        name: `${shard.names[i]} (${e.split})`,
        src: await thumbnail({ raw: Buffer.from(shard.images.subarray(i * s * s * 3, (i + 1) * s * s * 3)), size: s }),
        probs: probs.slice(i * model.meta.tags.length, (i + 1) * model.meta.tags.length),
        truth,
      });
    }
  }
  return items;
}

const escape = (t: string): string => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page: a card per image, its tags as bars (≥ threshold, plus true tags it missed), a legend and totals. */
export function galleryHtml(
  items: readonly GalleryItem[],
  tags: readonly string[],
  title: string,
  threshold: number,
): string {
  let correct = 0;
  let wrong = 0;
  let missed = 0;
  const cards = items.map((it) => {
    const rows = tags
      .map((tag, j) => ({ tag, p: it.probs[j]!, known: it.truth?.has(tag) ?? false }))
      .filter((r) => r.p >= threshold || r.known)
      .sort((a, b) => b.p - a.p)
      .map((r) => {
        const cls = !it.truth ? 'pred' : r.p >= threshold ? (r.known ? 'correct' : 'wrong') : 'missed';
        if (cls === 'correct') correct++;
        else if (cls === 'wrong') wrong++;
        else if (cls === 'missed') missed++;
        return `<li class="${cls}"><span class="bar" style="width:${(100 * r.p).toFixed(1)}%"></span><span class="tag">${escape(r.tag)}</span><span class="p">${r.p.toFixed(2)}</span></li>`;
      });
    return `<figure><img src="${it.src}" alt="${escape(it.name)}"><figcaption>${escape(it.name)}</figcaption><ul>${rows.join('')}</ul></figure>`;
  });
  const known = items.some((i) => i.truth);
  const totals = known
    ? `<p class="totals">${correct} correct, ${wrong} wrong, ${missed} missed at threshold ${threshold}</p>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title><style>
body{font:14px system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:1em}
figure{margin:0;padding:.6em;background:#fff;border:1px solid #ddd;border-radius:6px}
img{display:block;max-width:100%;margin:0 auto .4em}
figcaption{font-size:12px;color:#666;word-break:break-all}
ul{list-style:none;padding:0;margin:.4em 0 0}
li{position:relative;display:flex;justify-content:space-between;padding:1px 4px;margin:2px 0}
.bar{position:absolute;left:0;top:0;bottom:0;opacity:.3;z-index:0}.tag,.p{position:relative}
.pred .bar{background:#4a78c2}.correct .bar{background:#2a9d4b}.wrong .bar{background:#d0453a}.missed .bar{background:#999}
.missed .tag{text-decoration:line-through;color:#777}.legend span{margin-right:1em}
.legend .correct{color:#2a9d4b}.legend .wrong{color:#d0453a}.legend .missed{color:#999}
</style></head><body><h1>${escape(title)}</h1>${totals}<p class="legend">${known ? '<span class="correct">■ correct</span><span class="wrong">■ wrong</span><span class="missed">■ missed (true tag below the threshold)</span>' : ''}</p><main>${cards.join('\n')}</main></body></html>
`;
}
