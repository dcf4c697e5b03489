/**
 * The seeded pseudo-random generator behind the miniature study's synthetic world.
 *
 * Reference: mulberry32 (Tommy Ettinger, public domain), plus FNV-1a (Fowler–Noll–Vo) of the
 * stream's name to derive independent named streams from one seed (both in util/random.ts). Same
 * seed and stream name give the same sequence on every platform, so generated data is
 * byte-identical. Stream names are ASCII, whose UTF-8 bytes are its UTF-16 code units: the hash
 * is the one this file computed over `charCodeAt` before util/random.ts held it.
 */
import { fnv1a, mulberry32 } from "../util/random.js";

export class Rng {
  /** A float in [0, 1). */
  readonly next: () => number;

  /** `stream` names an independent sequence of the same seed (e.g. "corpus", "eval"). */
  constructor(seed: number, stream = "") {
    if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    // Non-ASCII would hash differently from the code-unit hash the generated data was made with.
    if (!/^[\x20-\x7e]*$/.test(stream))
      throw new Error(`Rng: stream name must be ASCII, got ${stream}`);
    this.next = mulberry32((seed ^ fnv1a(stream)) >>> 0);
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
