/**
 * Forgetting metrics: pure functions of plain arrays (the accuracy matrix, per-benchmark score
 * curves, per-item correctness). Nothing here trains, evaluates or reads files.
 *
 * References (each function names the one it matches):
 * - Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language Models
 *   During Continual Fine-tuning", arXiv 2308.08747: FG per benchmark and per category.
 * - Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning" (GEM): ACC, BWT,
 *   FWT.
 * - Chaudhry et al. 2018, "Riemannian Walk for Incremental Learning" (RWalk): forgetting measure.
 * - Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13: percentile intervals.
 *
 * Conventions used throughout. A run trains N tasks one after the other; stage i = 0 is the base
 * model, stage i ≥ 1 is the model after training on task i. The accuracy matrix R has N + 1 rows
 * and N columns:
 *
 *     R[i][j] = score on task j after stage i     (i = 0..N, j = 0..N-1; task j is trained at
 *                                                  stage j + 1)
 *
 * The formulas below are written with the code's indices. Scores can be in any unit (0–1 or
 * 0–100); differences come out in the same unit.
 */
import { makeRng, randomInt } from "./rng.js";

/** R[i][j]: score on task j after stage i (row 0 = base model). */
export type AccuracyMatrix = readonly (readonly number[])[];

/** Checks that R is (N + 1) × N with N ≥ `minTasks` and finite entries; returns N. */
function taskCount(R: AccuracyMatrix, minTasks = 1): number {
  const n = R.length - 1;
  if (n < minTasks) {
    throw new Error(
      `accuracy matrix: need at least ${minTasks + 1} rows (base + ${minTasks} stages), got ${R.length}`,
    );
  }
  R.forEach((row, i) => {
    if (row.length !== n) {
      throw new Error(
        `accuracy matrix: row ${i} has ${row.length} entries, expected ${n} (one per task)`,
      );
    }
    row.forEach((v, j) => {
      if (!Number.isFinite(v))
        throw new Error(`accuracy matrix: R[${i}][${j}] is not a finite number (${v})`);
    });
  });
  return n;
}

function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("mean of an empty list");
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Average accuracy curve: after each stage i = 1..N, the mean score over the tasks seen so far.
 *
 *     curve[i-1] = (1/i) Σ_{j<i} R[i][j]
 */
export function avgAccCurve(R: AccuracyMatrix): number[] {
  const n = taskCount(R);
  return Array.from({ length: n }, (_, k) => mean(R[k + 1].slice(0, k + 1)));
}

/**
 * Average accuracy (GEM's ACC): mean over all tasks after the last stage.
 *
 *     avgAcc = (1/N) Σ_j R[N][j]
 */
export function avgAcc(R: AccuracyMatrix): number {
  const n = taskCount(R);
  return mean(R[n]);
}

/** Final accuracy: each task's score after the last stage, the row R[N] (a copy). */
export function finalAcc(R: AccuracyMatrix): number[] {
  const n = taskCount(R);
  return R[n].slice();
}

/**
 * Backward transfer (Lopez-Paz & Ranzato 2017): how much later training changed each earlier
 * task, relative to the score just after it was learned. Negative means forgetting.
 *
 *     BWT = 1/(N-1) Σ_{j<N-1} (R[N][j] − R[j+1][j])
 */
export function bwt(R: AccuracyMatrix): number {
  const n = taskCount(R, 2);
  return mean(Array.from({ length: n - 1 }, (_, j) => R[n][j] - R[j + 1][j]));
}

/**
 * Forward transfer (GEM): how much training on earlier tasks helps a task before it is
 * trained, relative to the base model's score b_j = R[0][j] ("relative to the base model",
 * where GEM uses a randomly initialised model).
 *
 *     FWT = 1/(N-1) Σ_{j=1..N-1} (R[j][j] − R[0][j])
 *
 * R[j][j] is the score on task j after stage j, i.e. just before task j is trained.
 */
export function fwt(R: AccuracyMatrix): number {
  const n = taskCount(R, 2);
  return mean(Array.from({ length: n - 1 }, (_, k) => R[k + 1][k + 1] - R[0][k + 1]));
}

/**
 * Maximum forgetting (Chaudhry et al. 2018): for each task but the last, the drop from its best
 * score at any stage before the last to its final score; averaged. Positive means forgetting.
 *
 *     forgetting = 1/(N-1) Σ_{j<N-1} ( max_{l = j+1..N-1} R[l][j] − R[N][j] )
 */
export function forgetting(R: AccuracyMatrix): number {
  const n = taskCount(R, 2);
  return mean(
    Array.from({ length: n - 1 }, (_, j) => {
      let best = -Infinity;
      for (let l = j + 1; l <= n - 1; l++) best = Math.max(best, R[l][j]);
      return best - R[n][j];
    }),
  );
}

/**
 * Plasticity, or learning accuracy: the mean score on each task right after training on it.
 *
 *     plasticity = (1/N) Σ_j R[j+1][j]
 */
export function plasticity(R: AccuracyMatrix): number {
  const n = taskCount(R);
  return mean(Array.from({ length: n }, (_, j) => R[j + 1][j]));
}

/**
 * Luo et al. 2023 forgetting of one general benchmark, in percent: `scores[m]` is the benchmark
 * score after stage m (m = 0 is the starting model, R_0), and
 *
 *     FG = (1/N) Σ_{m=1..N} (R_0 − R_m) / R_0 × 100
 *
 * Positive means the score went down. For an accuracy that is forgetting. For CrowS-Pairs the
 * score is lm-eval's `pct_stereotype` (share of pairs where the model prefers the stereotyped
 * sentence; lower is less biased), so the same formula gives positive = less bias, as in Luo et
 * al.'s bias table. We do not fold the score around 50 %: a drop below 50 still counts as less bias.
 */
export function fgBenchmark(scores: readonly number[]): number {
  if (scores.length < 2) {
    throw new Error(
      `FG: need the starting score and at least one stage, got ${scores.length} scores`,
    );
  }
  scores.forEach((v, m) => {
    if (!Number.isFinite(v))
      throw new Error(`FG: score at stage ${m} is not a finite number (${v})`);
  });
  const r0 = scores[0];
  if (r0 === 0) throw new Error("FG: the starting score R_0 is 0, the relative drop is undefined");
  return mean(scores.slice(1).map((rm) => ((r0 - rm) / r0) * 100));
}

/** One general benchmark's scores at stages 0..N and the category it is averaged in. */
export interface BenchmarkCurve {
  benchmark: string;
  category: string;
  scores: readonly number[];
}

/**
 * Luo et al. 2023 FG per category: the mean of `fgBenchmark` over the benchmarks in the category
 * (e.g. "domain knowledge", "reasoning", "reading comprehension", "bias").
 *
 *     FG_category = (1/|C|) Σ_{b ∈ C} FG_b
 *
 * Returns per-benchmark and per-category values, categories in first-seen order.
 */
export function fgByCategory(curves: readonly BenchmarkCurve[]): {
  perBenchmark: Record<string, number>;
  perCategory: Record<string, number>;
} {
  const perBenchmark: Record<string, number> = {};
  const byCategory = new Map<string, number[]>();
  const stages = curves[0]?.scores.length;
  for (const c of curves) {
    if (c.benchmark in perBenchmark)
      throw new Error(`FG: benchmark "${c.benchmark}" is listed twice`);
    if (c.scores.length !== stages) {
      throw new Error(
        `FG: benchmark "${c.benchmark}" has ${c.scores.length} stage scores, the first has ${stages}`,
      );
    }
    const fg = fgBenchmark(c.scores);
    perBenchmark[c.benchmark] = fg;
    byCategory.set(c.category, [...(byCategory.get(c.category) ?? []), fg]);
  }
  const perCategory: Record<string, number> = {};
  for (const [cat, fgs] of byCategory) perCategory[cat] = mean(fgs);
  return { perBenchmark, perCategory };
}

/**
 * FG of one benchmark from item-level scores: `itemScores[k][m]` is item k's score (1/0 for
 * accuracy, or any per-item value whose mean is the benchmark score) at stage m. The benchmark
 * score at stage m is the mean over items; FG is then `fgBenchmark` of those means. This is the
 * statistic the item bootstrap resamples.
 */
export function fgFromItems(itemScores: readonly (readonly number[])[]): number {
  if (itemScores.length === 0) throw new Error("FG from items: no items");
  const stages = itemScores[0].length;
  itemScores.forEach((row, k) => {
    if (row.length !== stages)
      throw new Error(`FG from items: item ${k} has ${row.length} stages, item 0 has ${stages}`);
  });
  const means = Array.from({ length: stages }, (_, m) => mean(itemScores.map((row) => row[m])));
  return fgBenchmark(means);
}

export interface BootstrapOptions {
  /** Number of resamples. @default 1000 */
  iters?: number;
  /** Two-sided miss rate: the interval covers 1 − alpha. @default 0.05 */
  alpha?: number;
  /** Seed of the PRNG (rng.ts), so the interval is reproducible. @default 0 */
  seed?: number;
}

export interface ConfidenceInterval {
  /** The statistic on the original sample. */
  estimate: number;
  lo: number;
  hi: number;
}

/** Quantile with linear interpolation between order statistics (Hyndman & Fan type 7, numpy's default). */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Percentile bootstrap confidence interval (Efron & Tibshirani 1993, §13.3). Draws `iters`
 * samples of `items.length` items with replacement, computes `stat` on each, and returns the
 * alpha/2 and 1 − alpha/2 quantiles of those values (type-7 interpolation).
 *
 * `items` is what gets resampled:
 * - over items: the rows of an item matrix, e.g. `bootstrapCI(itemScores, fgFromItems)` for a CI
 *   on one benchmark's FG;
 * - over seeds: one number per seed, e.g. `bootstrapCI(fgPerSeed, xs => mean)`.
 */
export function bootstrapCI<T>(
  items: readonly T[],
  stat: (sample: readonly T[]) => number,
  options: BootstrapOptions = {},
): ConfidenceInterval {
  const { iters = 1000, alpha = 0.05, seed = 0 } = options;
  if (items.length === 0) throw new Error("bootstrap: no items to resample");
  if (!Number.isInteger(iters) || iters < 1)
    throw new Error(`bootstrap: iters must be a positive integer, got ${iters}`);
  if (!(alpha > 0 && alpha < 1))
    throw new Error(`bootstrap: alpha must be in (0, 1), got ${alpha}`);
  const rng = makeRng(seed);
  const stats: number[] = [];
  for (let b = 0; b < iters; b++) {
    const sample = Array.from({ length: items.length }, () => items[randomInt(rng, items.length)]);
    stats.push(stat(sample));
  }
  stats.sort((a, b) => a - b);
  return {
    estimate: stat(items),
    lo: quantile(stats, alpha / 2),
    hi: quantile(stats, 1 - alpha / 2),
  };
}

/** Item flips at one stage, relative to the base model (stage 0). Items are indices. */
export interface StageFlips {
  stage: number;
  /** Right at stage 0, wrong at this stage. */
  forgotten: number[];
  /** Wrong at stage 0, right at this stage. */
  learned: number[];
}

/**
 * Item-level flips per stage: `correct[m][k]` says whether item k was answered right at stage m
 * (m = 0 is the base model). For each stage m = 1..N, lists the items that went right → wrong
 * (forgotten) and wrong → right (learned) relative to stage 0; counts are the list lengths.
 */
export function itemFlips(correct: readonly (readonly boolean[])[]): StageFlips[] {
  if (correct.length < 2)
    throw new Error(`item flips: need stage 0 and at least one stage, got ${correct.length}`);
  const base = correct[0];
  return correct.slice(1).map((row, k) => {
    const stage = k + 1;
    if (row.length !== base.length) {
      throw new Error(
        `item flips: stage ${stage} has ${row.length} items, stage 0 has ${base.length}`,
      );
    }
    const forgotten: number[] = [];
    const learned: number[] = [];
    row.forEach((ok, item) => {
      if (base[item] && !ok) forgotten.push(item);
      if (!base[item] && ok) learned.push(item);
    });
    return { stage, forgotten, learned };
  });
}
