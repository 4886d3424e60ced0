// Stand-ins of the taggers users teach, with their tags files beside them: WD's shape (NHWC BGR 0–255,
// pooled random conv features, a MatMul or Gemm scoring layer, sigmoid probabilities, selected_tags.csv)
// and JoyTag's (NCHW RGB 0–1 with CLIP's mean/std, a 1×1 Conv scoring layer before pooling, logits,
// top_tags.txt); optionally with the weights in an external data file. Random features of the synth
// pictures' colours and shapes carry enough to learn their tags from.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { A, Graph } from '../../src/onnx/graph.js';
import { Rng } from '../../training/rng.js';
import { externalize } from '../quantize/externalize.js';
import { cliSteps } from '../helpers.js';

export interface BaseTagger {
  file: string;
  tagsFile: string;
  tags: string[];
  width: number;
}

export interface BaseOptions {
  family?: 'wd' | 'joytag';
  size?: number;
  width?: number;
  tags?: string[];
  seed?: number;
  /** WD's scoring layer: MatMul + Add (default) or Gemm. */
  op?: 'MatMul' | 'Gemm';
  /** Weights in model.onnx.data beside the model. */
  external?: boolean;
}

export async function writeBaseTagger(dir: string, o: BaseOptions = {}): Promise<BaseTagger> {
  const size = o.size ?? 32;
  const width = o.width ?? 48;
  const joy = o.family === 'joytag';
  const tags =
    o.tags ?? (joy ? ['1girl', 'solo', 'circle', 'smile'] : ['1girl', 'solo', 'red_background', 'rating:general']);
  const rng = new Rng(o.seed ?? 5);
  const random = (n: number, scale: number): Float32Array =>
    Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  const g = new Graph(joy ? 'joytag_stand_in' : 'wd_stand_in');
  const k = tags.length;
  const nchw = joy
    ? g.input('input', 'float32', ['N', 3, size, size])
    : g.op('Mul', [
        g.op('Transpose', [g.input('input', 'float32', ['N', size, size, 3])], { perm: A.ints([0, 3, 1, 2]) }),
        g.const(1 / 255, 'float32'),
      ]);
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
  const w = random(width * k, 1);
  const b = random(k, 0.5);
  if (joy) {
    const head = g.op('Conv', [
      conv,
      g.initializer('head_w', 'float32', [k, width, 1, 1], w),
      g.initializer('head_b', 'float32', [k], b),
    ]);
    g.output(g.op('Flatten', [g.op('GlobalAveragePool', [head])], { axis: A.i(1) }), 'logits', 'float32', ['N', k]);
  } else {
    const embedding = g.op('Flatten', [g.op('GlobalAveragePool', [conv])], { axis: A.i(1) }, 'pooled');
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
  }
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  if (o.external) await externalize(g.encode(), dir, 'model.onnx', 'model.onnx.data');
  else await writeFile(file, g.encode());
  if (joy) {
    const tagsFile = path.join(dir, 'top_tags.txt');
    await writeFile(tagsFile, `${tags.join('\n')}\n`);
    return { file, tagsFile, tags, width };
  }
  const tagsFile = path.join(dir, 'selected_tags.csv');
  const category = (t: string): number => (t.startsWith('rating:') ? 9 : 0);
  await writeFile(
    tagsFile,
    `tag_id,name,category,count\n${tags.map((t, i) => `${i},${t.replace(/^rating:/, '')},${category(t)},1`).join('\n')}\n`,
  );
  return { file, tagsFile, tags, width };
}

/** The teach tests' dataset: `count` synth images with captions under root/data, and root/tags.csv of the tags on `minCount` or more. */
export async function captionedSynth(
  root: string,
  count: number,
  seed: number,
  minCount: number,
): Promise<{ data: string; tagsCsv: string }> {
  const data = path.join(root, 'data');
  const tagsCsv = path.join(root, 'tags.csv');
  await cliSteps(
    ['synth', '--out', data, '--count', String(count), '--seed', String(seed)],
    ['tags', data, '--out', tagsCsv, '--min-count', String(minCount)],
  );
  return { data, tagsCsv };
}
