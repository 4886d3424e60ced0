// Generates an ONNX file in the ONNX Model Zoo's VGG16 layout (Conv/Relu/MaxPool, Flatten, Gemm)
// with random weights, for the --backbone import tests. Never a real model.
import { A, Graph } from '../../src/onnx/graph.js';
import { POOL_AFTER } from '../../training/params.js';
import { Rng } from '../../training/rng.js';

export interface ZooOptions {
  widths: number[];
  /** Drop the last conv (a file with 12). */
  dropLast?: boolean;
  /** Insert a BatchNormalization after the first conv (vgg16-bn). */
  withBatchNorm?: boolean;
  seed?: number;
}

export function zooVgg16(o: ZooOptions): { bytes: Uint8Array; weights: Map<string, Float32Array> } {
  const rng = new Rng(o.seed ?? 9);
  const g = new Graph('vgg16_zoo_layout');
  const weights = new Map<string, Float32Array>();
  let x = g.input('data', 'float32', [1, 3, 32, 32]);
  let cin = 3;
  const count = o.dropLast ? 12 : 13;
  for (let i = 0; i < count; i++) {
    const co = o.widths[i]!;
    const w = Float32Array.from({ length: co * cin * 9 }, () => rng.next() - 0.5);
    const b = Float32Array.from({ length: co }, () => rng.next() - 0.5);
    weights.set(`conv${i + 1}.weight`, w).set(`conv${i + 1}.bias`, b);
    const wn = g.initializer(`vgg0_conv${i}_weight`, 'float32', [co, cin, 3, 3], w);
    const bn = g.initializer(`vgg0_conv${i}_bias`, 'float32', [co], b);
    x = g.op(
      'Conv',
      [x, wn, bn],
      { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]), strides: A.ints([1, 1]) },
      `vgg0_conv${i}_fwd`,
    );
    if (o.withBatchNorm && i === 0) {
      const ones = g.initializer('bn_scale', 'float32', [co], new Float32Array(co).fill(1));
      const zeros = g.initializer('bn_bias', 'float32', [co], new Float32Array(co));
      x = g.op('BatchNormalization', [x, ones, zeros, zeros, ones]);
    }
    x = g.op('Relu', [x]);
    if (POOL_AFTER.has(i)) x = g.op('MaxPool', [x], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) });
    cin = co;
  }
  const flat = g.op('Flatten', [x], { axis: A.i(1) });
  const fw = g.initializer(
    'vgg0_dense0_weight',
    'float32',
    [10, cin],
    Float32Array.from({ length: 10 * cin }, () => rng.next()),
  );
  const fb = g.initializer('vgg0_dense0_bias', 'float32', [10], new Float32Array(10));
  g.output(g.op('Gemm', [flat, fw, fb], { transB: A.i(1) }), 'vgg0_dense0_fwd', 'float32', [1, 10]);
  return { bytes: g.encode(), weights };
}
