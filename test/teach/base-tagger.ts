// A stand-in of a WD tagger to teach: NHWC BGR 0–255 input, random 3×3 conv features pooled into a
// `width`-wide embedding, a MatMul + bias scoring layer and a sigmoid, with selected_tags.csv beside
// it. Random features of the synth pictures' colours and shapes carry enough to learn their tags from.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { A, Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';

export interface BaseTagger {
  file: string;
  tagsFile: string;
  tags: string[];
  width: number;
}

export async function writeBaseTagger(
  dir: string,
  o: { size?: number; width?: number; tags?: string[]; seed?: number; op?: 'MatMul' | 'Gemm' } = {},
): Promise<BaseTagger> {
  const size = o.size ?? 32;
  const width = o.width ?? 48;
  const tags = o.tags ?? ['1girl', 'solo', 'red_background', 'rating:general'];
  const rng = new Rng(o.seed ?? 5);
  const random = (n: number, scale: number): Float32Array =>
    Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  const g = new Graph('wd_stand_in');
  const x = g.input('input', 'float32', ['N', size, size, 3]);
  const nchw = g.op('Mul', [g.op('Transpose', [x], { perm: A.ints([0, 3, 1, 2]) }), g.const(1 / 255, 'float32')]);
  const conv = g.op('Relu', [
    g.op(
      'Conv',
      [
        nchw,
        g.initializer('conv_w', 'float32', [width, 3, 5, 5], random(width * 75, 0.4)),
        g.initializer('conv_b', 'float32', [width], random(width, 0.3)),
      ],
      { pads: A.ints([2, 2, 2, 2]), strides: A.ints([2, 2]) },
    ),
  ]);
  const embedding = g.op('Flatten', [g.op('GlobalAveragePool', [conv])], { axis: A.i(1) }, 'pooled');
  const k = tags.length;
  const w = random(width * k, 1);
  const b = random(k, 0.5);
  const scores =
    o.op === 'Gemm'
      ? g.op('Gemm', [
          embedding,
          g.initializer('fc_w', 'float32', [width, k], w),
          g.initializer('fc_b', 'float32', [k], b),
        ])
      : g.op('Add', [
          g.op('MatMul', [embedding, g.initializer('fc_w', 'float32', [width, k], w)]),
          g.initializer('fc_b', 'float32', [k], b),
        ]);
  g.output(g.op('Sigmoid', [scores]), 'output', 'float32', ['N', k]);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  await writeFile(file, g.encode());
  const tagsFile = path.join(dir, 'selected_tags.csv');
  const category = (t: string): number => (t.startsWith('rating:') ? 9 : 0);
  await writeFile(
    tagsFile,
    `tag_id,name,category,count\n${tags.map((t, i) => `${i},${t.replace(/^rating:/, '')},${category(t)},1`).join('\n')}\n`,
  );
  return { file, tagsFile, tags, width };
}
