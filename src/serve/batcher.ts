// Dynamic batching for `serve`: decoded images wait at most `maxWaitMs` to be run together, up to
// `batch` per model call, one call at a time. It takes whatever it is given: the queue's bound is the
// server's admission (app.ts), which counts images from upload to answer, decoding included.
import type { TaggerModel } from '../model/tagger.js';
import { HttpError } from './http-error.js';

interface Waiting {
  pixels: Uint8Array;
  resolve: (out: { probs: Float32Array; features: Float32Array }) => void;
  reject: (err: unknown) => void;
}

export interface BatcherOptions {
  batch: number;
  maxWaitMs: number;
}

export class Batcher {
  private waiting: Waiting[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly model: TaggerModel,
    private readonly o: BatcherOptions,
    /** Model calls made and images run, for /healthz and tests (shared by the models a server swaps). */
    readonly stats = { calls: 0, images: 0 },
  ) {}

  /** The model's outputs for one decoded image (uint8 S×S×3). */
  run(pixels: Uint8Array): Promise<{ probs: Float32Array; features: Float32Array }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ pixels, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running) return;
    if (this.waiting.length >= this.o.batch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.o.maxWaitMs);
    }
  }

  private async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const take = this.waiting.splice(0, this.o.batch);
    const px = take[0]!.pixels.length;
    const images = new Uint8Array(take.length * px);
    take.forEach((w, i) => images.set(w.pixels, i * px));
    try {
      const out = await this.model.run(images, take.length);
      this.stats.calls++;
      this.stats.images += take.length;
      const k = out.probs.length / take.length;
      const d = out.features.length / take.length;
      take.forEach((w, i) =>
        out.nonFinite.includes(i)
          ? w.reject(new HttpError(500, `the model gave non-finite scores (NaN or infinity) for this image`))
          : w.resolve({ probs: out.probs.slice(i * k, (i + 1) * k), features: out.features.slice(i * d, (i + 1) * d) }),
      );
    } catch (err) {
      for (const w of take) w.reject(err);
    } finally {
      this.running = false;
      if (this.waiting.length > 0) this.schedule();
    }
  }
}
