/**
 * Seeded randomness for everything TypeScript decides: data splits, shuffles, label draws,
 * truncation masks and per-step seeds for the worker. Every stream is derived from the run's seed
 * and a purpose, so a resumed run draws exactly what the uninterrupted run would have.
 */

/** splitmix64-style mixing on 53-bit safe integers; good enough for seeds, not for crypto. */
export function deriveSeed(seed: number, ...parts: (string | number)[]): number {
  let h = BigInt(seed) & 0xffffffffffffffffn;
  for (const part of parts) {
    for (const ch of String(part)) h = mix(h ^ BigInt(ch.codePointAt(0)!));
    h = mix(h ^ 0x2fn);
  }
  return Number(h & 0x1fffffffffffffn); // at most 2^53 - 1: the worker's seed limit
}

function mix(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}

/** A small seeded generator (mulberry32) with the draws the algorithm needs. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = deriveSeed(seed, "random") >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** An index drawn with the given (unnormalised, non-negative) weights. */
  categorical(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let u = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u < 0) return i;
    }
    return weights.length - 1;
  }
}

/** 0..n-1 split into a training and a held-out part, stratified so every class is in both. */
export function stratifiedSplit(labels: readonly number[], heldOutFraction: number, random: Random): { train: number[]; heldOut: number[] } {
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => byClass.set(label, [...(byClass.get(label) ?? []), i]));
  const train: number[] = [];
  const heldOut: number[] = [];
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const rows = random.shuffle(byClass.get(label)!);
    const cut = rows.length > 1 ? Math.min(rows.length - 1, Math.max(1, Math.round(rows.length * heldOutFraction))) : 0;
    heldOut.push(...rows.slice(0, cut));
    train.push(...rows.slice(cut));
  }
  return { train: random.shuffle(train), heldOut: heldOut.sort((a, b) => a - b) };
}
