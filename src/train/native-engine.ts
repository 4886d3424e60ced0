// NativeEngine: the TrainEngine over the native addon's raw binding (native-binding.ts). Training code
// sees only TrainEngine; what the C++ class takes and returns is declared once, in the binding.
import type { EngineOptions, EngineState, StepOutcome, TrainEngine } from './engine.js';
import { loadAddon, type NativeEngineBinding } from './native-binding.js';

export class NativeEngine implements TrainEngine {
  private readonly raw: NativeEngineBinding;

  /** Loads the addon (an Error listing the places tried when it cannot be loaded). */
  constructor() {
    this.raw = new (loadAddon().NativeEngine)();
  }

  get busy(): boolean {
    return this.raw.busy;
  }

  get loaded(): boolean {
    return this.raw.loaded;
  }

  load(options: EngineOptions, params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.raw.load(options, params, m, v);
  }

  setState(params: Float32Array[], m?: Float32Array[], v?: Float32Array[]): Promise<void> {
    return this.raw.setState(params, m, v);
  }

  step(
    images: Uint8Array,
    labels: Uint8Array,
    keep: Uint8Array | null,
    n: number,
    lrT: number,
    epsT: number,
    lossScale?: number,
  ): Promise<StepOutcome> {
    return this.raw.step(images, labels, keep, n, lrT, epsT, lossScale);
  }

  evaluate(images: Uint8Array, labels: Uint8Array, n: number): Promise<{ loss: number; probs: Float32Array }> {
    return this.raw.evaluate(images, labels, n);
  }

  getState(into?: EngineState): Promise<EngineState> {
    return this.raw.getState(into);
  }

  dispose(): void {
    this.raw.dispose();
  }
}
