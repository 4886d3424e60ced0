// Dynamic loss scaling for float16 training: the loss's gradient is multiplied by `scale` so small
// gradients do not flush to zero in float16, and divided again in float32 before Adam (the graphs do
// both; training/graphs.ts `lossScale`). After each step: a non-finite gradient skips the step (the
// fused graph keeps every value) and halves the scale; `growthInterval` clean steps in a row double
// it. The rules and defaults are PyTorch's GradScaler (torch.amp.GradScaler: init_scale 2¹⁶,
// growth_factor 2, backoff_factor 0.5, growth_interval 2000). Its state goes into every checkpoint
// (metadata `loss_scale`), so a resumed run scales exactly as an uninterrupted one.
import { UsageError } from '../util/errors.js';

export interface LossScaleState {
  scale: number;
  /** Clean steps since the scale last changed (PyTorch's growth tracker). */
  goodSteps: number;
  /** Steps skipped for a non-finite gradient, in all. */
  skipped: number;
}

export const LOSS_SCALE_DEFAULTS = {
  initScale: 2 ** 16,
  growthFactor: 2,
  backoffFactor: 0.5,
  growthInterval: 2000,
} as const;

/** float16's largest finite value is 65504; a scale beyond 2²⁴ only overflows, below 2⁻²⁴ only underflows. */
const MIN_SCALE = 2 ** -24;
const MAX_SCALE = 2 ** 24;

export class LossScaler {
  private s: LossScaleState;

  constructor(
    state?: LossScaleState,
    private readonly growthInterval: number = LOSS_SCALE_DEFAULTS.growthInterval,
  ) {
    this.s = state ? { ...state } : { scale: LOSS_SCALE_DEFAULTS.initScale, goodSteps: 0, skipped: 0 };
  }

  get scale(): number {
    return this.s.scale;
  }

  /** After a step whose gradients were `finite` or not; returns whether that step was applied. */
  update(finite: boolean): boolean {
    const s = this.s;
    if (!finite) {
      s.scale = Math.max(MIN_SCALE, s.scale * LOSS_SCALE_DEFAULTS.backoffFactor);
      s.goodSteps = 0;
      s.skipped++;
      return false;
    }
    if (++s.goodSteps >= this.growthInterval) {
      s.scale = Math.min(MAX_SCALE, s.scale * LOSS_SCALE_DEFAULTS.growthFactor);
      s.goodSteps = 0;
    }
    return true;
  }

  state(): LossScaleState {
    return { ...this.s };
  }

  toJson(): string {
    return JSON.stringify(this.s);
  }

  /** A state from checkpoint metadata; one line naming `where` and the field when it is not one. */
  static parse(text: string, where: string): LossScaleState {
    let v: Partial<LossScaleState> | undefined;
    try {
      v = JSON.parse(text) as Partial<LossScaleState>;
    } catch {
      v = undefined;
    }
    const scale = v?.scale;
    const ok =
      typeof scale === 'number' &&
      scale >= MIN_SCALE &&
      scale <= MAX_SCALE &&
      Number.isInteger(Math.log2(scale)) &&
      Number.isSafeInteger(v?.goodSteps) &&
      v!.goodSteps! >= 0 &&
      Number.isSafeInteger(v?.skipped) &&
      v!.skipped! >= 0;
    if (!ok)
      throw new UsageError(
        `Expected a loss scale state {scale: a power of two in [2^-24, 2^24], goodSteps, skipped: integers ≥ 0} as metadata loss_scale of ${JSON.stringify(where)} but it is ${JSON.stringify(text).slice(0, 80)}`,
      );
    return { scale: scale!, goodSteps: v!.goodSteps!, skipped: v!.skipped! };
  }
}
