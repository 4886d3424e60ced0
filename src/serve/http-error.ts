// The one error type `serve`'s routes throw, and the status every other error maps to: the client always
// gets {"error": …} with a 4xx for what it can fix and 5xx for what it cannot.
import { messageOf, UsageError } from '../util/errors.js';

/** An HTTP error with its status; the message goes to the client as {"error": …}. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    /** More of the reply beside {"error": …} (a 409's current caption). */
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** 415 for a body that is neither an image, a form nor JSON. */
export const unsupportedType = (contentType: string | undefined): HttpError =>
  new HttpError(
    415,
    `Expected an image (image/*, not SVG), a video (video/*), multipart/form-data or JSON body but received ${JSON.stringify(contentType ?? 'none')}`,
  );

/** The reply for any thrown value: HttpError as it is, a bad option (UsageError) 400, fastify's own by its code. */
export function replyOf(err: unknown, contentType: string | undefined): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof UsageError) return new HttpError(400, err.message);
  const e = err as { statusCode?: number; code?: string };
  if (e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new HttpError(413, messageOf(err));
  if (e.statusCode === 415) return unsupportedType(contentType);
  // A multipart body the parser cannot read (no, wrong or unterminated boundary): the client's fault.
  if (
    e.code === 'FST_INVALID_MULTIPART_CONTENT_TYPE' ||
    /^(Multipart|Unexpected end of (form|multipart data)|Malformed part header)/i.test(messageOf(err))
  )
    return new HttpError(400, `Expected a well-formed multipart/form-data body but it is not (${messageOf(err)})`);
  const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
  return new HttpError(status, messageOf(err), status === 503 ? { 'retry-after': '1' } : {});
}
