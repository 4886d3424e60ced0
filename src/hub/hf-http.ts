// What the hub's client needs from us: the hub's own headers, which sit on its redirect to the file
// storage (X-Repo-Commit, X-Linked-Etag, X-Linked-Size, as huggingface_hub reads them), carried onto
// the final response; a read timeout (HF_HUB_DOWNLOAD_TIMEOUT, as huggingface_hub names it); every
// status the hub may answer handled; and its errors as one line each, saying what to do.
import type { HfRef } from './hf-cache.js';
import { UsageError } from '../util/errors.js';

const HUB_HEADERS = ['x-repo-commit', 'x-linked-etag', 'x-linked-size', 'x-error-code'];

/**
 * Seconds a download may wait for its next byte (or its answer) before it is given up: the
 * HF_HUB_DOWNLOAD_TIMEOUT variable huggingface_hub reads (whose own default is 10 s), 60 s here by default.
 */
export const DEFAULT_DOWNLOAD_TIMEOUT_S = 60;

export function downloadTimeoutS(env: NodeJS.ProcessEnv): number {
  const text = env.HF_HUB_DOWNLOAD_TIMEOUT;
  // huggingface_hub: `_as_int(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT")) or DEFAULT_DOWNLOAD_TIMEOUT`, so 0 is the default too.
  if (text === undefined || text === '' || text === '0') return DEFAULT_DOWNLOAD_TIMEOUT_S;
  const s = Number(text);
  if (!Number.isInteger(s) || s < 1 || s > 86_400)
    throw new UsageError(
      `Expected a whole number of seconds (1 to 86400) in HF_HUB_DOWNLOAD_TIMEOUT but it holds ${JSON.stringify(text.slice(0, 40))}`,
    );
  return s;
}

/** Why a download ended early, as the hub client passes it on (an Error, or a bare message). */
class DownloadEnded extends Error {
  override name = 'DownloadEnded';
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

/**
 * A fetch for @huggingface/hub that follows redirects itself: the hub's headers of the first answer
 * are kept (and the commit remembered); the Authorization header goes only to the hub's own origin.
 * An answer or a body chunk that takes longer than `timeoutS` aborts the request; a final answer
 * that is neither a file (200, 206) nor an error the client reads (4xx, 5xx) — a 204, a 304, a
 * redirect without a Location — is refused with its status.
 */
export function tapHubHeaders(
  endpoint: string,
  timeoutS = DEFAULT_DOWNLOAD_TIMEOUT_S,
): { fetch: typeof fetch; commit(): string | undefined } {
  let commit: string | undefined;
  const origin = new URL(endpoint).origin;
  const tapped: typeof fetch = async (input, init) => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    const hub = new Headers();
    const abort = new AbortController();
    const signal = init?.signal ? AbortSignal.any([init.signal, abort.signal]) : abort.signal;
    const stalled = (): void =>
      abort.abort(new DownloadEnded(`nothing arrived for ${timeoutS} s (HF_HUB_DOWNLOAD_TIMEOUT=${timeoutS})`));
    for (let hop = 0; hop < 10; hop++) {
      const headers = new Headers(init?.headers);
      if (url.origin !== origin) headers.delete('authorization');
      const timer = setTimeout(stalled, timeoutS * 1000);
      const res = await fetch(url, { ...init, headers, redirect: 'manual', signal }).finally(() => clearTimeout(timer));
      for (const h of HUB_HEADERS) {
        const v = res.headers.get(h);
        if (v !== null && !hub.has(h)) hub.set(h, v);
      }
      commit ??= hub.get('x-repo-commit') ?? undefined;
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) {
        if (res.status !== 200 && res.status !== 206 && res.status < 400) {
          await res.body?.cancel();
          throw new DownloadEnded(`the hub answered ${res.status} where a file was expected`, res.status);
        }
        const merged = new Headers(res.headers);
        if (hop > 0) hub.forEach((v, h) => merged.set(h, v));
        const body = res.body && timedBody(res.body, timeoutS, stalled);
        return new Response(body, { status: res.status, statusText: res.statusText, headers: merged });
      }
      await res.body?.cancel();
      url = new URL(location, url);
    }
    throw new TypeError('fetch failed', { cause: new Error('more than 10 redirects') });
  };
  return { fetch: tapped, commit: () => commit };
}

/** `body`, each chunk awaited at most `timeoutS` (the timer runs only while the reader waits). */
function timedBody(
  body: ReadableStream<Uint8Array>,
  timeoutS: number,
  stalled: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const timer = setTimeout(stalled, timeoutS * 1000);
        try {
          const { done, value } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** Why a body stopped early, in words: our own reasons as they are, the network's without "TypeError". */
export function downloadReason(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err instanceof DownloadEnded) return err.message;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause instanceof DownloadEnded) return cause.message;
  if (err instanceof TypeError && err.message === 'terminated')
    return `the connection closed${cause?.code ? ` (${cause.code})` : cause?.message ? ` (${cause.message})` : ''}`;
  return (err as Error).message?.split('\n')[0] ?? String(err);
}

/** An error of the hub's client (or the network) as one line naming the repo, the file and what to do. */
export function hubError(err: unknown, ref: HfRef, hub: { endpoint: string; token?: string }): never {
  if (err instanceof UsageError) throw err;
  const what = `${ref.file} of ${ref.repo}@${ref.revision} from ${hub.endpoint}`;
  if (err instanceof DownloadEnded || (err as { cause?: unknown }).cause instanceof DownloadEnded)
    throw new UsageError(`Expected ${what} but ${downloadReason(err)}`);
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
