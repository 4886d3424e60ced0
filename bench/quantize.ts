// `npm run bench -- quantize`: `quantize` (dynamic and static) on stand-ins with the real architectures,
// random weights: a ViT-B/16 (12 blocks, D 768, MLP 3072) and a ConvNeXt-T (stages 3-3-9-3, dims
// 96…768) in the WD taggers' input layout (NHWC BGR 0–255, selected_tags.csv beside), and a ResNet-50 in
// DeepDanbooru's (NHWC RGB 0–1, tags.txt), at 448 (--quick: 224), 10,000 tags. Then `pred` with the
// float model, the float model with quantize's float rewrites alone (layer norms as instance norms,
// residual adds in their branch's layout: src/quantize/norms.ts, layout.ts; the share of the gain that
// is not int8; MLP tiles are left out, being measured per model) and both int8 models on the same JPEGs,
// at one image a run and at pred's default batch of 8, alternating, medians of runs (a speedup: the
// median of each round's ratio to the fp32 run beside it), the model load beside, and the agreement each
// `quantize --images` printed. On a CPU without VNNI (AVX2 only) the integer kernels gain little; the
// ≥ 2× goal is for CPUs with VNNI (see `intFeatures`).
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../src/cli/index.js';
import { floatRewrites } from '../src/quantize/quantize.js';
import { A, Graph } from '../src/onnx/graph.js';
import { Rng } from '../training/rng.js';
import { intFeatures, median, saveResult } from './common.js';
import { makeJpegs } from './pairs.js';
import { predOnce } from './pred.js';

const TAGS = 10_000;

class Builder {
  readonly g = new Graph('stand_in');
  private readonly rng = new Rng(7);
  w(dims: number[], s = 0.02): string {
    const n = dims.reduce((a, b) => a * b, 1);
    return this.g.initializer(
      'w',
      'float32',
      dims,
      Float32Array.from({ length: n }, () => (this.rng.next() - 0.5) * 2 * s),
    );
  }
  ln(x: string, d: number): string {
    return this.g.op('LayerNormalization', [x, this.w([d], 1), this.w([d])], { axis: A.i(-1) });
  }
  linear(x: string, k: number, n: number): string {
    return this.g.op('Add', [this.g.op('MatMul', [x, this.w([k, n])]), this.w([n])]);
  }
  /** GELU as torch.onnx exports nn.GELU (x / √2 → Erf → + 1 → × x → × 0.5), the form ONNX Runtime fuses. */
  gelu(x: string): string {
    const g = this.g;
    const erf = g.op('Erf', [g.op('Div', [x, g.const(Math.SQRT2, 'float32')])]);
    return g.op('Mul', [g.op('Mul', [x, g.op('Add', [erf, g.const(1, 'float32')])]), g.const(0.5, 'float32')]);
  }
  /** The head: pooled [N, D] → sigmoid scores [N, TAGS]. */
  head(pooled: string, d: number): Uint8Array {
    this.g.output(this.g.op('Sigmoid', [this.linear(pooled, d, TAGS)]), 'output', 'float32', ['N', TAGS]);
    return this.g.encode();
  }
}

function vitB16(size: number): Uint8Array {
  const b = new Builder();
  const { g } = b;
  const [D, H, P] = [768, 12, 16];
  const side = size / P;
  const T = side * side;
  const x = g.input('input', 'float32', ['N', size, size, 3]);
  const patches = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [x, g.const([-1, side, P, side, P, 3])])], { perm: A.ints([0, 1, 3, 2, 4, 5]) }),
    g.const([-1, T, P * P * 3]),
  ]);
  let h = b.linear(patches, P * P * 3, D);
  for (let l = 0; l < 12; l++) {
    const qkv = b.linear(b.ln(h, D), D, 3 * D);
    const heads = g.op('Transpose', [g.op('Reshape', [qkv, g.const([-1, T, 3, H, D / H])])], {
      perm: A.ints([2, 0, 3, 1, 4]),
    });
    const [q, k, v] = g.node('Split', [heads], { axis: A.i(0) }, 3).map((t) => g.op('Squeeze', [t, g.const([0])]));
    const kt = g.op('Transpose', [k!], { perm: A.ints([0, 1, 3, 2]) });
    const att = g.op('Softmax', [g.op('Mul', [g.op('MatMul', [q!, kt]), g.const((D / H) ** -0.5, 'float32')])], {
      axis: A.i(-1),
    });
    const o = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [att, v!])], { perm: A.ints([0, 2, 1, 3]) }),
      g.const([-1, T, D]),
    ]);
    h = g.op('Add', [h, b.linear(o, D, D)]);
    h = g.op('Add', [h, b.linear(b.gelu(b.linear(b.ln(h, D), D, 4 * D)), 4 * D, D)]);
  }
  return b.head(g.op('ReduceMean', [b.ln(h, D)], { axes: A.ints([1]), keepdims: A.i(0) }), D);
}

function convnextT(size: number): Uint8Array {
  const b = new Builder();
  const { g } = b;
  const dims = [96, 192, 384, 768];
  const depths = [3, 3, 9, 3];
  const x = g.op('Transpose', [g.input('input', 'float32', ['N', size, size, 3])], { perm: A.ints([0, 3, 1, 2]) });
  let h = g.op('Conv', [x, b.w([96, 3, 4, 4]), b.w([96])], { strides: A.ints([4, 4]) });
  const nhwc = (t: string): string => g.op('Transpose', [t], { perm: A.ints([0, 2, 3, 1]) });
  const nchw = (t: string): string => g.op('Transpose', [t], { perm: A.ints([0, 3, 1, 2]) });
  dims.forEach((c, s) => {
    if (s > 0) {
      const prev = dims[s - 1]!;
      h = g.op('Conv', [nchw(b.ln(nhwc(h), prev)), b.w([c, prev, 2, 2]), b.w([c])], { strides: A.ints([2, 2]) });
    }
    for (let i = 0; i < depths[s]!; i++) {
      const dw = g.op('Conv', [h, b.w([c, 1, 7, 7]), b.w([c])], { group: A.i(c), pads: A.ints([3, 3, 3, 3]) });
      const mlp = b.linear(b.gelu(b.linear(b.ln(nhwc(dw), c), c, 4 * c)), 4 * c, c);
      h = g.op('Add', [h, nchw(mlp)]);
    }
  });
  const pooled = g.op('ReduceMean', [h], { axes: A.ints([2, 3]), keepdims: A.i(0) });
  return b.head(b.ln(pooled, 768), 768);
}

/**
 * A ResNet-50 (bottlenecks 3-4-6-3, widths 256…2048, batch norm folded into the convolutions as exports
 * do) in DeepDanbooru's input layout: NHWC RGB 0–1, tags.txt beside.
 */
function resnet50(size: number): Uint8Array {
  const b = new Builder();
  const { g } = b;
  const conv = (x: string, ci: number, co: number, k: number, stride = 1): string =>
    g.op('Conv', [x, b.w([co, ci, k, k], Math.sqrt(2 / (ci * k * k))), b.w([co])], {
      strides: A.ints([stride, stride]),
      pads: A.ints(Array(4).fill(k >> 1)),
    });
  const relu = (x: string): string => g.op('Relu', [x]);
  const x = g.op('Transpose', [g.input('input', 'float32', ['N', size, size, 3])], { perm: A.ints([0, 3, 1, 2]) });
  let h = g.op('MaxPool', [relu(conv(x, 3, 64, 7, 2))], {
    kernel_shape: A.ints([3, 3]),
    strides: A.ints([2, 2]),
    pads: A.ints([1, 1, 1, 1]),
  });
  let ci = 64;
  [3, 4, 6, 3].forEach((blocks, s) => {
    const mid = 64 << s;
    for (let i = 0; i < blocks; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const y = conv(relu(conv(relu(conv(h, ci, mid, 1)), mid, mid, 3, stride)), mid, mid * 4, 1);
      const skip = i === 0 ? conv(h, ci, mid * 4, 1, stride) : h;
      h = relu(g.op('Add', [y, skip]));
      ci = mid * 4;
    }
  });
  return b.head(g.op('ReduceMean', [h], { axes: A.ints([2, 3]), keepdims: A.i(0) }), ci);
}

/** fp32: the model as built; norms: the same with quantize's float rewrites alone (to show their share). */
type Form = 'fp32' | 'norms' | 'dynamic' | 'static';
const FORMS = ['fp32', 'norms', 'dynamic', 'static'] as const;
/** `pred` at one image a run and at its default batch. */
const BATCHES = [1, 8] as const;

/** `quantize` in `mode` through the CLI: the seconds it took and what it printed. */
async function quantizeCli(
  model: string,
  out: string,
  mode: string,
  images: string,
): Promise<{ seconds: number; said: string[] }> {
  await mkdir(path.dirname(out), { recursive: true });
  const said: string[] = [];
  const t = performance.now();
  const code = await runCli(['quantize', model, '--out', out, '--mode', mode, '--images', images], {
    out: (l) => said.push(l),
    err: () => undefined,
    tty: false,
  });
  if (code !== 0) throw new Error(`quantize --mode ${mode} exited ${code}`);
  return { seconds: (performance.now() - t) / 1000, said };
}

export async function benchQuantize(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const size = opts.quick ? 224 : 448;
  const count = opts.quick ? 8 : 16;
  const runs = opts.quick ? 2 : 3;
  const data = path.resolve('bench', 'data', `jpeg-850x1200-${count}`);
  await makeJpegs(data, count);
  const rows: Record<string, unknown>[] = [];
  const tags = Array.from({ length: TAGS }, (_, i) => `tag_${i}`);
  for (const [arch, build, tagsFile, tagsText] of [
    [
      'ViT-B/16',
      vitB16,
      'selected_tags.csv',
      `tag_id,name,category,count\n${tags.map((t, i) => `${i},${t},0,1`).join('\n')}\n`,
    ],
    [
      'ConvNeXt-T',
      convnextT,
      'selected_tags.csv',
      `tag_id,name,category,count\n${tags.map((t, i) => `${i},${t},0,1`).join('\n')}\n`,
    ],
    ['ResNet-50', resnet50, 'tags.txt', `${tags.join('\n')}\n`],
  ] as const) {
    const dir = path.join(os.tmpdir(), 'alt-i2v-bench-quantize', arch.replace('/', '-'));
    await mkdir(dir, { recursive: true });
    const files: Record<Form, string> = {
      fp32: path.join(dir, 'model.onnx'),
      norms: path.join(dir, 'norms', 'model.onnx'),
      dynamic: path.join(dir, 'dynamic', 'model.onnx'),
      static: path.join(dir, 'static', 'model.onnx'),
    };
    await writeFile(files.fp32, build(size));
    await writeFile(path.join(dir, tagsFile), tagsText);
    await mkdir(path.dirname(files.norms), { recursive: true });
    await writeFile(files.norms, floatRewrites(await readFile(files.fp32), files.fp32).bytes);
    await writeFile(path.join(path.dirname(files.norms), tagsFile), tagsText);
    const q = {
      dynamic: await quantizeCli(files.fp32, files.dynamic, 'dynamic', data),
      static: await quantizeCli(files.fp32, files.static, 'static', data),
    };
    // pred at batch 1 and at its default batch (8), alternating forms, medians of the runs.
    const r: Record<string, { rate: number; load: number }[]> = {};
    for (let i = 0; i < runs; i++)
      for (const batch of BATCHES)
        for (const k of FORMS) (r[`${k}/${batch}`] ??= []).push(await predOnce(data, files[k], count, batch));
    const rate = (k: Form, batch = 1): number => median(r[`${k}/${batch}`]!.map((x) => x.rate));
    const load = (k: Form): number => median(r[`${k}/1`]!.map((x) => x.load));
    const mb = async (k: Form): Promise<number> => (await stat(files[k])).size / 2 ** 20;
    // A speedup is the median of each round's ratio to the fp32 run beside it: this VM's speed drifts
    // by ±10% over minutes, which a ratio of medians taken minutes apart would carry.
    const speedup = (k: Form, batch = 1): number =>
      median(r[`${k}/${batch}`]!.map((x, i) => x.rate / r[`fp32/${batch}`]![i]!.rate));
    const rates = (k: Form): Record<string, number> => ({
      imgPerS: rate(k),
      speedup: speedup(k),
      imgPerSBatch8: rate(k, 8),
      speedupBatch8: speedup(k, 8),
    });
    const form = async (k: 'dynamic' | 'static'): Promise<Record<string, unknown>> => ({
      ...rates(k),
      loadSeconds: load(k),
      MB: await mb(k),
      quantizeSeconds: q[k].seconds,
      quantize: q[k].said,
    });
    const row = {
      arch,
      size,
      fp32: { imgPerS: rate('fp32'), imgPerSBatch8: rate('fp32', 8), loadSeconds: load('fp32'), MB: await mb('fp32') },
      norms: rates('norms'),
      dynamic: await form('dynamic'),
      static: await form('static'),
    };
    rows.push(row);
    const both = (k: Form): string =>
      `${rate(k).toFixed(2)} img/s (${speedup(k).toFixed(2)}×), batch 8 ${rate(k, 8).toFixed(2)} (${speedup(k, 8).toFixed(2)}×)`;
    const line = (k: 'dynamic' | 'static'): string =>
      `${k} ${both(k)} (load ${load(k).toFixed(2)} s, ${(row[k].MB as number).toFixed(0)} MB; ${q[k].said.at(-1)?.replace(/^agreement on \d+ images: /, '')})`;
    console.log(
      `quantize ${arch} @${size}: pred fp32 ${rate('fp32').toFixed(2)} img/s, batch 8 ${rate('fp32', 8).toFixed(2)} (load ${load('fp32').toFixed(2)} s, ${row.fp32.MB.toFixed(0)} MB); fp32 with the float rewrites alone ${both('norms')}; ${line('dynamic')}; ${line('static')}`,
    );
  }
  const result = { quick: opts.quick, cpu: intFeatures(), images: count, runs, rows };
  console.log(`wrote ${await saveResult('quantize', result)}`);
  return result;
}
