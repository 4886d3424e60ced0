// `serve`'s own options, declared once (src/util/option-spec.ts): where it listens, its limits on what
// a request may ask (body size, pixels, queue, waits) and the frames of animated uploads. The CLI's
// flags come from this table and every value is checked against it before the server starts.
import type { Specs } from '../util/option-spec.js';
import { FRAME_OPTIONS } from '../predict/tagging.js';

export const SERVE_OPTIONS = {
  index: {
    type: 'string',
    describe: "A `vec` index (.npy) for /v1/similar and the page's similar images",
  },
  dataset: {
    type: 'string',
    describe:
      "A folder of images with .txt captions to review at /review: the model's tags beside the captions, edits written as captions",
  },
  'teach-out': {
    type: 'string',
    describe:
      "Where the review page's Teach writes the merged model (.onnx; its tags file beside it) [default: DIR/alt-i2v-taught.onnx]",
  },
  host: {
    type: 'string',
    default: '127.0.0.1',
    describe: 'Address to bind (anything but loopback needs --token)',
  },
  port: { type: 'number', default: 8080, range: [0, 65535], integer: true, describe: 'Port (0: any free one)' },
  'max-wait-ms': {
    type: 'number',
    default: 10,
    range: [0, 60_000],
    integer: true,
    describe: 'How long an image waits for others to batch with',
  },
  queue: {
    type: 'number',
    default: 256,
    range: [1, 1_000_000],
    integer: true,
    describe: 'Images waiting at most; beyond, 503 with Retry-After',
  },
  'timeout-ms': {
    type: 'number',
    default: 30000,
    range: [1, 3_600_000],
    integer: true,
    describe: 'Per-request limit on waiting for the model (503 after)',
  },
  'max-body-mb': {
    type: 'number',
    default: 32,
    range: [1, 4096],
    integer: true,
    describe: 'Largest request body (413 beyond)',
  },
  'max-pixels': {
    type: 'number',
    default: 40_000_000,
    range: [1, 2 ** 40],
    integer: true,
    describe: 'Largest image in pixels (413 beyond: decompression bombs)',
  },
  token: {
    type: 'string',
    describe: 'Require "Authorization: Bearer TOKEN" on the API (the page: open /#token=TOKEN)',
  },
  ...FRAME_OPTIONS,
} as const satisfies Specs;
