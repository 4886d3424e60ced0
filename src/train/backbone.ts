// `train --backbone FILE`: pretrained VGG16 conv weights from the files users have: an ONNX VGG16 (Model
// Zoo, torchvision export), Keras's vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (HWIO kernels,
// read with h5wasm), or a torchvision/timm state dict saved as .safetensors (`features.N.weight`, OIHW).
// Each is checked by layer order and shape; problems are usage errors naming the file and the layer.
import { readSafetensors } from '../data/safetensors.js';
import { UsageError } from '../util/errors.js';
import { fsReason, readInput } from '../util/fsx.js';
import { BackboneError, convParams, hwioToOihw, importOnnxBackbone, type ConvWeights } from '../../training/vgg16.js';
import type { ModelConfig } from '../../training/params.js';
import { access } from 'node:fs/promises';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';

/** Keras: layers in the file's `layer_names` order; each conv's `kernel:0` (HWIO) and `bias:0`. */
async function kerasConvs(file: string): Promise<ConvWeights[]> {
  const h5wasm = (await import('h5wasm/node')).default;
  await h5wasm.ready;
  await access(file).catch((err: unknown) => {
    throw new UsageError(
      `Expected a Keras .h5 file for --backbone but ${JSON.stringify(file)} cannot be read (${fsReason(err)})`,
    );
  });
  let f: H5File;
  try {
    f = new h5wasm.File(file, 'r');
    void f.keys();
  } catch {
    throw new BackboneError(
      `Expected an HDF5 file (Keras weights) in ${JSON.stringify(file)} but it does not open as one`,
    );
  }
  try {
    return kerasConvsOf(f, file);
  } catch (err) {
    if (err instanceof BackboneError) throw err;
    throw new BackboneError(
      `Expected Keras VGG16 weights (layer_names, weight_names, kernel:0, bias:0) in ${JSON.stringify(file)} but reading them fails: ${(err as Error).message}`,
    );
  } finally {
    f.close();
  }
}

function kerasConvsOf(f: H5File, file: string): ConvWeights[] {
  const names = (f.attrs['layer_names']?.value as string[] | undefined) ?? (f.keys() as string[]);
  const convs: ConvWeights[] = [];
  for (const name of names.filter((n) => /conv/i.test(n))) {
    const group = f.get(name) as Group;
    const weightNames = (group.attrs['weight_names']?.value as string[] | undefined) ?? [
      `${name}/kernel:0`,
      `${name}/bias:0`,
    ];
    const kernel = group.get(weightNames.find((w) => /kernel/.test(w))!) as Dataset | null;
    const bias = group.get(weightNames.find((w) => /bias/.test(w)) ?? '') as Dataset | null;
    const label = `layer ${name} of ${JSON.stringify(file)}`;
    if (!kernel?.shape || kernel.shape.length !== 4 || kernel.shape[0] !== 3 || kernel.shape[1] !== 3)
      throw new BackboneError(
        `Expected a 3×3 kernel (HWIO) in ${label} but found ${kernel?.shape ? `[${kernel.shape}]` : 'none'}`,
      );
    const [, , ci, co] = kernel.shape as number[];
    convs.push({
      label,
      weight: hwioToOihw(Float32Array.from(kernel.value as ArrayLike<number>), ci!, co!),
      shape: [co!, ci!, 3, 3],
      bias: bias ? Float32Array.from(bias.value as ArrayLike<number>) : undefined,
    });
  }
  return convs;
}

/** torchvision/timm: `features.N.weight` (OIHW) and `features.N.bias`, by N. */
async function torchConvs(file: string): Promise<ConvWeights[]> {
  const { header, data } = await readSafetensors(file);
  const keys = [...header.tensors.keys()]
    .map((k) => [k, /(?:^|\.)features\.(\d+)\.weight$/.exec(k)] as const)
    .filter(([k, m]) => m && header.tensors.get(k)!.shape.length === 4);
  keys.sort((a, b) => Number(a[1]![1]) - Number(b[1]![1]));
  return keys.map(([k]) => {
    const t = header.tensors.get(k)!;
    if (t.dtype !== 'F32')
      throw new BackboneError(`Expected float32 weights for ${k} in ${JSON.stringify(file)} but found ${t.dtype}`);
    const floats = (name: string): Float32Array | undefined => {
      const b = data.get(name);
      return b ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : undefined;
    };
    return {
      label: `${k} of ${JSON.stringify(file)}`,
      weight: floats(k)!,
      shape: t.shape,
      bias: floats(k.replace(/weight$/, 'bias')),
    };
  });
}

export async function importBackbone(file: string, config: ModelConfig): Promise<Map<string, Float32Array>> {
  try {
    if (/\.(h5|hdf5|keras)$/i.test(file)) return convParams(await kerasConvs(file), config, JSON.stringify(file));
    if (/\.safetensors$/i.test(file)) return convParams(await torchConvs(file), config, JSON.stringify(file));
    return importOnnxBackbone(await readInput(file, 'an ONNX VGG16 file for --backbone'), file, config);
  } catch (err) {
    throw err instanceof BackboneError ? new UsageError(err.message) : err;
  }
}
