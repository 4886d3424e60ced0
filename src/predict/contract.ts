// What a tagger model expects as input and gives as output: our own exports (uint8 RGB, black
// letterbox, normalization inside) and the models taggers' users already have — the WD taggers
// (float32 NHWC BGR 0–255, white padding, cubic resize) and DeepDanbooru (float32 NHWC RGB 0–1).
// Presets fill a contract; `auto` recognises our export by its metadata and otherwise infers from the
// model's input and the tags file; explicit overrides win.
import ort from 'onnxruntime-node';
import type { PadColor, PadRule, ResizeKernel } from '../data/images.js';
import { UsageError } from '../util/errors.js';

export const PRESETS = ['auto', 'wd', 'deepdanbooru'] as const;
export type Preset = (typeof PRESETS)[number];
export const CHANNEL_ORDERS = ['rgb', 'bgr'] as const;
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];
export const SCALES = [255, 1] as const;

/** How images become the model's input tensor. */
export interface InputContract {
  kind: 'ours' | 'wd' | 'deepdanbooru';
  inputName: string;
  probsName: string;
  /** Absent for foreign models (they have no hidden-layer output we know of). */
  featuresName?: string;
  size: number;
  dtype: 'uint8' | 'float32';
  channels: ChannelOrder;
  /** float32 inputs: a pixel v becomes v / 255 × scale (255: raw 0–255, 1: 0–1). */
  scale: number;
  padColor: PadColor;
  pad: PadRule;
  kernel: ResizeKernel;
  /** Pad to a square, then resize (the WD taggers' reference); else resize, then letterbox. */
  padFirst: boolean;
  /** A batch dimension fixed at this size (1 for some exports), else null. */
  fixedBatch: number | null;
}

export interface ContractOverrides {
  channels?: ChannelOrder;
  scale?: number;
  padColor?: PadColor;
}

const PRESET_CONTRACT: Record<
  'wd' | 'deepdanbooru',
  Pick<InputContract, 'channels' | 'scale' | 'padColor' | 'kernel' | 'padFirst'>
> = {
  // SmilingWolf's wd-tagger reference: alpha onto white, pad to a white square, PIL bicubic resize.
  wd: { channels: 'bgr', scale: 255, padColor: 'white', kernel: 'cubic', padFirst: true },
  deepdanbooru: { channels: 'rgb', scale: 1, padColor: 'white', kernel: 'cubic', padFirst: false },
};

/** The tensor input of a foreign tagger: float32 [N|1, S, S, 3], checked, with the file named in errors. */
function foreignInput(
  session: Pick<ort.InferenceSession, 'inputMetadata'>,
  file: string,
): { name: string; size: number; fixedBatch: number | null } {
  const where = JSON.stringify(file);
  const inputs = session.inputMetadata;
  if (inputs.length !== 1 || !inputs[0]!.isTensor)
    throw new UsageError(`Expected a tagger model with one image input in ${where} but it has ${inputs.length} inputs`);
  const input = inputs[0] as ort.InferenceSession.TensorValueMetadata;
  const shape = input.shape;
  if (
    input.type !== 'float32' ||
    shape.length !== 4 ||
    shape[3] !== 3 ||
    typeof shape[1] !== 'number' ||
    shape[1] !== shape[2]
  ) {
    throw new UsageError(
      `Expected a float32 NHWC input [N, S, S, 3] (WD or DeepDanbooru layout) in ${where} but ${JSON.stringify(input.name)} is ${input.type} [${shape.join(', ')}]`,
    );
  }
  return {
    name: input.name,
    size: shape[1] as number,
    fixedBatch: typeof shape[0] === 'number' && shape[0] > 0 ? shape[0] : null,
  };
}

/** The contract of a model without our metadata, from the preset (auto: from its tags file). */
export function foreignContract(
  session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputNames'>,
  file: string,
  preset: Preset,
  tagsFile: string,
  over: ContractOverrides,
): { contract: InputContract; chosen: string } {
  const input = foreignInput(session, file);
  const outputs = session.outputNames;
  if (outputs.length < 1)
    throw new UsageError(
      `Expected a tagger model with a probabilities output in ${JSON.stringify(file)} but it has no outputs`,
    );
  const kind = preset !== 'auto' ? preset : /\.csv$/i.test(tagsFile) ? 'wd' : 'deepdanbooru';
  const base = PRESET_CONTRACT[kind];
  const contract: InputContract = {
    kind,
    inputName: input.name,
    probsName: outputs[0]!,
    size: input.size,
    dtype: 'float32',
    pad: 'center',
    fixedBatch: input.fixedBatch,
    ...base,
    ...(over.channels ? { channels: over.channels } : {}),
    ...(over.scale ? { scale: over.scale } : {}),
    ...(over.padColor ? { padColor: over.padColor } : {}),
  };
  const why =
    preset === 'auto'
      ? ` (auto: float32 NHWC ${input.size}×${input.size} input, tags from a ${kind === 'wd' ? 'selected_tags.csv' : 'tags.txt'})`
      : '';
  const chosen = `preset ${kind}${why}: ${contract.channels.toUpperCase()}, ${contract.scale === 255 ? '0–255' : '0–1'}, ${contract.padFirst ? `${contract.padColor} square padding, then ${contract.kernel} resize` : `${contract.kernel} resize, then ${contract.padColor} padding`}${contract.fixedBatch ? `, batch fixed at ${contract.fixedBatch}` : ''}`;
  return { contract, chosen };
}

/**
 * The model's input tensor from preprocessed uint8 RGB images (n, S, S, 3): as is for uint8 models,
 * else float32 in the contract's channel order and scale.
 */
export function inputTensor(c: InputContract, images: Uint8Array, n: number): ort.Tensor {
  const dims = [n, c.size, c.size, 3];
  if (c.dtype === 'uint8') return new ort.Tensor('uint8', images, dims);
  const out = new Float32Array(images.length);
  const k = c.scale / 255;
  if (c.channels === 'rgb') for (let i = 0; i < images.length; i++) out[i] = images[i]! * k;
  else {
    for (let i = 0; i < images.length; i += 3) {
      out[i] = images[i + 2]! * k;
      out[i + 1] = images[i + 1]! * k;
      out[i + 2] = images[i]! * k;
    }
  }
  return new ort.Tensor('float32', out, dims);
}
