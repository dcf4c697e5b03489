/**
 * Standard errors of aggregated scores, as lm-eval reports them (lm-evaluation-harness
 * `lm_eval/api/metrics.py`, v0.4.x: `sample_stddev`, `mean_stderr`, `bootstrap_stderr`).
 * `meanStderr` is the closed form lm-eval uses for `mean` (acc, exact_match...): sample standard
 * deviation (n − 1 denominator) over √n. `bootstrapStderr` is lm-eval's bootstrap for any other
 * aggregate (corpus BLEU...): `iters` resamples with replacement drawn in chunks of
 * min(1000, iters) by `random.Random(seed + chunk).choices(items, k=n)` (CPython's MT19937, via
 * `PyRandom`), the aggregate of each resample, and the sample standard deviation of those. With
 * `seed` 0 and the same `iters` it reproduces lm-eval's numbers; lm-eval's default is 100000
 * iterations, ours 1000 (its standard error is then noisier by about 1/√(2·1000) ≈ 2%).
 */
import { PyRandom } from "../pyrandom.js";

/** `sample_stddev`: √(Σ(x − mean)² / (n − 1)). */
export function sampleStddev(xs: readonly number[]): number {
  if (xs.length < 2) throw new Error(`sampleStddev: needs at least 2 values, got ${xs.length}`);
  let sum = 0;
  for (const x of xs) sum += x;
  const mu = sum / xs.length;
  let sq = 0;
  for (const x of xs) sq += (x - mu) ** 2;
  return Math.sqrt(sq / (xs.length - 1));
}

/** `mean_stderr`: standard error of the mean of per-item scores. */
export function meanStderr(values: readonly number[]): number {
  return sampleStddev(values) / Math.sqrt(values.length);
}

export interface BootstrapOptions {
  /** Number of resamples. @default 1000 */
  iters?: number;
  /** Seed of the first chunk of 1000 resamples; chunk k uses seed + k. @default 0 (lm-eval's) */
  seed?: number;
}

/** `bootstrap_stderr(agg, items, iters)`: bootstrap standard error of `agg(items)`. */
export function bootstrapStderr<T>(
  items: readonly T[],
  agg: (xs: T[]) => number,
  { iters = 1000, seed = 0 }: BootstrapOptions = {},
): number {
  if (items.length === 0) throw new Error("bootstrapStderr: no items");
  if (!Number.isInteger(iters) || iters < 2) {
    throw new Error(`bootstrapStderr: iters must be an integer >= 2, got ${iters}`);
  }
  const chunk = Math.min(1000, iters);
  const stats: number[] = [];
  for (let c = 0; c < Math.floor(iters / chunk); c++) {
    const rng = new PyRandom(seed + c);
    for (let i = 0; i < chunk; i++) stats.push(agg(rng.choices(items, items.length)));
  }
  return sampleStddev(stats);
}
