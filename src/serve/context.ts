// What `serve`'s routes share: the server's models (`app.served`, served.ts) and, per request,
// `req.tagger`: the model the request runs on, the server's options, and `infer`, which admits an image into the bounded queue, decodes it and runs it
// through the batcher within the timeout.
import type { TaggerModel } from '../model/tagger.js';
import type { NpyArray } from '../outputs/npy.js';
import type { FrameMerge } from '../predict/tagging.js';
import type { VecIndexMeta } from '../outputs/vectors.js';
import type { ReviewSet } from '../review/review-set.js';
import type { TeachJob } from '../review/teach-job.js';

export interface ServeOptions {
  name: string;
  batch: number;
  maxWaitMs: number;
  /** Images admitted (decoding or waiting for the model) at most; beyond, 503 with Retry-After. */
  queue: number;
  timeoutMs: number;
  bodyLimit: number;
  maxPixels: number;
  token?: string;
  /** Evenly spaced frames of an animated image to tag (1: the first), and how their scores merge. */
  frames?: number;
  framesMerge?: FrameMerge;
  index?: { meta: VecIndexMeta; index: NpyArray };
  /** `--dataset DIR`: the dataset the review API and page work on (src/review/). */
  dataset?: ReviewSet;
  /** The review page's Teach over the dataset (src/review/teach-job.ts). */
  teach?: TeachJob;
}

export interface Tagger {
  model: TaggerModel;
  o: ServeOptions;
  /** Images admitted and not yet answered. */
  readonly queued: number;
  /** Model calls made and images run, for /healthz. */
  readonly stats: { calls: number; images: number };
  /** Decode one uploaded image (parallel, bounded) and run it through the batcher, within the timeout. */
  infer(bytes: Buffer, name: string): Promise<{ probs: Float32Array; features: Float32Array }>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The model this request runs on, from its start to its answer (a swap does not change it). */
    tagger: Tagger;
  }
}
