/**
 * A tiny seeded PRNG for everything in `continual/` that must be reproducible: train/test
 * splits, subsampling, bootstrap resampling. Same seed, same stream, on every platform.
 *
 * Reference: mulberry32 (Tommy Ettinger, public domain), in util/random.ts; good enough for
 * shuffles and bootstrap, not for cryptography.
 */
import { mulberry32 } from "../util/random.js";

/** A stream of floats in [0, 1). */
export type Rng = () => number;

/** mulberry32 seeded with the low 32 bits of `seed` (an integer). */
export function makeRng(seed: number): Rng {
  if (!Number.isInteger(seed)) throw new Error(`makeRng: seed must be an integer, got ${seed}`);
  return mulberry32(seed);
}

/** An integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** A shuffled copy (Fisher–Yates); the input is not modified. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
