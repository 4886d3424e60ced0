// A run's RUN/config.json: what was trained (model config, backbone, tags) and how (seed, batch, lr).
// Read by `train --resume` and `export`; the model config for a backbone name lives here too.
import { UsageError } from '../util/errors.js';
import { readJsonInput } from '../util/fsx.js';
import type { Device } from '../runtime/providers.js';
import type { EmbeddingSource } from '../data/shards.js';
import type { BestBy } from './checkpoint.js';
import path from 'node:path';
import {
  checkConfig,
  defaultConfig,
  VGG16_TINY_WIDTHS,
  VGG16_WIDTHS,
  type ModelConfig,
} from '../../training/params.js';

export const RUN_FORMAT = 'alt-i2v-ort/run';

export interface RunConfig {
  format: typeof RUN_FORMAT;
  version: 1;
  model: ModelConfig;
  backbone: string;
  seed: number;
  batch: number;
  lr: number;
  shards: string;
  pad: string;
  tags: { sha256: string; names: string[]; categories: number[] };
  /** A head over a frozen tagger's embedding: the base it was trained on (the shards' index.json). */
  base?: EmbeddingSource;
  /** The holdout metric that picks the best round (absent: map, as runs written before it). */
  best?: BestBy;
  /** The run's precision, kept by --resume (absent in runs written before it was recorded). */
  precision?: TrainPrecision;
}

/** Model config for a backbone name (or weights file) and the model flags. */
export function modelConfigFor(
  backbone: string,
  tags: number,
  imageSize: number,
  hidden: number,
  freeze: number | undefined,
): ModelConfig {
  if (hidden === 0)
    throw new UsageError(
      "Expected --hidden 1 or more for a VGG16 model: --hidden 0 (one linear layer) is for a head over a tagger's embedding (shards made with pairs --backbone)",
    );
  const tiny = backbone === 'vgg16-tiny';
  const config = defaultConfig({
    tags,
    imageSize,
    hidden,
    widths: [...(tiny ? VGG16_TINY_WIDTHS : VGG16_WIDTHS)],
    // The seed froze 8 pretrained convs; a tiny backbone has nothing pretrained to keep.
    freeze: freeze ?? (tiny ? 0 : 8),
  });
  try {
    checkConfig(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return config;
}

/** Model config of a head over an embedding `width` wide (shards of `pairs --backbone`). */
export function headConfigFor(width: number, tags: number, hidden: number): ModelConfig {
  const config: ModelConfig = {
    ...defaultConfig({ tags, hidden }),
    embedding: width,
    widths: [],
    imageSize: 0,
    freeze: 0,
  };
  try {
    checkConfig(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return config;
}

/** RUN/config.json, checked to be a run's. */
export async function readRunConfig(runDir: string): Promise<RunConfig> {
  const file = path.join(runDir, 'config.json');
  const run = await readJsonInput<RunConfig>(file, `a training run with config.json in ${JSON.stringify(runDir)}`);
  if (run?.format !== RUN_FORMAT)
    throw new UsageError(`Expected ${RUN_FORMAT} in ${JSON.stringify(file)} but found ${JSON.stringify(run?.format)}`);
  return run;
}

export const PRECISIONS = ['fp32', 'tf32', 'fp16', 'bf16'] as const;
export type TrainPrecision = 'fp32' | 'tf32' | 'fp16';

/** --precision for --device: fp32 and fp16 anywhere (fp16 on the CPU only to check it), tf32 on CUDA; bf16 refused, saying why. */
export function trainPrecision(precision: (typeof PRECISIONS)[number], device: Device): TrainPrecision {
  if (precision === 'bf16')
    throw new UsageError(
      "Expected --precision fp32, tf32 or fp16: bf16 is not offered, since ONNX Runtime's CUDA provider has no bfloat16 kernel for ops our graphs run in the half type (SpaceToDepth, Greater, Pad: onnxruntime issue 19502; a bfloat16 Conv fails to load: issue 25740)",
    );
  if (precision === 'tf32' && device !== 'cuda')
    throw new UsageError(
      'Expected --device cuda for --precision tf32 (TF32 is a mode of NVIDIA tensor cores); on the CPU use fp32',
    );
  return precision;
}
