// What the hub's client needs from us: the hub's own headers, which sit on its redirect to the file
// storage (X-Repo-Commit, X-Linked-Etag, X-Linked-Size, as huggingface_hub reads them), carried onto
// the final response; and its errors as one line each, saying what to do.
import type { HfRef } from './hf-cache.js';
import { UsageError } from '../util/errors.js';

const HUB_HEADERS = ['x-repo-commit', 'x-linked-etag', 'x-linked-size', 'x-error-code'];

/**
 * A fetch for @huggingface/hub that follows redirects itself: the hub's headers of the first answer
 * are kept (and the commit remembered); the Authorization header goes only to the hub's own origin.
 */
export function tapHubHeaders(endpoint: string): { fetch: typeof fetch; commit(): string | undefined } {
  let commit: string | undefined;
  const origin = new URL(endpoint).origin;
  const tapped: typeof fetch = async (input, init) => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    const hub = new Headers();
    for (let hop = 0; hop < 10; hop++) {
      const headers = new Headers(init?.headers);
      if (url.origin !== origin) headers.delete('authorization');
      const res = await fetch(url, { ...init, headers, redirect: 'manual' });
      for (const h of HUB_HEADERS) {
        const v = res.headers.get(h);
        if (v !== null && !hub.has(h)) hub.set(h, v);
      }
      commit ??= hub.get('x-repo-commit') ?? undefined;
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) {
        if (hop === 0) return res;
        const merged = new Headers(res.headers);
        hub.forEach((v, h) => merged.set(h, v));
        return new Response(res.body, { status: res.status, statusText: res.statusText, headers: merged });
      }
      await res.body?.cancel();
      url = new URL(location, url);
    }
    throw new TypeError('fetch failed', { cause: new Error('more than 10 redirects') });
  };
  return { fetch: tapped, commit: () => commit };
}

/** An error of the hub's client (or the network) as one line naming the repo, the file and what to do. */
export function hubError(err: unknown, ref: HfRef, hub: { endpoint: string; token?: string }): never {
  if (err instanceof UsageError) throw err;
  const what = `${ref.file} of ${ref.repo}@${ref.revision} from ${hub.endpoint}`;
  const status = (err as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') {
    const why =
      status === 401
        ? hub.token
          ? 'the hub refuses the token in HF_TOKEN (401)'
          : 'the repository is private or gated: set HF_TOKEN to an access token (401)'
        : status === 403
          ? 'the token in HF_TOKEN has no access: accept the model’s terms on its page, or use a token that can read it (403)'
          : status === 404
            ? 'there is no such repository or revision (404)'
            : `the hub answered ${status}`;
    throw new UsageError(`Expected ${what} but ${why}`);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause)
    throw new UsageError(
      `Expected to reach ${hub.endpoint} for ${ref.file} of ${ref.repo}@${ref.revision} but cannot (${cause.code ?? cause.message ?? 'no answer'}); set HF_HUB_OFFLINE=1 to use only the cache`,
    );
  throw new UsageError(
    `Expected a Hugging Face hub at ${hub.endpoint} for ${what} but its answer is not one: ${String((err as Error).message ?? err).split('\n')[0]}`,
  );
}
