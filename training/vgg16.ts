// Imports the 13 conv weights and biases of an ONNX VGG16 (ONNX Model Zoo vgg16-7/vgg16-12, or a
// torchvision export) from its bytes: Conv nodes taken in graph order, each checked by shape against
// the config. Errors are BackboneError, which the CLI reports as a usage error.
import { decodeModel, tensorToFloat32, type ModelJson, type TensorProtoJson } from '../src/onnx/proto.js';
import type { ModelConfig } from './params.js';
import { PARAM } from './params.js';

/** The weights file is not a VGG16 this model can use; the message names the file and the part. */
export class BackboneError extends Error {
  override name = 'BackboneError';
}

/** `file` only names the source in messages. */
export function importOnnxBackbone(bytes: Uint8Array, file: string, c: ModelConfig): Map<string, Float32Array> {
  const where = JSON.stringify(file);
  let model: ModelJson;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new BackboneError(`Expected an ONNX model in ${where} but it does not decode (${(err as Error).message})`);
  }
  const graph = model.graph;
  if (!graph?.node?.length)
    throw new BackboneError(`Expected an ONNX model with a graph in ${where} but found no nodes`);
  const inits = new Map<string, TensorProtoJson>((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const convs = graph.node.filter((n) => n.op_type === 'Conv');
  if (graph.node.some((n) => n.op_type === 'BatchNormalization')) {
    throw new BackboneError(
      `Expected a plain VGG16 in ${where} but it has BatchNormalization nodes (vgg16-bn is not supported)`,
    );
  }
  if (convs.length !== 13) {
    throw new BackboneError(`Expected 13 Conv nodes (VGG16) in ${where} but found ${convs.length}`);
  }
  const out = new Map<string, Float32Array>();
  let cin = 3;
  convs.forEach((node, i) => {
    const label = `conv ${i + 1} (node ${JSON.stringify(node.name ?? '')}) of ${where}`;
    const w = inits.get(node.input[1] ?? '');
    if (!w)
      throw new BackboneError(
        `Expected the weight of ${label} as an initializer but ${JSON.stringify(node.input[1])} is not one`,
      );
    const want = [c.widths[i]!, cin, 3, 3];
    const dims = w.dims.map(Number);
    if (`${dims}` !== `${want}`)
      throw new BackboneError(`Expected weight shape [${want}] for ${label} but found [${dims}]`);
    const attrs = new Map((node.attribute ?? []).map((a) => [a.name, a]));
    const pads = attrs.get('pads')?.ints?.map(Number);
    const strides = attrs.get('strides')?.ints?.map(Number);
    if ((pads && `${pads}` !== '1,1,1,1') || (strides && `${strides}` !== '1,1')) {
      throw new BackboneError(
        `Expected 3×3 convs with stride 1 and padding 1 in ${label} but found strides [${strides ?? ''}] pads [${pads ?? ''}]`,
      );
    }
    let bias: Float32Array = new Float32Array(want[0]!);
    if (node.input[2]) {
      const b = inits.get(node.input[2]);
      if (!b || `${b.dims.map(Number)}` !== `${want[0]}`)
        throw new BackboneError(
          `Expected a bias of shape [${want[0]}] for ${label} but found ${b ? `[${b.dims}]` : 'none'}`,
        );
      bias = toFloats(b, label);
    }
    out.set(PARAM.convWeight(i), toFloats(w, label));
    out.set(PARAM.convBias(i), bias);
    cin = want[0]!;
  });
  return out;
}

function toFloats(t: TensorProtoJson, label: string): Float32Array {
  try {
    return tensorToFloat32(t);
  } catch (err) {
    throw new BackboneError(`Expected float32 weights inside the file for ${label} but ${(err as Error).message}`);
  }
}

/** One conv of a weights file, already in ONNX's OIHW layout. */
export interface ConvWeights {
  /** Where it came from, for messages (`block1_conv1 of "vgg16.h5"`). */
  label: string;
  weight: Float32Array;
  shape: number[];
  bias?: Float32Array;
}

/** The 13 convs of any weights file, checked by count, order and shape against the config. */
export function convParams(convs: readonly ConvWeights[], c: ModelConfig, where: string): Map<string, Float32Array> {
  if (convs.length !== 13)
    throw new BackboneError(`Expected 13 conv layers (VGG16) in ${where} but found ${convs.length}`);
  const out = new Map<string, Float32Array>();
  let cin = 3;
  convs.forEach((conv, i) => {
    const want = [c.widths[i]!, cin, 3, 3];
    if (`${conv.shape}` !== `${want}`)
      throw new BackboneError(
        `Expected weight shape [${want}] (OIHW) for conv ${i + 1}, ${conv.label}, but found [${conv.shape}]`,
      );
    if (conv.bias && conv.bias.length !== want[0])
      throw new BackboneError(
        `Expected a bias of ${want[0]} values for conv ${i + 1}, ${conv.label}, but found ${conv.bias.length}`,
      );
    out.set(PARAM.convWeight(i), conv.weight);
    out.set(PARAM.convBias(i), conv.bias ?? new Float32Array(want[0]!));
    cin = want[0]!;
  });
  return out;
}

/** Keras kernels are HWIO (3, 3, Ci, Co); ONNX's are OIHW. */
export function hwioToOihw(k: Float32Array, ci: number, co: number): Float32Array {
  const out = new Float32Array(co * ci * 9);
  for (let h = 0; h < 3; h++)
    for (let w = 0; w < 3; w++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * 3 + h) * 3 + w] = k[((h * 3 + w) * ci + i) * co + o]!;
  return out;
}
