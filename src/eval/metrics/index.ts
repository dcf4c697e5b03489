/**
 * The registry of generation metrics for scoring the continual tasks' outputs, keyed by the
 * metric names lm-eval and HF `evaluate` use. Each metric's file names the reference it matches;
 * all score on 0–100 (see `metric.ts`).
 */
import { bleu } from "./bleu.js";
import type { GenerationMetric } from "./metric.js";
import { rougeL } from "./rouge.js";
import { sari } from "./sari.js";
import { exactMatch, f1 } from "./squad.js";

export type { GenerationMetric } from "./metric.js";
export { bootstrapStderr, meanStderr, sampleStddev, type BootstrapOptions } from "./stderr.js";

export const generationMetrics = {
  exact_match: exactMatch,
  f1,
  rougeL,
  bleu,
  sari,
} as const satisfies Record<string, GenerationMetric>;

export type GenerationMetricName = keyof typeof generationMetrics;

/** Levenshtein distance, for suggesting a registered name. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The metric registered as `name`, or an error suggesting the closest name. */
export function getGenerationMetric(name: string): GenerationMetric {
  if (Object.hasOwn(generationMetrics, name)) {
    return generationMetrics[name as GenerationMetricName];
  }
  const names = Object.keys(generationMetrics);
  const [closest] = names
    .map((n) => ({ n, d: editDistance(n.toLowerCase(), name.toLowerCase()) }))
    .sort((x, y) => x.d - y.d);
  const hint =
    closest.d <= Math.max(2, Math.floor(name.length / 3)) ? ` Did you mean "${closest.n}"?` : "";
  throw new Error(`unknown generation metric "${name}".${hint} Known: ${names.join(", ")}`);
}
