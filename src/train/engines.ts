// Which TrainEngine runs the graphs: NativeEngine (the addon: state kept on the device, CPU or CUDA) or,
// where the addon is not built, OrtEngine (onnxruntime-node: state copied each step, CPU only).
// `--engine auto` takes the native one when it loads.
import type { TrainEngine } from './engine.js';
import { addonStatus } from './native-binding.js';
import { NativeEngine } from './native-engine.js';
import type { Device } from '../runtime/providers.js';
import { UsageError } from '../util/errors.js';
import { OrtEngine } from './ort-engine.js';

export const ENGINES = ['auto', 'native', 'ort'] as const;
export type EngineChoice = (typeof ENGINES)[number];
export type EngineKind = Exclude<EngineChoice, 'auto'>;

export const BUILD_HINT =
  'install cmake and a C++ compiler (e.g. `apt-get install cmake g++`), then run `npm run build:native`';

export interface OpenedEngine {
  engine: TrainEngine;
  kind: EngineKind;
  /** One line for the user: which engine runs, and why when it is not the native one. */
  note: string;
}

export function openEngine(choice: EngineChoice, device: Device): OpenedEngine {
  if (choice === 'ort') {
    if (device !== 'cpu')
      throw new UsageError(
        `Expected --engine native (or auto) for --device ${device}: the onnxruntime-node engine trains on the CPU only`,
      );
    return {
      engine: new OrtEngine(),
      kind: 'ort',
      note: 'engine: onnxruntime-node (state copied each step), as asked by --engine ort',
    };
  }
  const status = addonStatus();
  if (status.ok) return { engine: new NativeEngine(), kind: 'native', note: `engine: native addon (${status.file})` };
  if (choice === 'native' || device !== 'cpu') {
    const why = choice === 'native' ? '--engine native' : `--device ${device}`;
    throw new UsageError(
      `Expected the native trainer addon for ${why} but it is not built (${status.missing}); ${BUILD_HINT}`,
    );
  }
  return {
    engine: new OrtEngine(),
    kind: 'ort',
    note: `engine: onnxruntime-node, since the native addon is not built (${status.missing}); it trains the same graphs to the same checkpoints, but the native one trains the full model several times faster (README, "Benchmarks"): ${BUILD_HINT}`,
  };
}
