// The training artifacts of a model config, in the spirit of onnxruntime-training's (train and eval
// graphs plus a manifest), and the self-contained inference model for export. Returns bytes only:
// the caller decides where and how files are written.
import { OPSET } from '../src/onnx/graph.js';
import { buildEvalGraph, buildInferenceGraph, buildTrainGraph } from './graphs.js';
import { paramSpecs, type ModelConfig, type ParamSpec } from './params.js';
import { buildInt8InferenceGraph, type ActivationRanges } from './int8.js';
import { encodeModel } from '../src/onnx/proto.js';
import { mixedPrecision } from './precision.js';

export const ARTIFACTS_FORMAT = 'alt-i2v-ort/artifacts';

export interface ArtifactsManifest {
  format: typeof ARTIFACTS_FORMAT;
  version: 1;
  opset: number;
  config: ModelConfig;
  params: ParamSpec[];
  /** File names within the artifacts folder. */
  files: { train: string; eval: string; step: string };
}

/**
 * train.onnx (loss and gradients: the native CPU engine follows it with its in-place Adam), step.onnx
 * (train + Adam fused), eval.onnx and manifest.json, as file
 * name → bytes: the graphs the trainer runs, for inspection (Netron) or for other ONNX Runtime tools.
 */
export function artifactFiles(config: ModelConfig): Map<string, Uint8Array> {
  const files = { train: 'train.onnx', eval: 'eval.onnx', step: 'step.onnx' };
  const manifest: ArtifactsManifest = {
    format: ARTIFACTS_FORMAT,
    version: 1,
    opset: OPSET,
    config,
    params: paramSpecs(config),
    files,
  };
  return new Map<string, Uint8Array>([
    [files.train, buildTrainGraph(config).encode()],
    [files.step, buildTrainGraph(config, { fuseOptimizer: true }).encode()],
    [files.eval, buildEvalGraph(config).encode()],
    ['manifest.json', new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`)],
  ]);
}

export interface InferenceMetadata {
  tags: string[];
  categories: number[];
  pad: 'center' | 'topleft';
  source: string;
  /** An int8 model: activation ranges and what they were calibrated on (images, where from). */
  int8?: { ranges: ActivationRanges; images: number; from: string };
  /** A float16 model for GPUs: convolutions and GEMMs in float16 (training/precision.ts), weights stored float32. */
  fp16?: boolean;
}

export const INFERENCE_FORMAT = 'alt-i2v-ort/model';

/**
 * The exported model (docs/ARCHITECTURE.md, "Files"): input `image` uint8 (N,S,S,3) RGB letterboxed, normalization
 * inside, outputs `probs` (N,K) and `features` (N,D); metadata_props carry what `pred` needs.
 */
export function encodeInferenceModel(
  config: ModelConfig,
  params: Map<string, Float32Array>,
  meta: InferenceMetadata,
): Uint8Array {
  if (meta.fp16 && meta.int8) throw new RangeError('inference model: int8 or fp16, not both');
  if (meta.tags.length !== config.tags || meta.categories.length !== config.tags) {
    throw new RangeError(
      `inference model: expected ${config.tags} tags and categories but received ${meta.tags.length} and ${meta.categories.length}`,
    );
  }
  const graph = meta.int8
    ? buildInt8InferenceGraph(config, params, meta.int8.ranges)
    : buildInferenceGraph(config, params);
  const precision: Record<string, string> = meta.int8
    ? {
        precision: 'int8',
        calibration: JSON.stringify({
          method: 'minmax',
          images: meta.int8.images,
          from: meta.int8.from,
          ranges: meta.int8.ranges,
        }),
      }
    : { precision: meta.fp16 ? 'fp16' : 'fp32' };
  const json = graph.toJson({
    format: INFERENCE_FORMAT,
    format_version: '1',
    tags: JSON.stringify(meta.tags),
    categories: JSON.stringify(meta.categories),
    image_size: String(config.imageSize),
    pad: meta.pad,
    hidden: String(config.hidden),
    source: meta.source,
    config: JSON.stringify(config),
    ...precision,
  });
  return encodeModel(meta.fp16 ? mixedPrecision(json).model : json);
}
