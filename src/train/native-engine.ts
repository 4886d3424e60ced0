// NativeEngine: the TrainEngine over the native addon's raw binding (native-binding.ts). Training code
// sees only TrainEngine; what the C++ class takes and returns is declared once, in the binding.
import type { TrainEngine } from './engine.js';
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

  load(...a: Parameters<TrainEngine['load']>): ReturnType<TrainEngine['load']> {
    return this.raw.load(...a);
  }

  setState(...a: Parameters<TrainEngine['setState']>): ReturnType<TrainEngine['setState']> {
    return this.raw.setState(...a);
  }

  step(...a: Parameters<TrainEngine['step']>): ReturnType<TrainEngine['step']> {
    return this.raw.step(...a);
  }

  evaluate(...a: Parameters<TrainEngine['evaluate']>): ReturnType<TrainEngine['evaluate']> {
    return this.raw.evaluate(...a);
  }

  getState(...a: Parameters<TrainEngine['getState']>): ReturnType<TrainEngine['getState']> {
    return this.raw.getState(...a);
  }

  dispose(): void {
    this.raw.dispose();
  }
}
