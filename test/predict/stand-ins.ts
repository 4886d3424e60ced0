// Stand-ins of foreign taggers for the contract tests: a linear model over the flattened input in a
// family's exact input layout, and the float64 computation of its scores written independently of
// src/ (pad or stretch, channel order, scale, mean/std, layout, sigmoid).
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { A, Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';
import { cli } from '../helpers.js';

export const S = 16;
export const K = 4;
const rng = new Rng(26);
const W = Float64Array.from({ length: 3 * S * S * K }, () => (rng.next() - 0.5) * 0.02);
const B = Float64Array.from({ length: K }, () => rng.next() - 0.5);

export interface StandIn {
  layout?: 'NCHW' | 'NHWC';
  /** How many outputs, and which holds the scores (the others: scores + 1). */
  outputs?: number;
  index?: number;
  /** The graph ends in a sigmoid (probabilities) instead of giving logits. */
  probabilities?: boolean;
  /** A factor on the weights (1/255 keeps 0–255 inputs off the sigmoid's flat ends). */
  weight?: number;
}

/** scores = x·W + b over the flattened input (sigmoid applied where `probabilities`). */
export function standIn(o: StandIn = {}): Uint8Array {
  const { layout = 'NCHW', outputs = 1, index = 0, probabilities = false, weight = 1 } = o;
  const g = new Graph('stand_in');
  const x = g.input('pixel_values', 'float32', layout === 'NCHW' ? ['N', 3, S, S] : ['N', S, S, 3]);
  const flat = g.op('Reshape', [x, g.const([-1, 3 * S * S])]);
  let z = g.op('Add', [
    g.op('MatMul', [
      flat,
      g.initializer(
        'w',
        'float32',
        [3 * S * S, K],
        Float32Array.from(W, (v) => v * weight),
      ),
    ]),
    g.initializer('b', 'float32', [K], Float32Array.from(B)),
  ]);
  if (probabilities) z = g.op('Sigmoid', [z]);
  for (let i = 0; i < outputs; i++)
    g.output(i === index ? z : g.op('Add', [z, g.const(1, 'float32')]), `out${i}`, 'float32', ['N', K]);
  return g.encode();
}

/** An RGB w×h PNG whose pixels vary along x only (so a vertical stretch keeps them), and its pixels. */
export async function image(file: string, w: number, h: number): Promise<Uint8Array> {
  const raw = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const c = i % w;
    raw.set([(c * 7 + 20) % 256, (c * 13 + 50) % 256, (c * 3 + 100) % 256], i * 3);
  }
  await sharp(Buffer.from(raw), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
  return raw;
}

export interface Family {
  mean: number[];
  std: number[];
  pad: number[];
  scale?: number;
  bgr?: boolean;
  layout?: 'NCHW' | 'NHWC';
  stretch?: boolean;
  /** The stand-in's factor on its weights. */
  weight?: number;
}

/**
 * float64, for an image S wide and h ≤ S high: centred pad (the long side is S: no resize) or a stretch
 * to S×S (rows repeat: the pixels vary along x only), the channels in RGB or BGR order,
 * (v/255·scale − mean)/std, flattened in the layout, x·W + b, sigmoid.
 */
export function reference(raw: Uint8Array, w: number, h: number, f: Family): number[] {
  const top = Math.floor((S - h) / 2);
  const left = Math.floor((S - w) / 2);
  const x = new Float64Array(3 * S * S);
  for (let y = 0; y < S; y++)
    for (let c = 0; c < S; c++)
      for (let ch = 0; ch < 3; ch++) {
        const src = f.bgr ? 2 - ch : ch;
        const inside = f.stretch || (y >= top && y < top + h && c >= left && c < left + w);
        const row = f.stretch ? 0 : y - top;
        const v = inside ? raw[(row * w + (c - (f.stretch ? 0 : left))) * 3 + src]! : f.pad[src]!;
        const at = f.layout === 'NHWC' ? (y * S + c) * 3 + ch : ch * S * S + y * S + c;
        x[at] = ((v / 255) * (f.scale ?? 1) - f.mean[ch]!) / f.std[ch]!;
      }
  return Array.from({ length: K }, (_, j) => {
    let z = B[j]!;
    for (let i = 0; i < x.length; i++) z += x[i]! * W[i * K + j]! * (f.weight ?? 1);
    return 1 / (1 + Math.exp(-z));
  });
}

export const close = (got: number[], want: number[]): boolean =>
  got.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 2e-5);

/** `pred` of `img` with every tag reported, the tags in `order`: their scores, categories and stderr. */
export async function predProbs(
  img: string,
  args: string[],
  order: string[],
): Promise<{ probs: number[]; tags: { tag: string; category: number }[]; err: string }> {
  const r = await cli('pred', img, '--format', 'jsonl', '--threshold', '0', '--rating', 'all', ...args);
  assert.equal(r.code, 0, r.err.join('\n'));
  const t = (JSON.parse(r.out[0]!) as { tags: { tag: string; prob: number; category: number }[] }).tags;
  t.sort((a, b) => order.indexOf(a.tag) - order.indexOf(b.tag));
  return { probs: t.map((x) => x.prob), tags: t, err: r.err.join('\n') };
}

/** A WD-layout stand-in: sigmoid of 0.01 × the pixel mean of each channel (8×8 NHWC), 3 tags. */
export function wdStandIn(): Uint8Array {
  const g = new Graph('wd');
  const x = g.input('input', 'float32', ['N', 8, 8, 3]);
  const mean = g.op('ReduceMean', [x], { axes: A.ints([1, 2]), keepdims: A.i(0) });
  g.output(g.op('Sigmoid', [g.op('Mul', [mean, g.const(0.01, 'float32')])]), 'output', 'float32', ['N', 3]);
  return g.encode();
}
