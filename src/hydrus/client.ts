// A client of the endpoints of the Hydrus Network Client API that `hydrus` uses, written from Hydrus'
// own Client API help (hydrusnetwork.github.io/hydrus/developer_api.html, client API version 95,
// Hydrus v682): the access key in the `Hydrus-Client-API-Access-Key` header, GET parameters as
// percent-encoded JSON, JSON answers. Every answer is checked field by field before its numbers are
// used; every failure is one line naming the endpoint and what Hydrus said (401/403/419 the key or its
// permissions, 404 a file gone since the search, 5xx the client's own trouble); a dropped connection
// is tried again twice, then named.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../util/errors.js';

/** The API version and Hydrus release this client follows (its Client API help at that release). */
export const HYDRUS_API = { version: 95, hydrus: 682 } as const;

/** basic_permissions of /verify_access_key (hydrus/client/ClientAPI.py). */
export const PERMISSION = { addTags: 2, searchFiles: 3 } as const;

/** Service types of tag services (The Services Object): 5 a local tag domain, 0 a tag repository. */
export const TAG_SERVICE = { local: 5, repository: 0 } as const;

export interface HydrusService {
  name: string;
  key: string;
  type: number;
}

export interface FileMeta {
  fileId: number;
  hash: string;
  mime: string | null;
  /** Per tag service key, its storage tags by status ("0" current, "1" pending, "2" deleted, "3" petitioned). */
  storageTags: Map<string, Map<string, string[]>>;
}

/** Hydrus answered a file request with 404: the file is gone (deleted since the search). */
export class HydrusFileGone extends Error {}

/** A file this run does not take (over --max-file-mb): passed over. */
export class HydrusFileRefused extends Error {}

/** A failure of one request that is not the user's to fix by changing the command: exit 1. */
export class HydrusError extends Error {}

const HEX = /^[0-9a-f]{1,128}$/;
const SHA256 = /^[0-9a-f]{64}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The access key: --key-file's contents or HYDRUS_ACCESS_KEY, 64 hexadecimal characters. */
export async function readAccessKey(keyFile: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  const from = keyFile === undefined ? 'HYDRUS_ACCESS_KEY' : JSON.stringify(keyFile);
  const text =
    keyFile === undefined
      ? env.HYDRUS_ACCESS_KEY
      : await readFile(keyFile, 'utf8').catch(() => {
          throw new UsageError(`Expected --key-file to be a readable file but ${from} cannot be read`);
        });
  if (text === undefined || text === '')
    throw new UsageError(
      'Expected the access key in HYDRUS_ACCESS_KEY or a file named by --key-file but there is none',
    );
  const key = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(key))
    throw new UsageError(`Expected an access key of 64 hexadecimal characters in ${from} but it is not one`);
  return key.toLowerCase();
}

export interface HydrusClientOptions {
  api: string;
  key: string;
  /** Seconds to wait for an answer (and for each part of a body). */
  timeoutS: number;
  /** Largest file accepted, in bytes. */
  maxFileBytes: number;
  fetch?: typeof fetch;
}

export class HydrusClient {
  private readonly base: URL;
  constructor(private readonly o: HydrusClientOptions) {
    let url: URL;
    try {
      url = new URL(o.api);
    } catch {
      throw new UsageError(
        `Expected --api to be the Client API's URL (http://127.0.0.1:45869) but received ${JSON.stringify(o.api)}`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new UsageError(`Expected --api to be an http:// or https:// URL but received ${JSON.stringify(o.api)}`);
    this.base = url;
  }

  /** One request, tried again twice on a dropped connection or a timeout; the answer as it came. */
  private async request(endpoint: string, params: Record<string, unknown> = {}, body?: unknown): Promise<Response> {
    const url = new URL(endpoint.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base : `${this.base.href}/`);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v));
    const init: RequestInit = {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        'Hydrus-Client-API-Access-Key': this.o.key,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    };
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const res = await (this.o.fetch ?? fetch)(url, {
          ...init,
          signal: AbortSignal.timeout(this.o.timeoutS * 1000),
        });
        if (res.ok) return res;
        const text = (await res.text().catch(() => '')).replace(/\s+/g, ' ').trim().slice(0, 300);
        const said = text ? `: ${text}` : '';
        if (res.status === 404 && endpoint === '/get_files/file') throw new HydrusFileGone(`404${said}`);
        if (res.status === 401 || res.status === 403 || res.status === 419)
          throw new UsageError(
            `Hydrus refused ${endpoint} (${res.status}${said}): check the access key (HYDRUS_ACCESS_KEY or --key-file) and its permissions under services > review services > client api`,
          );
        throw new HydrusError(`Hydrus answered ${endpoint} with ${res.status}${said}`);
      } catch (err) {
        if (err instanceof UsageError || err instanceof HydrusError || err instanceof HydrusFileGone) throw err;
        last = err;
      }
    }
    const why =
      last instanceof Error && last.name === 'TimeoutError'
        ? `no answer in ${this.o.timeoutS} s`
        : 'the connection failed or was dropped';
    throw new HydrusError(
      `Expected Hydrus' Client API at ${this.base.origin} to answer ${endpoint} but ${why} (three tries); is the client running with its API on?`,
    );
  }

  private async json(
    endpoint: string,
    params: Record<string, unknown> = {},
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    const res = await this.request(endpoint, params, body);
    const text = await res.text();
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch {
      throw new HydrusError(`Expected JSON from Hydrus' ${endpoint} but it is not`);
    }
    if (!isObject(j)) throw new HydrusError(`Expected a JSON object from Hydrus' ${endpoint} but it is not`);
    return j;
  }

  private bad(endpoint: string, what: string): never {
    throw new HydrusError(`Expected ${what} in the answer of Hydrus' ${endpoint} but it is not`);
  }

  /** The key's permissions: basic_permissions, or every one. */
  async permissions(): Promise<{ all: boolean; basic: Set<number> }> {
    const j = await this.json('/verify_access_key');
    const basic = j.basic_permissions;
    if (!Array.isArray(basic) || !basic.every((p) => Number.isInteger(p)))
      this.bad('/verify_access_key', 'basic_permissions');
    return { all: j.permits_everything === true, basic: new Set(basic as number[]) };
  }

  /** The client's services: `services_v2` (a list), or the older `services` object keyed by service key. */
  async services(): Promise<HydrusService[]> {
    const j = await this.json('/get_services');
    const raw = Array.isArray(j.services_v2)
      ? j.services_v2
      : isObject(j.services)
        ? Object.entries(j.services).map(([key, s]) => ({ ...(isObject(s) ? s : {}), service_key: key }))
        : this.bad('/get_services', 'services_v2, a list of services');
    return raw.map((s: unknown) => {
      if (
        !isObject(s) ||
        typeof s.name !== 'string' ||
        typeof s.service_key !== 'string' ||
        !HEX.test(s.service_key) ||
        !Number.isInteger(s.type)
      )
        this.bad('/get_services', 'services with a name, a hexadecimal service_key and a type');
      return { name: s.name as string, key: s.service_key as string, type: s.type as number };
    });
  }

  /** The file ids of a search (its tags ANDed, as Hydrus does) over all known tags, in import order. */
  async search(tags: readonly string[]): Promise<number[]> {
    const j = await this.json('/get_files/search_files', { tags });
    const ids = j.file_ids;
    if (!Array.isArray(ids) || !ids.every((i) => Number.isSafeInteger(i) && i >= 0))
      this.bad('/get_files/search_files', 'file_ids');
    return ids as number[];
  }

  /** The hash, mime and storage tags of each of `ids`, in their order. */
  async metadata(ids: readonly number[]): Promise<FileMeta[]> {
    const where = '/get_files/file_metadata';
    const j = await this.json(where, { file_ids: ids, include_services_object: 'false' });
    const list = j.metadata;
    if (!Array.isArray(list) || list.length !== ids.length)
      this.bad(where, `metadata for the ${ids.length} files asked`);
    return list.map((m: unknown, i: number) => {
      if (!isObject(m) || m.file_id !== ids[i] || typeof m.hash !== 'string' || !SHA256.test(m.hash))
        this.bad(where, `file ${ids[i]} with its SHA-256 hash`);
      const storageTags = new Map<string, Map<string, string[]>>();
      for (const [key, t] of Object.entries(isObject(m.tags) ? m.tags : {})) {
        const statuses = isObject(t) && isObject(t.storage_tags) ? t.storage_tags : {};
        const byStatus = new Map<string, string[]>();
        for (const [status, tags] of Object.entries(statuses)) {
          if (!Array.isArray(tags) || !tags.every((x) => typeof x === 'string'))
            this.bad(where, `storage_tags of file ${ids[i]} as lists of tags`);
          byStatus.set(status, tags as string[]);
        }
        storageTags.set(key, byStatus);
      }
      return { fileId: ids[i]!, hash: m.hash as string, mime: typeof m.mime === 'string' ? m.mime : null, storageTags };
    });
  }

  /** A file's bytes (HydrusFileGone when it was deleted since the search). */
  async file(id: number): Promise<Buffer> {
    const res = await this.request('/get_files/file', { file_id: String(id) });
    const declared = Number(res.headers.get('content-length'));
    if (declared > this.o.maxFileBytes) {
      await res.body?.cancel();
      throw new HydrusFileRefused(`${declared} bytes, over --max-file-mb`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > this.o.maxFileBytes) throw new HydrusFileRefused(`${bytes.length} bytes, over --max-file-mb`);
    return bytes;
  }

  /** Add (local tag service) or pend (tag repository) `tags` to the file `hash`, never over a deleted mapping. */
  async addTags(hash: string, service: HydrusService, tags: readonly string[]): Promise<void> {
    const action = service.type === TAG_SERVICE.repository ? '2' : '0';
    await this.request(
      '/add_tags/add_tags',
      {},
      {
        hash,
        service_keys_to_actions_to_tags: { [service.key]: { [action]: tags } },
        override_previously_deleted_mappings: false,
      },
    );
  }
}
