// `--model hf:OWNER/REPO[@REVISION][:FILE]` with downloads: a file the Hugging Face cache lacks is
// fetched with the hub's own client (@huggingface/hub: endpoints, tokens, Xet storage) and placed in the
// cache exactly as huggingface_hub places it, so the Python tools find it and we find theirs:
// blobs/ETAG holds the bytes, snapshots/COMMIT/FILE is a relative link to it, refs/REVISION names the
// commit. The bytes go to a temp file, are checked against the hub's size and ETag (the SHA-256 of an
// LFS or Xet file, the git blob SHA-1 of a small one), fsynced and renamed; one lock per blob under
// .locks/ makes a second process wait for the first one's download instead of repeating it.
// HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are honoured as huggingface_hub honours them.
import { createHash, type Hash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { downloadFile, fileDownloadInfo } from '@huggingface/hub';
import { cachedHfFile, hfFetchHint, hubCacheDir, parseHfRef, type HfRef } from './hf-cache.js';
import { downloadReason, downloadTimeoutS, hubError, tapHubHeaders } from './hf-http.js';
import { UsageError } from '../util/errors.js';
import { fsReason, makeFolder, tempNameFor, writeAtomic, writeFileAtomic } from '../util/fsx.js';
import { waitLockFile } from '../util/lock.js';

export interface HubOptions {
  env?: NodeJS.ProcessEnv;
  /** Tags files to look for beside the model, in order, when the snapshot has none of them. */
  tagsFiles?: readonly string[];
  /** One-line notes (a wait for another download, a lock taken over). */
  log?: (line: string) => void;
  /** A progress display for `label`, `total` bytes (files of 1 MB and more). */
  progress?: (label: string, total: number) => { update(done: number): void; stop(): void };
}

const TRUE = new Set(['1', 'on', 'yes', 'true']);
const hex = (n: number): RegExp => new RegExp(`^[0-9a-f]{${n}}$`);

interface Hub {
  ref: HfRef;
  env: NodeJS.ProcessEnv;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
  /** Seconds a request may wait for its answer or its next bytes. */
  timeoutS: number;
  repoDir: string;
  o: HubOptions;
}

/** The local path of the model `text` names, downloaded into the cache where missing. */
export async function hfModelFile(text: string, o: HubOptions = {}): Promise<string> {
  const env = o.env ?? process.env;
  const ref = parseHfRef(text);
  const token = env.HF_TOKEN || undefined;
  if (token !== undefined && !/^hf_[\w-]+$/.test(token))
    throw new UsageError('Expected a Hugging Face access token (hf_…) in HF_TOKEN but it has another form');
  const hub: Hub = {
    ref,
    env,
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    token,
    offline: TRUE.has((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
    timeoutS: downloadTimeoutS(env),
    repoDir: path.join(hubCacheDir(env), `models--${ref.repo.replace('/', '--')}`),
    o,
  };
  const model = (await ensure(hub, ref.file, true))!;
  // Tags files beside the model, where the model's loader looks for them.
  const folder = path.posix.dirname(ref.file);
  const tags = (o.tagsFiles ?? []).map((t) => (folder === '.' ? t : `${folder}/${t}`));
  if (!hub.offline && !tags.some((t) => existsSync(path.join(path.dirname(model), path.posix.basename(t)))))
    for (const t of tags) if (await ensure(hub, t, false)) break;
  return model;
}

/** FILE of the repo in the cache, fetched where missing; undefined for an optional file the repo lacks. */
async function ensure(hub: Hub, file: string, required: boolean): Promise<string | undefined> {
  const { ref, env } = hub;
  const local = cachedHfFile({ ...ref, file }, env);
  if (local.file) return local.file;
  if (hub.offline) {
    if (!required) return undefined;
    throw new UsageError(`${local.why}; HF_HUB_OFFLINE is set, so nothing is downloaded (${hfFetchHint(ref)})`);
  }
  const tap = tapHubHeaders(hub.endpoint, hub.timeoutS);
  const params = {
    repo: ref.repo,
    path: file,
    revision: ref.revision,
    hubUrl: hub.endpoint,
    accessToken: hub.token,
    fetch: tap.fetch,
  };
  const info = await fileDownloadInfo(params).catch((err: unknown) => hubError(err, { ...ref, file }, hub));
  if (!info) {
    if (!required) return undefined;
    throw new UsageError(
      `Expected ${file} in ${ref.repo} at revision ${ref.revision} on ${hub.endpoint} but the repository has no such file`,
    );
  }
  const commit = tap.commit() ?? (hex(40).test(ref.revision) ? ref.revision : undefined);
  if (!commit || !hex(40).test(commit) || (hex(40).test(ref.revision) && commit !== ref.revision))
    throw new UsageError(
      `Expected ${hub.endpoint} to name the commit of ${ref.repo}@${ref.revision} (40 hex digits) but it answered ${JSON.stringify(commit ?? null)}`,
    );
  const etag = info.etag.replace(/^W\//, '').replace(/"/g, '');
  if (!hex(40).test(etag) && !hex(64).test(etag))
    throw new UsageError(
      `Expected the ETag of ${file} from ${hub.endpoint} to be a SHA-1 or SHA-256 (hex) but it is ${JSON.stringify(etag.slice(0, 100))}`,
    );
  if (!Number.isSafeInteger(info.size) || info.size < 0)
    throw new UsageError(`Expected the size of ${file} from ${hub.endpoint} but it answered ${info.size}`);
  const blob = path.join(hub.repoDir, 'blobs', etag);
  await makeFolder(path.dirname(blob), 'the Hugging Face cache');
  const locks = path.join(path.dirname(hub.repoDir), '.locks', path.basename(hub.repoDir));
  await makeFolder(locks, 'the Hugging Face cache');
  const log = hub.o.log ?? (() => undefined);
  const lock = await waitLockFile(path.join(locks, `${etag}.alt-i2v-ort.lock`), `download ${file}`, log, (holder) =>
    log(`waiting for ${holder}, which downloads ${file} of ${ref.repo}`),
  );
  try {
    const have = await stat(blob).catch(() => undefined);
    if (!have || have.size !== info.size) {
      const body = await downloadFile({ ...params, revision: commit, downloadInfo: info }).catch((err: unknown) =>
        hubError(err, { ...ref, file }, hub),
      );
      if (!body) throw new UsageError(`Expected ${file} of ${ref.repo} from ${hub.endpoint} but it sent nothing`);
      await fetchInto(blob, body.stream(), { file, etag, size: info.size, hub });
    }
  } finally {
    await lock.release();
  }
  const link = path.join(hub.repoDir, 'snapshots', commit, ...file.split('/'));
  await placeLink(link, path.relative(path.dirname(link), blob));
  if (!hex(40).test(ref.revision)) {
    const refFile = path.join(hub.repoDir, 'refs', ...ref.revision.split('/'));
    await makeFolder(path.dirname(refFile), 'the Hugging Face cache');
    await writeFileAtomic(refFile, commit);
  }
  return link;
}

/** The body into `blob` through a temp file, refused unless its size and hash match the hub's. */
async function fetchInto(
  blob: string,
  stream: ReadableStream<Uint8Array>,
  w: { file: string; etag: string; size: number; hub: Hub },
): Promise<void> {
  const git = w.etag.length === 40;
  const hash: Hash = createHash(git ? 'sha1' : 'sha256');
  if (git) hash.update(`blob ${w.size}\0`);
  const bar = w.size >= 1e6 ? w.hub.o.progress?.(`downloading ${w.file}`, w.size) : undefined;
  let got = 0;
  const where = `${w.file} of ${w.hub.ref.repo} from ${w.hub.endpoint}`;
  try {
    await writeAtomic(blob, async (fh) => {
      try {
        for await (const chunk of stream) {
          got += chunk.byteLength;
          if (got > w.size) break;
          hash.update(chunk);
          await fh.write(chunk);
          bar?.update(got);
        }
      } catch (err) {
        throw new UsageError(
          `Expected ${w.size} bytes of ${where} but ${downloadReason(err)} after ${got}; nothing was placed in the cache`,
        );
      }
      if (got !== w.size)
        throw new UsageError(`Expected ${w.size} bytes of ${where} but ${got > w.size ? 'more' : got} arrived`);
      const digest = hash.digest('hex');
      if (digest !== w.etag)
        throw new UsageError(
          `Expected ${where} to hash to its ETag ${w.etag} but it hashes to ${digest}: nothing was placed in the cache`,
        );
    });
  } finally {
    bar?.stop();
  }
}

/** A relative link at `link` to `target` (replacing another link atomically), as huggingface_hub makes. */
async function placeLink(link: string, target: string): Promise<void> {
  await makeFolder(path.dirname(link), 'the Hugging Face cache');
  if ((await readlink(link).catch(() => undefined)) === target) return;
  const tmp = tempNameFor(link);
  try {
    await symlink(target, tmp);
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new UsageError(
      `Expected to link ${JSON.stringify(link)} to its blob in the Hugging Face cache but it fails (${fsReason(err)})`,
    );
  }
}
