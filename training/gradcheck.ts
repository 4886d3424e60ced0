// Finite-difference check of the train graph's gradients: ONNX Runtime (float32) against central
// differences of the float64 reference forward, on a tiny model with random parameters.
import ort from 'onnxruntime-node';
import { Rng } from './rng.js';
import { buildTrainGraph } from './graphs.js';
import { hasDropout, inputOf, io, numel, paramSpecs, type ModelConfig, PARAM } from './params.js';
import { toHalf } from '../src/onnx/half.js';
import { referenceForward, type Batch } from './reference.js';

export const GRADCHECK_TOLERANCE = 2e-3;
/**
 * onnxruntime-node's CUDA EP runs float32 matrix work in TF32 (10-bit mantissa) and offers no switch:
 * measured worst 8e-3 on an H200. A broken set-up gives errors of order 1.
 */
export const GRADCHECK_TOLERANCE_CUDA = 2e-2;

/** A tiny config whose ReLUs stay alive with random parameters, with frozen and trainable convs. */
export function gradcheckConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    widths: [4, 4, 6, 6, 6, 6, 6, 8, 8, 8, 8, 8, 8],
    imageSize: 32,
    hidden: 8,
    tags: 5,
    freeze: 2,
    dropout: 0.3,
    bnMomentum: 0.99,
    bnEpsilon: 0.001,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    ...over,
  };
}

/** Random parameters that keep activations away from zero (positive biases, γ around 1). */
export function randomParams(c: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const s of paramSpecs(c)) {
    const a = new Float32Array(numel(s.shape));
    const u = (lo: number, hi: number): number => lo + (hi - lo) * rng.next();
    for (let i = 0; i < a.length; i++) {
      if (s.name.endsWith('.weight')) a[i] = u(-1, 1) * Math.sqrt(6 / (s.fanIn! + s.fanOut!)) * 1.4;
      else if (s.name.endsWith('.bias')) a[i] = u(0.02, 0.2);
      else if (s.name === PARAM.bnGamma) a[i] = u(0.5, 1.5);
      else if (s.name === PARAM.bnBeta) a[i] = u(-0.2, 0.2);
      else if (s.name === PARAM.bnVar) a[i] = u(0.5, 2);
      else a[i] = u(-0.5, 0.5);
    }
    out.set(s.name, a);
  }
  return out;
}

export function randomBatch(c: ModelConfig, n: number, seed: number): Batch {
  const rng = new Rng(seed);
  const s = c.imageSize;
  // A head's embedding: values of either sign and several scales, as float16 bits.
  const embedding = (d: number): Uint8Array =>
    new Uint8Array(toHalf(Array.from({ length: n * d }, () => (rng.next() * 2 - 1) * 2 ** rng.int(-2, 2))).buffer);
  return {
    n,
    images:
      c.embedding === undefined
        ? Uint8Array.from({ length: n * s * s * 3 }, () => rng.int(0, 255))
        : embedding(c.embedding),
    labels: Uint8Array.from({ length: n * c.tags }, () => (rng.next() < 0.3 ? 1 : 0)),
    keep: Uint8Array.from({ length: n * c.hidden }, () => (rng.next() < 1 - c.dropout ? 1 : 0)),
  };
}

/** Feeds for the train/eval graphs from a batch and parameters. */
export function batchFeeds(
  c: ModelConfig,
  batch: Batch,
  params: Map<string, Float32Array>,
  withKeep: boolean,
): Record<string, ort.Tensor> {
  const x = inputOf(c);
  const b = batch.images;
  const feeds: Record<string, ort.Tensor> = {
    [x.name]:
      x.dtype === 'float16'
        ? new ort.Tensor('float16', new Uint16Array(b.buffer, b.byteOffset, b.length / 2), [batch.n, ...x.dims])
        : new ort.Tensor('uint8', b, [batch.n, ...x.dims]),
    [io.labels]: new ort.Tensor('uint8', batch.labels, [batch.n, c.tags]),
  };
  if (withKeep && hasDropout(c)) feeds[io.keep] = new ort.Tensor('bool', batch.keep!, [batch.n, c.hidden]);
  for (const spec of paramSpecs(c))
    feeds[io.param(spec.name)] = new ort.Tensor('float32', params.get(spec.name)!, spec.shape);
  return feeds;
}

export interface GradcheckRow {
  name: string;
  checked: number;
  maxAbsErr: number;
  maxRelErr: number;
}

export interface GradcheckResult {
  ortLoss: number;
  refLoss: number;
  rows: GradcheckRow[];
  tolerance: number;
  ok: boolean;
}

/**
 * Checks every trainable tensor: all entries of small tensors, otherwise `samples` random entries plus
 * the largest gradient. Relative error |g − fd| / max(|g|, |fd|, 1% of the tensor's largest |fd|).
 */
/**
 * `perturb` names a parameter whose runtime gradient is scaled by 1.5 before the comparison: a wrong
 * gradient on purpose, to show the check fails (doctor reads it from ALT_I2V_GRADCHECK_PERTURB).
 */
export async function gradcheck(
  c: ModelConfig,
  opts: {
    seed?: number;
    n?: number;
    samples?: number;
    h?: number;
    executionProviders?: string[];
    perturb?: string;
  } = {},
): Promise<GradcheckResult> {
  const seed = opts.seed ?? 1;
  const n = opts.n ?? 3;
  const h = opts.h ?? 1e-6; // small enough not to cross ReLU/max-pool kinks (1e-4 does), large for float64 round-off
  const params = randomParams(c, seed);
  const batch = randomBatch(c, n, seed + 1);
  const providers = opts.executionProviders ?? ['cpu'];
  const graph = buildTrainGraph(c, { device: providers.includes('cuda') ? 'cuda' : 'cpu' });
  const session = await ort.InferenceSession.create(graph.encode(), { executionProviders: providers });
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    out = await session.run(batchFeeds(c, batch, params, true));
  } finally {
    await session.release();
  }
  const p64 = new Map<string, Float64Array>([...params].map(([k, v]) => [k, Float64Array.from(v)]));
  const lossAt = (): number => referenceForward(c, p64, batch, 'train').loss;
  const refLoss = lossAt();
  const rng = new Rng(seed + 2);
  const rows: GradcheckRow[] = [];
  for (const spec of paramSpecs(c).filter((s) => s.role === 'trainable')) {
    let g = out[io.grad(spec.name)]!.data as Float32Array;
    if (opts.perturb === spec.name) g = g.map((v) => v * 1.5);
    const p = p64.get(spec.name)!;
    let idx: number[];
    if (g.length <= (opts.samples ?? 12)) idx = [...g.keys()];
    else {
      let best = 0;
      for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[best]!)) best = i;
      idx = [best, ...Array.from({ length: opts.samples ?? 12 }, () => rng.int(0, g.length - 1))];
    }
    const fd = idx.map((i) => {
      const keep = p[i]!;
      p[i] = keep + h;
      const up = lossAt();
      p[i] = keep - h;
      const down = lossAt();
      p[i] = keep;
      return (up - down) / (2 * h);
    });
    const floor = 0.01 * Math.max(...fd.map(Math.abs), 1e-12);
    let maxAbsErr = 0;
    let maxRelErr = 0;
    idx.forEach((i, k) => {
      const diff = Math.abs(g[i]! - fd[k]!);
      maxAbsErr = Math.max(maxAbsErr, diff);
      maxRelErr = Math.max(maxRelErr, diff / Math.max(Math.abs(g[i]!), Math.abs(fd[k]!), floor));
    });
    rows.push({ name: spec.name, checked: idx.length, maxAbsErr, maxRelErr });
  }
  const tolerance = opts.executionProviders?.includes('cuda') ? GRADCHECK_TOLERANCE_CUDA : GRADCHECK_TOLERANCE;
  const ortLoss = (out[io.loss]!.data as Float32Array)[0]!;
  // The loss itself: float32 vs float64 on CPU; TF32 on CUDA moves it by ~1e-4 relative.
  const lossTol = tolerance === GRADCHECK_TOLERANCE ? 1e-5 : 1e-3;
  const lossOk = Math.abs(ortLoss - refLoss) <= lossTol * Math.max(1, Math.abs(refLoss));
  return { ortLoss, refLoss, rows, tolerance, ok: lossOk && rows.every((r) => r.maxRelErr <= tolerance) };
}
