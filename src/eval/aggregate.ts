/**
 * Aggregation of per-document metric values into task and group scores, as lm-eval v0.4.x
 * `lm_eval/api/metrics.py` and `evaluator_utils.py`:
 *  - `mean` with stderr = sample_stddev / sqrt(n) (`mean_stderr`; sample_stddev has the n − 1
 *    denominator);
 *  - `perplexity` = exp(-mean(ll)) with a bootstrap stderr: chunks of min(1000, iters) resamples,
 *    chunk i drawn by `random.Random(seed + i).choices(xs, k=len(xs))` (CPython's MT19937, via
 *    `PyRandom`; lm-eval's seed is 0), stderr = sample_stddev of all resampled values
 *    (`bootstrap_stderr`). lm-eval's default is 100000 iterations; at 1000 the standard error is
 *    noisier by about 1/√(2·1000) ≈ 2%. `bootstrapStderr` takes items of any type, so a corpus
 *    metric (BLEU over sentence pairs) bootstraps the same way;
 *  - stderr is "N/A" for a single item;
 *  - a group's metric = sum(metric_i * size_i) / sum(size_i) over its leaf tasks
 *    (`aggregate_subtask_metrics`, weight_by_size) and its stderr is the pooled
 *    sqrt(sum((n_i - 1) * se_i^2 * n_i) / (sum(n) - k) / sum(n)) (`pooled_sample_stderr`).
 * Sums run left to right like Python's `sum` before 3.12 (3.12 compensates; last-ulp differences).
 * `makeTable` prints results like lm-eval's `make_table` (markdown).
 */
import type { Aggregation } from "./task.js";
import { PyRandom } from "./pyrandom.js";

export type Stderr = number | "N/A";

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const mean = (xs: number[]) => sum(xs) / xs.length;

/** `sample_stddev`: √(Σ(x − mean)² / (n − 1)), sums left to right. */
export function sampleStddev(xs: readonly number[]): number {
  if (xs.length < 2) throw new Error(`sampleStddev: needs at least 2 values, got ${xs.length}`);
  let total = 0;
  for (const x of xs) total += x;
  const mu = total / xs.length;
  let sq = 0;
  for (const x of xs) sq += (x - mu) ** 2;
  return Math.sqrt(sq / (xs.length - 1));
}

/** `mean_stderr`: standard error of the mean of per-item scores. */
export const meanStderr = (xs: readonly number[]) => sampleStddev(xs) / Math.sqrt(xs.length);

export const perplexity = (lls: number[]) => Math.exp(-mean(lls));

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
  if (!Number.isInteger(iters) || iters < 2)
    throw new Error(`bootstrapStderr: iters must be an integer >= 2, got ${iters}`);
  const chunk = Math.min(1000, iters);
  const stats: number[] = [];
  for (let c = 0; c < Math.floor(iters / chunk); c++) {
    const rng = new PyRandom(seed + c);
    for (let i = 0; i < chunk; i++) stats.push(agg(rng.choices(items, items.length)));
  }
  return sampleStddev(stats);
}

const AGGREGATIONS = {
  mean: { value: mean, stderr: (xs: number[], _iters: number) => meanStderr(xs) },
  perplexity: {
    value: perplexity,
    stderr: (xs: number[], iters: number) => bootstrapStderr(xs, perplexity, { iters }),
  },
} satisfies Record<
  Aggregation,
  { value(xs: number[]): number; stderr(xs: number[], iters: number): number }
>;

/** One task metric: its aggregate value and stderr (bootstrapIters 0 → "N/A" for bootstraps). */
export function aggregateMetric(
  aggregation: Aggregation,
  xs: number[],
  bootstrapIters: number,
): { value: number; stderr: Stderr } {
  const agg = AGGREGATIONS[aggregation];
  const stderr = xs.length > 1 && bootstrapIters > 0 ? agg.stderr(xs, bootstrapIters) : "N/A";
  return { value: agg.value(xs), stderr };
}

export function pooledSampleStderr(stderrs: number[], sizes: number[]): number {
  const pooledVar =
    sum(sizes.map((n, i) => (n - 1) * stderrs[i] ** 2 * n)) / (sum(sizes) - sizes.length);
  return Math.sqrt(pooledVar / sum(sizes));
}

/** A group metric over its leaf tasks' values, sizes and stderrs. */
export function aggregateGroup(
  values: number[],
  sizes: number[],
  stderrs: Stderr[],
  weightBySize: boolean,
): { value: number; stderr: Stderr } {
  const w = weightBySize ? sizes : sizes.map(() => 1);
  const value = sum(values.map((v, i) => v * w[i])) / sum(w);
  const stderr = stderrs.includes("N/A") ? "N/A" : pooledSampleStderr(stderrs as number[], sizes);
  return { value, stderr };
}

export interface TableRow {
  name: string;
  version: number | string;
  nShot: number | string;
  metric: string;
  higherIsBetter: boolean;
  value: number;
  stderr: Stderr;
}

/** A markdown table with lm-eval's columns: Tasks, Version, Filter, n-shot, Metric, ↑/↓, Value, ±, Stderr. */
export function makeTable(rows: TableRow[]): string {
  const header = ["Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"];
  let last = "";
  const cells = rows.map((r) => {
    const first = r.name !== last;
    last = r.name;
    return [
      first ? r.name : "",
      first ? String(r.version) : "",
      first ? "none" : "",
      first ? String(r.nShot) : "",
      r.metric,
      r.higherIsBetter ? "↑" : "↓",
      r.value.toFixed(4),
      r.stderr === "N/A" ? "" : "±",
      r.stderr === "N/A" ? "N/A" : r.stderr.toFixed(4),
    ];
  });
  const width = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const right = new Set([6, 8]);
  const line = (row: string[]) =>
    "|" +
    row.map((s, c) => (right.has(c) ? s.padStart(width[c]) : s.padEnd(width[c]))).join("|") +
    "|";
  const rule =
    "|" +
    width.map((w, c) => (right.has(c) ? "-".repeat(w - 1) + ":" : "-".repeat(w))).join("|") +
    "|";
  return [line(header), rule, ...cells.map(line)].join("\n") + "\n";
}
