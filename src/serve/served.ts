// The model `serve` serves, and the one it is swapped for (`serve --dataset`'s teach, issue 42): each
// model has its own batcher, while the bounded admission, the decoders and the counts are the server's.
// A request holds the model it started with until it is answered (acquire/done): a swap sends new
// requests to the new model, lets those in flight finish on the old one, and releases the old one after
// the last of them.
import { availableParallelism } from 'node:os';
import { ImageError, preprocessFrames } from '../data/images.js';
import type { TaggerModel } from '../model/tagger.js';
import { mergeFrames, type FrameMerge } from '../predict/tagging.js';
import { limiter } from '../util/limit.js';
import { Batcher } from './batcher.js';
import type { ServeOptions, Tagger } from './context.js';
import { describeNonImage, imageFormatOf, isVideoBytes } from '../data/sniff.js';
import { HttpError } from './http-error.js';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new HttpError(503, `timed out after ${ms} ms waiting for the model`, { 'retry-after': '1' })),
        ms,
      );
    }),
  ]);
}

type Outputs = { probs: Float32Array; features: Float32Array };

/** One image's outputs from its frames': scores merged as `pred --frames-merge` merges them, features averaged. */
function mergeOutputs(outs: Outputs[], merge: FrameMerge): Outputs {
  if (outs.length === 1) return outs[0]!;
  const stack = (key: keyof Outputs): Float32Array => {
    const k = outs[0]![key].length;
    const all = new Float32Array(outs.length * k);
    outs.forEach((o, i) => all.set(o[key], i * k));
    return mergeFrames(all, 0, outs.length, k, key === 'probs' ? merge : 'mean');
  };
  return { probs: stack('probs'), features: stack('features') };
}

/** What the models served one after another share: the bounded admission, the decoders, the counts. */
interface Shared {
  queued: number;
  stats: { calls: number; images: number };
  decode: ReturnType<typeof limiter>;
}

/** One model's serving: admission into the server's bounded queue, decoding, its batcher, the timeout. */
function tagger(model: TaggerModel, o: ServeOptions, shared: Shared): Tagger {
  const batcher = new Batcher(model, { batch: o.batch, maxWaitMs: o.maxWaitMs }, shared.stats);
  const { decode } = shared;
  const decodeOne = async (bytes: Buffer, name: string): Promise<{ pixels: Buffer; frames: number }> => {
    try {
      const pre = { ...model.preprocess, maxPixels: o.maxPixels };
      return await decode(() => preprocessFrames(bytes, name, pre, o.frames ?? 1));
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      const status = err.reason === 'too-large' ? 413 : 400;
      const want = status === 413 ? `an image of at most ${o.maxPixels} pixels` : 'a readable image';
      throw new HttpError(status, `Expected ${want} for ${name} but it is ${err.reason} (${err.detail})`);
    }
  };
  return {
    model,
    o,
    get queued() {
      return shared.queued;
    },
    stats: shared.stats,
    infer: async (bytes, name) => {
      if (bytes.length === 0) throw new HttpError(400, `Expected image bytes for ${name} but received an empty body`);
      // The bytes decide, not the declared type: only the raster formats go on to libvips, which would
      // also render SVG (scripts, external references) behind a byte-order mark, spaces or gzip.
      if (!imageFormatOf(bytes) && !isVideoBytes(bytes))
        throw new HttpError(
          415,
          `Expected JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIF bytes (or a video) for ${name} but they are ${describeNonImage(bytes)}`,
        );
      if (shared.queued >= o.queue)
        throw new HttpError(503, `the server is busy (${o.queue} images queued); retry shortly`, {
          'retry-after': '1',
        });
      shared.queued++;
      try {
        const { pixels, frames } = await decodeOne(bytes, name);
        const px = pixels.length / frames;
        const runs = Array.from({ length: frames }, (_, f) => batcher.run(pixels.subarray(f * px, (f + 1) * px)));
        return mergeOutputs(await withTimeout(Promise.all(runs), o.timeoutMs), o.framesMerge ?? 'max');
      } finally {
        shared.queued--;
      }
    },
  };
}

export class ServedModels {
  private readonly shared: Shared;
  private now: Tagger;
  /** Requests holding each model; a model swapped out is released when its count reaches 0. */
  private readonly users = new Map<Tagger, number>();
  private readonly retired = new Set<Tagger>();

  constructor(
    model: TaggerModel,
    readonly o: ServeOptions,
  ) {
    this.shared = {
      queued: 0,
      stats: { calls: 0, images: 0 },
      decode: limiter(Math.max(2, Math.floor(availableParallelism() / 2))),
    };
    this.now = tagger(model, o, this.shared);
  }

  /** The model new requests go to. */
  get current(): Tagger {
    return this.now;
  }

  /** The current model, held by a request until `done`. */
  acquire(): Tagger {
    this.users.set(this.now, (this.users.get(this.now) ?? 0) + 1);
    return this.now;
  }

  async done(t: Tagger): Promise<void> {
    const n = (this.users.get(t) ?? 1) - 1;
    if (n > 0) return void this.users.set(t, n);
    this.users.delete(t);
    if (this.retired.delete(t)) await t.model.release();
  }

  /**
   * Serve `model` from now on; the previous model is released once the requests holding it are
   * answered (at once when none is).
   */
  async swap(model: TaggerModel): Promise<void> {
    const old = this.now;
    this.now = tagger(model, this.o, this.shared);
    if (this.users.has(old)) this.retired.add(old);
    else await old.model.release();
  }

  /** Release every model still held (the server has stopped). */
  async close(): Promise<void> {
    const all = new Set([this.now, ...this.retired]);
    this.retired.clear();
    for (const t of all) await t.model.release();
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The model served now and the server's options. */
    served: ServedModels;
  }
}
