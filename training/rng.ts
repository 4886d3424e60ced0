// Seeded pseudo-random numbers (sfc32, seeded through splitmix32): the same seed gives the same
// sequence on every platform, which synth, holdout splits and shuffles rely on.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** The generator's state, to save in a checkpoint. */
  state(): number[] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || !state.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) {
      throw new RangeError(`Expected 4 uint32 values for an RNG state but received [${state.join(', ')}]`);
    }
    const r = new Rng(0);
    [r.a, r.b, r.c, r.d] = state as [number, number, number, number];
    return r;
  }

  uint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /**
   * out[i] = next() < rate ? 0 : 1 for every i, drawing exactly what that loop draws, with the state in
   * locals, int32 arithmetic and no branch (≈ 5× that loop: dropout masks of 64 × 5000 per step).
   */
  fillKeep(out: Uint8Array, rate: number): Uint8Array {
    // next() < rate ⇔ u / 2³² < rate ⇔ u < rate · 2³² (scaling by a power of two is exact) ⇔
    // u < ⌈rate · 2³²⌉ for an integer u; compared as signed int32 with both sides shifted by 2³¹.
    const cut = Math.ceil(Math.min(Math.max(rate, 0), 1) * 4294967296);
    const all = cut === 4294967296;
    const bias = (cut - 2147483648) | 0;
    let a = this.a | 0;
    let b = this.b | 0;
    let c = this.c | 0;
    let d = this.d | 0;
    const n = out.length;
    for (let i = 0; i < n; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      out[i] = +((t ^ -2147483648) >= bias); // branch-free: the draws are random
    }
    if (all) out.fill(0);
    this.a = a >>> 0;
    this.b = b >>> 0;
    this.c = c >>> 0;
    this.d = d >>> 0;
    return out;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Index drawn with probability proportional to weights[i]. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
