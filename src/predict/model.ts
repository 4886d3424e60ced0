// The exported tagger (docs/ARCHITECTURE.md, "Files") as used by prediction: one ONNX file, uint8 letterboxed images in,
// `probs` and `features` out, with the tag list and preprocessing read from its metadata_props.
import ort from 'onnxruntime-node';
import protobuf from 'protobufjs';
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';
import { INFERENCE_FORMAT } from '../../training/artifacts.js';
import type { PadRule } from '../data/images.js';

export interface TaggerMetadata {
  tags: string[];
  categories: number[];
  imageSize: number;
  pad: PadRule;
  hidden: number;
  source: string;
}

/** metadata_props of an ONNX model, reading only the top-level fields (the graph is skipped, not decoded). */
export function readMetadataProps(bytes: Uint8Array): Map<string, string> {
  const r = protobuf.Reader.create(bytes);
  const out = new Map<string, string>();
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 14 && (tag & 7) === 2) {
      const end = r.uint32() + r.pos;
      let key = '';
      let value = '';
      while (r.pos < end) {
        const t = r.uint32();
        if (t >>> 3 === 1) key = r.string();
        else if (t >>> 3 === 2) value = r.string();
        else r.skipType(t & 7);
      }
      out.set(key, value);
    } else r.skipType(tag & 7);
  }
  return out;
}

export function parseTaggerMetadata(props: Map<string, string>, file: string): TaggerMetadata {
  const where = JSON.stringify(file);
  if (props.get('format') !== INFERENCE_FORMAT) {
    throw new UsageError(`Expected an alt-i2v-ort model (metadata format=${INFERENCE_FORMAT}) in ${where} but its metadata has ${props.has('format') ? `format=${props.get('format')}` : 'no format'}; export one with \`alt-i2v-ort export\``);
  }
  const missing = ['tags', 'categories', 'image_size', 'pad', 'hidden'].filter((k) => !props.has(k));
  if (missing.length) throw new UsageError(`Expected metadata ${missing.join(', ')} in ${where} but it is missing`);
  return {
    tags: JSON.parse(props.get('tags')!),
    categories: JSON.parse(props.get('categories')!),
    imageSize: Number(props.get('image_size')),
    pad: props.get('pad') as PadRule,
    hidden: Number(props.get('hidden')),
    source: props.get('source') ?? '',
  };
}

export class TaggerModel {
  private constructor(
    readonly meta: TaggerMetadata,
    private readonly session: ort.InferenceSession,
  ) {}

  static async load(file: string, opts: { executionProviders?: string[]; threads?: number } = {}): Promise<TaggerModel> {
    const bytes = await readInput(file, 'a model file for --model');
    let props: Map<string, string>;
    try {
      props = readMetadataProps(bytes);
    } catch {
      throw new UsageError(`Expected an ONNX model in ${JSON.stringify(file)} but it does not parse`);
    }
    const meta = parseTaggerMetadata(props, file);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: opts.executionProviders ?? ['cpu'], intraOpNumThreads: opts.threads ?? 0, graphOptimizationLevel: 'all' });
    return new TaggerModel(meta, session);
  }

  /** Probabilities (n, K) and features (n, D) of n preprocessed images (uint8 n×S×S×3). */
  async run(images: Uint8Array, n: number): Promise<{ probs: Float32Array; features: Float32Array }> {
    const s = this.meta.imageSize;
    const out = await this.session.run({ image: new ort.Tensor('uint8', images, [n, s, s, 3]) });
    return { probs: out.probs!.data as Float32Array, features: out.features!.data as Float32Array };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
