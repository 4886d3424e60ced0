// A plain float64 forward pass of the model, written independently of the ONNX graphs: the reference
// that gradient checks differentiate by central finite differences. Slow; meant for tiny configs.
import { fromHalf } from '../src/onnx/half.js';
import { POOL_AFTER, featureCount, type ModelConfig, PARAM } from './params.js';

export interface Batch {
  n: number;
  /** uint8 (N, S, S, 3) RGB; for a head over an embedding, its float16 (N, D) bits as bytes */
  images: Uint8Array;
  /** uint8 (N, K) in {0, 1} */
  labels: Uint8Array;
  /** bool as uint8 (N, D): dropout keep mask (ignored when dropout = 0 or in eval mode) */
  keep?: Uint8Array;
}

type Params = Map<string, Float64Array | Float32Array>;

function get(p: Params, name: string): Float64Array | Float32Array {
  const v = p.get(name);
  if (!v) throw new Error(`reference: missing parameter ${name}`);
  return v;
}

/** (N, Ci, H, W) conv 3×3 pad 1 → (N, Co, H, W) */
export function conv3x3(
  x: Float64Array,
  n: number,
  ci: number,
  h: number,
  w: number,
  wt: ArrayLike<number>,
  b: ArrayLike<number>,
  co: number,
): Float64Array {
  const y = new Float64Array(n * co * h * w);
  for (let b0 = 0; b0 < n; b0++) {
    for (let o = 0; o < co; o++) {
      const yo = (b0 * co + o) * h * w;
      for (let i = 0; i < h * w; i++) y[yo + i] = b[o]!;
      for (let c = 0; c < ci; c++) {
        const xc = (b0 * ci + c) * h * w;
        for (let kh = 0; kh < 3; kh++) {
          for (let kw = 0; kw < 3; kw++) {
            const k = wt[((o * ci + c) * 3 + kh) * 3 + kw]!;
            for (let yy = 0; yy < h; yy++) {
              const sy = yy + kh - 1;
              if (sy < 0 || sy >= h) continue;
              for (let xx = 0; xx < w; xx++) {
                const sx = xx + kw - 1;
                if (sx < 0 || sx >= w) continue;
                y[yo + yy * w + xx]! += k * x[xc + sy * w + sx]!;
              }
            }
          }
        }
      }
    }
  }
  return y;
}

export function relu(x: Float64Array): Float64Array {
  return x.map((v) => (v > 0 ? v : 0));
}

/** (N, C, H, W) → (N, C, H/2, W/2) */
export function maxpool2(x: Float64Array, n: number, c: number, h: number, w: number): Float64Array {
  const h2 = h >> 1;
  const w2 = w >> 1;
  const y = new Float64Array(n * c * h2 * w2);
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < h2; i++) {
      for (let j = 0; j < w2; j++) {
        const at = (di: number, dj: number): number => x[p * h * w + (2 * i + di) * w + 2 * j + dj]!;
        y[p * h2 * w2 + i * w2 + j] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
      }
    }
  }
  return y;
}

/** Training-mode batch norm over (N, F): batch mean and biased variance. */
export function batchnorm(
  x: Float64Array,
  n: number,
  f: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  eps: number,
  running?: { mean: ArrayLike<number>; var: ArrayLike<number> },
): Float64Array {
  const y = new Float64Array(n * f);
  for (let j = 0; j < f; j++) {
    let mean = 0;
    let v = 0;
    if (running) {
      mean = running.mean[j]!;
      v = running.var[j]!;
    } else {
      for (let i = 0; i < n; i++) mean += x[i * f + j]!;
      mean /= n;
      for (let i = 0; i < n; i++) v += (x[i * f + j]! - mean) ** 2;
      v /= n;
    }
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++) y[i * f + j] = (x[i * f + j]! - mean) * inv * gamma[j]! + beta[j]!;
  }
  return y;
}

/** (N, I) · (I, O) + (O) */
export function dense(
  x: Float64Array,
  n: number,
  i: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  o: number,
): Float64Array {
  const y = new Float64Array(n * o);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < o; k++) {
      let s = b[k]!;
      for (let j = 0; j < i; j++) s += x[r * i + j]! * w[j * o + k]!;
      y[r * o + k] = s;
    }
  }
  return y;
}

export function bce(z: Float64Array, y: ArrayLike<number>, posWeight?: readonly number[]): number {
  let s = 0;
  const k = posWeight?.length ?? 1;
  for (let i = 0; i < z.length; i++) {
    const v = z[i]!;
    // −[w·y·log σ(v) + (1 − y)·log(1 − σ(v))], log σ(v) = −log1p(e^−v), log(1 − σ(v)) = −log1p(e^v)
    const w = posWeight ? posWeight[i % k]! : 1;
    const logSig = -(Math.max(-v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
    const log1mSig = -(Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
    s -= w * y[i]! * logSig + (1 - y[i]!) * log1mSig;
  }
  return s / z.length;
}

export interface ReferenceOutput {
  loss: number;
  logits: Float64Array;
  features: Float64Array;
}

/** The flattened conv-stack output (N, F) in float64: what batch norm normalizes. */
export function referenceConvFeatures(c: ModelConfig, p: Params, batch: Pick<Batch, 'n' | 'images'>): Float64Array {
  const { n } = batch;
  const s = c.imageSize;
  let h = s;
  let ch = 3;
  let x: Float64Array = new Float64Array(n * 3 * s * s);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < s * s; i++)
        x[(b * 3 + k) * s * s + i] = (batch.images[(b * s * s + i) * 3 + k]! / 255 - c.mean[k]!) / c.std[k]!;
    }
  }
  for (let i = 0; i < 13; i++) {
    const co = c.widths[i]!;
    x = relu(conv3x3(x, n, ch, h, h, get(p, PARAM.convWeight(i)), get(p, PARAM.convBias(i)), co));
    ch = co;
    if (POOL_AFTER.has(i)) {
      x = maxpool2(x, n, ch, h, h);
      h >>= 1;
    }
  }
  return x;
}

/** The model's forward pass in float64; `train` uses batch statistics and the dropout mask. */
export function referenceForward(c: ModelConfig, p: Params, batch: Batch, mode: 'train' | 'eval'): ReferenceOutput {
  const { n } = batch;
  const f = featureCount(c);
  const x =
    c.embedding === undefined
      ? referenceConvFeatures(c, p, batch)
      : Float64Array.from(fromHalf(new Uint16Array(batch.images.buffer, batch.images.byteOffset, n * f)));
  if (c.hidden === 0) {
    const logits = dense(x, n, f, get(p, PARAM.fc2Weight), get(p, PARAM.fc2Bias), c.tags);
    return { loss: bce(logits, batch.labels, mode === 'train' ? c.posWeight : undefined), logits, features: x };
  }
  const running = mode === 'eval' ? { mean: get(p, PARAM.bnMean), var: get(p, PARAM.bnVar) } : undefined;
  const y = batchnorm(x, n, f, get(p, PARAM.bnGamma), get(p, PARAM.bnBeta), c.bnEpsilon, running);
  const features = relu(dense(y, n, f, get(p, PARAM.fc1Weight), get(p, PARAM.fc1Bias), c.hidden));
  let hd = features;
  if (mode === 'train' && c.dropout > 0) {
    const keep = batch.keep;
    if (!keep) throw new Error('reference: dropout needs a keep mask');
    hd = features.map((v, i) => (keep[i] ? v / (1 - c.dropout) : 0));
  }
  const logits = dense(hd, n, c.hidden, get(p, PARAM.fc2Weight), get(p, PARAM.fc2Bias), c.tags);
  return { loss: bce(logits, batch.labels, mode === 'train' ? c.posWeight : undefined), logits, features };
}
