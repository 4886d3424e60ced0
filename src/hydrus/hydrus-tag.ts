// `hydrus`: tag the files of a Hydrus search with any model pred runs and write the tags to a tag
// service (issue 43, item 1). Files are fetched by id, decoded and run in batches; the tags each file
// gets are pred's selection, spelled as Hydrus stores tags (lower case, spaces for underscores,
// namespaces from the tag categories), less those the file already has on that service (current,
// pending, or deleted by a human: never added back), plus a marker tag per model that a rerun's search
// leaves out. Only add (or pend, on a tag repository) is ever sent: nothing a human added is removed.
import { ImageError, preprocessFrames } from '../data/images.js';
import { CATEGORY } from '../data/tags.js';
import { DEFAULT_CAPTION, displayTag } from '../captions/ours.js';
import type { TaggerModel } from '../model/tagger.js';
import { selectTags, type SelectOptions } from '../select/select.js';
import { categoryId, listFlag } from '../select/options.js';
import { mergeFrames, type FrameMerge } from '../predict/tagging.js';
import { UsageError } from '../util/errors.js';
import { limiter } from '../util/limit.js';
import {
  HydrusFileGone,
  HydrusFileRefused,
  PERMISSION,
  TAG_SERVICE,
  type FileMeta,
  type HydrusClient,
  type HydrusService,
} from './client.js';

/** Hydrus' namespaces for our tag categories by default (its own conventions: creator, series, character). */
export const DEFAULT_NAMESPACES: ReadonlyMap<number, string> = new Map([
  [CATEGORY.artist, 'creator'],
  [CATEGORY.copyright, 'series'],
  [CATEGORY.character, 'character'],
  [CATEGORY.meta, 'meta'],
  [CATEGORY.rating, 'rating'],
]);

/** pred's flags that choose the tags (PRED_OPTIONS); the caption flags have no meaning here. */
export const HYDRUS_SELECT_FLAGS = [
  'top',
  'threshold',
  'general-threshold',
  'character-threshold',
  'category-threshold',
  'thresholds',
  'mcut',
  'rating',
  'exclude',
  'underscores',
] as const;

/** --namespace CATEGORY=NAMESPACE items over the defaults (an empty NAMESPACE: none). */
export function namespacesFrom(items: string | string[] | undefined): Map<number, string> {
  const out = new Map(DEFAULT_NAMESPACES);
  for (const item of listFlag(items)) {
    const m = /^([^=]+)=([^\s:]*)$/.exec(item);
    if (!m)
      throw new UsageError(
        `Expected --namespace CATEGORY=NAMESPACE (a namespace without spaces or colons) but received ${JSON.stringify(item)}`,
      );
    const id = categoryId(m[1]!.trim(), '--namespace');
    if (m[2]) out.set(id, m[2].toLowerCase());
    else out.delete(id);
  }
  return out;
}

/** Metadata asked for at a time (the client's own batch size for metadata). */
const METADATA_BATCH = 256;

export interface HydrusTagOptions {
  client: HydrusClient;
  /** Hydrus search predicates, ANDed (tags, `-tag`, `system:` predicates). */
  search: string[];
  /** The tag service to write to: its service key or its name. */
  service: string;
  model: TaggerModel;
  select: SelectOptions;
  namespaces: ReadonlyMap<number, string>;
  /** Added to every file done; files that have it are left out of the search. */
  marker: string;
  underscores: boolean;
  dryRun: boolean;
  batch: number;
  maxPixels: number;
  /** Evenly spaced frames of an animated image or video to tag, and how their scores merge (pred --frames). */
  frames: number;
  framesMerge: FrameMerge;
  info: (line: string) => void;
  warn: (line: string) => void;
  /** Each file's tags as they are (or in a dry run would be) written. */
  onFile: (file: { id: number; hash: string; tags: string[] }) => void;
  progress?: (done: number, total: number) => void;
}

export interface HydrusSummary {
  found: number;
  /** Already done: the marker on the service. */
  skipped: number;
  tagged: number;
  tagsAdded: number;
  /** Deleted between the search and the fetch. */
  gone: number;
  failed: number;
}

/** A tag as Hydrus stores it: lower case, spaces for underscores (unless asked), in its namespace. */
export function hydrusSpelling(
  tag: string,
  category: number,
  o: Pick<HydrusTagOptions, 'namespaces' | 'underscores'>,
): string {
  const bare = category === CATEGORY.rating ? tag.replace(/^rating:/, '') : tag;
  const sub = displayTag(bare, 1, { ...DEFAULT_CAPTION, underscores: o.underscores })
    .toLowerCase()
    .trim();
  const ns = o.namespaces.get(category);
  // An unnamespaced tag with a colon (`:d`, `re:zero`) is written with a leading colon, as Hydrus' CleanTag does.
  return ns ? `${ns}:${sub}` : sub.includes(':') ? `:${sub}` : sub;
}

/** The tag service named by `given`: its key, or its name (one service of that name). */
export function resolveService(services: readonly HydrusService[], given: string): HydrusService {
  const tagServices = services.filter((s) => s.type === TAG_SERVICE.local || s.type === TAG_SERVICE.repository);
  const byKey = tagServices.find((s) => s.key === given.toLowerCase());
  if (byKey) return byKey;
  const byName = tagServices.filter((s) => s.name === given);
  const list = tagServices.map((s) => `${JSON.stringify(s.name)} (${s.key})`).join(', ');
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1)
    throw new UsageError(
      `Expected --service to name one tag service but ${byName.length} are named ${JSON.stringify(given)}: give its service key (${list})`,
    );
  if (services.some((s) => s.key === given || s.name === given))
    throw new UsageError(
      `Expected --service to be a tag service but ${JSON.stringify(given)} is not one; the tag services: ${list}`,
    );
  throw new UsageError(
    `Expected --service to be a tag service's name or key but Hydrus has no ${JSON.stringify(given)}; the tag services: ${list}`,
  );
}

async function checkPermissions(o: HydrusTagOptions): Promise<void> {
  const p = await o.client.permissions();
  const need: [number, string][] = [[PERMISSION.searchFiles, 'search for files']];
  if (!o.dryRun) need.push([PERMISSION.addTags, 'add tags to files']);
  for (const [id, name] of need)
    if (!p.all && !p.basic.has(id))
      throw new UsageError(
        `Expected the access key to permit "${name}" but it does not: add it to the key under services > review services > client api${o.dryRun ? '' : ' (or try --dry-run, which only searches)'}`,
      );
}

/** The tags one file gets: the model's selection in Hydrus' spelling, less what it has, plus the marker. */
function newTags(o: HydrusTagOptions, probs: Float32Array, have: Set<string>): string[] {
  const { tags, categories } = o.model.meta;
  const chosen = selectTags(probs, tags, categories, o.select).map((t) => hydrusSpelling(t.tag, t.category, o));
  return [...new Set([...chosen, o.marker])].filter((t) => !have.has(t));
}

export async function tagHydrusFiles(o: HydrusTagOptions): Promise<HydrusSummary> {
  await checkPermissions(o);
  const service = resolveService(await o.client.services(), o.service);
  o.info(
    `hydrus: writing to ${JSON.stringify(service.name)} (${service.type === TAG_SERVICE.repository ? 'a tag repository: pended' : 'a local tag service'}), marker ${o.marker}`,
  );
  // Files done before have the marker: the search itself leaves them out (and the storage tags are checked too).
  const ids = await o.client.search([...o.search, `-${o.marker}`]);
  const s: HydrusSummary = { found: ids.length, skipped: 0, tagged: 0, tagsAdded: 0, gone: 0, failed: 0 };
  o.info(`hydrus: ${ids.length} files found by ${JSON.stringify(o.search)} without ${o.marker}`);
  const fetchOne = limiter(4);
  let done = 0;
  for (let at = 0; at < ids.length; at += METADATA_BATCH) {
    const metas = await o.client.metadata(ids.slice(at, at + METADATA_BATCH));
    const todo: { meta: FileMeta; have: Set<string> }[] = [];
    for (const meta of metas) {
      const statuses = meta.storageTags.get(service.key) ?? new Map<string, string[]>();
      // current, pending, and deleted (a human's decision): never added again
      const have = new Set(['0', '1', '2'].flatMap((k) => statuses.get(k) ?? []));
      if (['0', '1'].some((k) => statuses.get(k)?.includes(o.marker))) s.skipped++;
      else todo.push({ meta, have });
    }
    done += metas.length - todo.length;
    for (let b = 0; b < todo.length; b += o.batch) {
      const group = todo.slice(b, b + o.batch);
      await tagGroup(o, service, group, s, fetchOne);
      done += group.length;
      o.progress?.(done, ids.length);
    }
  }
  return s;
}

/**
 * A batch of files: fetched and decoded (their frames with --frames), run through the model together,
 * each file's frames merged as pred merges them, its new tags written (or, in a dry run, told).
 */
async function tagGroup(
  o: HydrusTagOptions,
  service: HydrusService,
  group: { meta: FileMeta; have: Set<string> }[],
  s: HydrusSummary,
  fetchOne: ReturnType<typeof limiter>,
): Promise<void> {
  const decoded = await Promise.all(group.map((f) => fetchOne(() => decode(o, f.meta, s))));
  const ok = group.flatMap((f, i) => (decoded[i] ? [{ ...f, ...decoded[i]! }] : []));
  if (ok.length === 0) return;
  const rows = ok.reduce((n, f) => n + f.frames, 0);
  const per = ok[0]!.pixels.length / ok[0]!.frames;
  const images = new Uint8Array(rows * per);
  const first: number[] = [];
  ok.reduce((at, f) => (images.set(f.pixels, at * per), first.push(at), at + f.frames), 0);
  const r = await o.model.run(images, rows);
  const k = o.model.meta.tags.length;
  for (const [i, f] of ok.entries()) {
    if (r.nonFinite.some((row) => row >= first[i]! && row < first[i]! + f.frames)) {
      o.warn(`warning: Hydrus file ${f.meta.fileId}: the model gave non-finite scores; not tagged`);
      s.failed++;
      continue;
    }
    const tags = newTags(o, mergeFrames(r.probs, first[i]!, f.frames, k, o.framesMerge), f.have);
    if (!o.dryRun) await o.client.addTags(f.meta.hash, service, tags);
    o.onFile({ id: f.meta.fileId, hash: f.meta.hash, tags });
    s.tagged++;
    s.tagsAdded += tags.filter((t) => t !== o.marker).length;
  }
}

/** One file's pixels for the model (its frames), or null (gone, or not an image: said, counted). */
async function decode(
  o: HydrusTagOptions,
  meta: FileMeta,
  s: HydrusSummary,
): Promise<{ pixels: Buffer; frames: number } | null> {
  try {
    const bytes = await o.client.file(meta.fileId);
    const pre = { ...o.model.preprocess, maxPixels: o.maxPixels };
    return await preprocessFrames(bytes, `Hydrus file ${meta.fileId}`, pre, o.frames);
  } catch (err) {
    if (err instanceof HydrusFileGone) {
      o.warn(`warning: Hydrus file ${meta.fileId} is gone (deleted since the search): passed over`);
      s.gone++;
      return null;
    }
    if (err instanceof HydrusFileRefused) {
      o.warn(`warning: Hydrus file ${meta.fileId}: not tagged, ${err.message}`);
      s.failed++;
      return null;
    }
    if (err instanceof ImageError) {
      o.warn(
        `warning: Hydrus file ${meta.fileId} (${meta.mime ?? 'unknown type'}): not tagged, ${err.reason} (${err.detail})`,
      );
      s.failed++;
      return null;
    }
    throw err;
  }
}
