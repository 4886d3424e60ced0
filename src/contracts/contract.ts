// What a tagger model expects as input and gives as output: our own exports (uint8 RGB, black
// letterbox, normalization inside) and foreign taggers, whose contract is a JSON document
// (contract-doc.ts; the presets in presets/, or --contract FILE.json): layout, channel order,
// scale, mean and std, resize and filter, pad colour, which output holds the scores and whether they
// are logits. `auto` recognises our export by its metadata, and a foreign model by its tags file and
// its input layout; explicit overrides (--channels, --scale, --pad-color) win.
import path from 'node:path';
import ort from 'onnxruntime-node';
import { rgbOf, type Fit, type PadColor, type PadRule, type ResizeKernel, type Rgb } from '../data/images.js';
import type { ContractDoc } from './contract-doc.js';
import type { TagFormat } from './tag-files.js';
import { UsageError } from '../util/errors.js';

export const CHANNEL_ORDERS = ['rgb', 'bgr'] as const;
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];

/** How images become the model's input tensor, and where its scores are. */
export interface InputContract {
  /** 'ours', or the family of the contract document. */
  kind: string;
  inputName: string;
  probsName: string;
  /** Absent for foreign models (they have no hidden-layer output we know of). */
  featuresName?: string;
  size: number;
  dtype: 'uint8' | 'float32';
  layout: 'NHWC' | 'NCHW';
  channels: ChannelOrder;
  /** float32 inputs: a pixel v becomes (v / 255 × scale − mean) / std, per channel of the tensor. */
  scale: number;
  mean: Rgb;
  std: Rgb;
  padColor: PadColor | Rgb;
  pad: PadRule;
  kernel: ResizeKernel;
  fit: Fit;
  /** The scores are logits: a sigmoid makes them probabilities. */
  logits: boolean;
  /** A batch dimension fixed at this size (1 for some exports), else null. */
  fixedBatch: number | null;
  /** The family's published default thresholds, if any. */
  thresholds: ContractDoc['thresholds'];
}

export interface ContractOverrides {
  channels?: ChannelOrder;
  scale?: number;
  padColor?: PadColor | Rgb;
}

type Session = Pick<ort.InferenceSession, 'inputMetadata' | 'outputNames'>;

/** The layout of a foreign model's one image input, if it is a float32 [N, S, S, 3] or [N, 3, S, S]. */
export function inputLayout(session: Session): 'NHWC' | 'NCHW' | undefined {
  const input = session.inputMetadata[0] as ort.InferenceSession.TensorValueMetadata | undefined;
  const shape = input?.shape;
  if (!input?.isTensor || input.type !== 'float32' || shape?.length !== 4) return undefined;
  if (shape[3] === 3) return 'NHWC';
  if (shape[1] === 3) return 'NCHW';
  return undefined;
}

/** The tensor input of a foreign tagger in the document's layout, checked, with the file named in errors. */
function foreignInput(
  session: Session,
  file: string,
  doc: ContractDoc,
): { name: string; size: number; fixedBatch: number | null } {
  const where = JSON.stringify(file);
  const inputs = session.inputMetadata;
  if (inputs.length !== 1 || !inputs[0]!.isTensor)
    throw new UsageError(`Expected a tagger model with one image input in ${where} but it has ${inputs.length} inputs`);
  const input = inputs[0] as ort.InferenceSession.TensorValueMetadata;
  const shape = input.shape;
  const nhwc = doc.input.layout === 'NHWC';
  const [h, w] = nhwc ? [shape[1], shape[2]] : [shape[2], shape[3]];
  const size = typeof h === 'number' && h > 0 ? h : doc.input.size;
  if (input.type !== 'float32' || shape.length !== 4 || inputLayout(session) !== doc.input.layout || h !== w || !size) {
    const want = nhwc ? '[N, S, S, 3]' : '[N, 3, S, S]';
    throw new UsageError(
      `Expected a float32 ${doc.input.layout} input ${want} (contract ${doc.family}) in ${where} but ${JSON.stringify(input.name)} is ${input.type} [${shape.join(', ')}]${size ? '' : ' and the contract gives no size'}`,
    );
  }
  return { name: input.name, size, fixedBatch: typeof shape[0] === 'number' && shape[0] > 0 ? shape[0] : null };
}

const FILTER_KERNEL: Record<ContractDoc['input']['filter'], ResizeKernel> = {
  bicubic: 'cubic',
  lanczos: 'lanczos3',
  bilinear: 'linear',
};
const FIT: Record<ContractDoc['input']['resize'], Fit> = {
  'pad-then-resize': 'pad-first',
  'resize-then-pad': 'letterbox',
  stretch: 'stretch',
};

/** The contract of a model without our metadata, from a contract document and the user's overrides. */
export function foreignContract(
  session: Session,
  file: string,
  doc: ContractDoc,
  over: ContractOverrides,
): InputContract {
  const input = foreignInput(session, file, doc);
  const outputs = session.outputNames;
  const probsName = doc.output.name ?? outputs[doc.output.index];
  if (probsName === undefined || !outputs.includes(probsName))
    throw new UsageError(
      `Expected the scores output ${doc.output.name ? JSON.stringify(doc.output.name) : `number ${doc.output.index + 1}`} (contract ${doc.family}) in ${JSON.stringify(file)} but its outputs are ${JSON.stringify(outputs)}`,
    );
  return {
    kind: doc.family,
    inputName: input.name,
    probsName,
    size: input.size,
    dtype: 'float32',
    layout: doc.input.layout,
    channels: over.channels ?? doc.input.channels,
    scale: over.scale ?? doc.input.scale,
    mean: doc.input.mean,
    std: doc.input.std,
    padColor: over.padColor ?? doc.input.padColor,
    pad: 'center',
    kernel: FILTER_KERNEL[doc.input.filter],
    fit: FIT[doc.input.resize],
    logits: doc.output.scores === 'logits',
    fixedBatch: input.fixedBatch,
    thresholds: doc.thresholds,
  };
}

/** One line saying what a contract does, for the user. */
export function describeContract(c: InputContract): string {
  const [r, g, b] = rgbOf(c.padColor);
  const colour = r === g && g === b && (r === 0 || r === 255) ? (r ? 'white' : 'black') : `rgb(${r},${g},${b})`;
  const fit =
    c.fit === 'pad-first'
      ? `${colour} square padding, then ${c.kernel} resize`
      : c.fit === 'stretch'
        ? `${c.kernel} stretch`
        : `${c.kernel} resize, then ${colour} padding`;
  const norm =
    c.mean.some((m) => m !== 0) || c.std.some((s) => s !== 1)
      ? `, mean ${c.mean.join('/')} std ${c.std.join('/')}`
      : '';
  return `${c.layout} ${c.channels.toUpperCase()}, ${c.scale === 255 ? '0–255' : '0–1'}${norm}, ${fit}, scores from ${JSON.stringify(c.probsName)}${c.logits ? ' (logits, sigmoid applied)' : ''}${c.fixedBatch ? `, batch fixed at ${c.fixedBatch}` : ''}`;
}

/**
 * --preset auto for a foreign model: the preset whose tags file has this name, else whose tags format
 * this is, among those whose input layout is the model's; with a reason, or a line saying none fits.
 */
export function autoPreset(
  docs: ReadonlyMap<string, ContractDoc>,
  session: Session,
  tagsFile: string,
  format: TagFormat,
  file: string,
): { doc: ContractDoc; why: string } {
  const layout = inputLayout(session);
  const all = [...docs.values()].filter((d) => d.input.layout === layout);
  const base = path.basename(tagsFile).toLowerCase();
  const byName = all.filter((d) => d.tagsFiles.some((t) => t.toLowerCase() === base));
  const byFormat = all.filter((d) => d.tags.format === format);
  const doc = byName[0] ?? byFormat[0];
  if (!doc)
    throw new UsageError(
      `Expected a model whose input and tags file match a preset (${[...docs.keys()].join(', ')}) but ${JSON.stringify(file)} has a ${layout ?? 'non-image'} input and ${JSON.stringify(path.basename(tagsFile))} (${format}) fits none: pass --preset NAME or --contract FILE.json`,
    );
  const why = byName[0] ? `tags file ${path.basename(tagsFile)}` : `a ${format} tags file`;
  return { doc, why: `auto: ${layout} input, ${why}` };
}

/**
 * The model's input tensor from preprocessed uint8 RGB images (n, S, S, 3): as is for uint8 models,
 * else float32 in the contract's layout, channel order, scale, mean and std.
 */
export function inputTensor(c: InputContract, images: Uint8Array, n: number): ort.Tensor {
  const s = c.size;
  if (c.dtype === 'uint8') return new ort.Tensor('uint8', images, [n, s, s, 3]);
  const out = new Float32Array(images.length);
  const src = c.channels === 'rgb' ? [0, 1, 2] : [2, 1, 0];
  const k = c.scale / 255;
  const a = [0, 1, 2].map((ch) => k / c.std[ch]!);
  const b = [0, 1, 2].map((ch) => -c.mean[ch]! / c.std[ch]!);
  const plane = s * s;
  for (let img = 0; img < n; img++) {
    const base = img * plane * 3;
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < 3; ch++) {
        const v = images[base + p * 3 + src[ch]!]! * a[ch]! + b[ch]!;
        out[c.layout === 'NHWC' ? base + p * 3 + ch : base + ch * plane + p] = v;
      }
  }
  return new ort.Tensor('float32', out, c.layout === 'NHWC' ? [n, s, s, 3] : [n, 3, s, s]);
}
