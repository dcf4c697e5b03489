/**
 * The seeded pseudo-random generator behind the miniature study's synthetic world.
 *
 * Reference: mulberry32 (Tommy Ettinger, public domain), a 32-bit state generator with period
 * 2^32, plus FNV-1a (Fowler–Noll–Vo) to derive independent named streams from one seed. Same seed
 * and stream name give the same sequence on every platform, so generated data is byte-identical.
 */

/** FNV-1a 32-bit hash of a string, used to name independent streams of one seed. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class Rng {
  private state: number;

  /** `stream` names an independent sequence of the same seed (e.g. "corpus", "eval"). */
  constructor(seed: number, stream = "") {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    this.state = (seed ^ fnv1a(stream)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("Rng.pick: empty list");
    return xs[this.int(xs.length)];
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** `k` distinct elements, in random order. */
  sample<T>(xs: readonly T[], k: number): T[] {
    if (k > xs.length) throw new Error(`Rng.sample: asked for ${k} of ${xs.length}`);
    return this.shuffle(xs).slice(0, k);
  }
}
