// Downscaling as PIL does it (Image.resize with BICUBIC or BILINEAR): a separable filter whose support
// widens with the downscale factor, over every input pixel, weights normalized per output pixel. The
// foreign taggers' references preprocess with PIL, and libvips (sharp's resize) first shrinks by an
// integer box filter when the factor is 3 or more, which leaves 1–4 grey levels of difference on large
// photos. ONNX's Resize with antialias=1 (opset 18) is that filter (cubic a = −0.5, half-pixel centres,
// taps outside the image excluded), and ONNX Runtime runs it multithreaded on uint8 pixels: one small
// session per filter, made on first use, serves every size.
import ort from 'onnxruntime-node';
import { A, Graph } from '../onnx/graph.js';

export type AntialiasKernel = 'cubic' | 'linear';

const sessions = new Map<AntialiasKernel, Promise<ort.InferenceSession>>();

/** Grey padding added around the image before it is resized (a WD-style square), in pixels. */
export interface GreyPad {
  top: number;
  bottom: number;
  left: number;
  right: number;
  value: number;
}

function resizeModel(kernel: AntialiasKernel): Uint8Array {
  const g = new Graph(`resize-${kernel}`, 18);
  const x = g.input('pixels', 'uint8', [1, 'h', 'w', 3]);
  const pads = g.input('pads', 'int64', [8]);
  const value = g.input('value', 'uint8', []);
  const sizes = g.input('sizes', 'int64', [2]);
  // Padding here rather than in JavaScript: one pass in C++ over what may be tens of megabytes.
  const square = g.op('Pad', [x, pads, value], { mode: A.s('constant') });
  const y = g.op('Resize', [square, '', '', sizes], {
    mode: A.s(kernel),
    antialias: A.i(1),
    cubic_coeff_a: A.f(-0.5),
    exclude_outside: A.i(1),
    coordinate_transformation_mode: A.s('half_pixel'),
    axes: A.ints([1, 2]),
  });
  g.output(y, 'resized', 'uint8', [1, 'oh', 'ow', 3]);
  return g.encode();
}

/**
 * `pixels` (w×h RGB, HWC uint8), padded by `pad` (default none), resized to outW×outH with PIL's
 * antialiased `kernel`.
 */
export async function resizeAntialiased(
  pixels: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
  kernel: AntialiasKernel,
  pad: GreyPad = { top: 0, bottom: 0, left: 0, right: 0, value: 0 },
): Promise<Buffer> {
  let session = sessions.get(kernel);
  if (!session) {
    session = ort.InferenceSession.create(resizeModel(kernel), { graphOptimizationLevel: 'disabled' });
    sessions.set(kernel, session);
  }
  const int64 = (xs: number[]): ort.Tensor =>
    new ort.Tensor('int64', BigInt64Array.from(xs.map((v) => BigInt(v))), [xs.length]);
  const r = await (
    await session
  ).run({
    pixels: new ort.Tensor('uint8', pixels, [1, h, w, 3]),
    pads: int64([0, pad.top, pad.left, 0, 0, pad.bottom, pad.right, 0]),
    value: new ort.Tensor('uint8', Uint8Array.of(pad.value), []),
    sizes: int64([outH, outW]),
  });
  const out = r.resized!;
  const data = out.data as Uint8Array;
  if (out.dims.join() !== `1,${outH},${outW},3` || data.length !== outW * outH * 3)
    throw new Error(`resized to ${out.dims.join('×')}, expected ${outH}×${outW}×3`);
  return Buffer.from(data.buffer, data.byteOffset, data.length);
}
