/**
 * The registry of generation metrics for scoring the continual tasks' outputs, keyed by the
 * metric names lm-eval and HF `evaluate` use. Each metric's file names the reference it matches;
 * all score on 0–100 (see `metric.ts`).
 */
import { accuracy } from "./accuracy.js";
import { bleu } from "./bleu.js";
import type { GenerationMetric } from "./metric.js";
import { rouge1, rougeL } from "./rouge.js";
import { sari } from "./sari.js";
import { exactMatch, f1 } from "./squad.js";
import { lookup } from "../../util/suggest.js";

export type { GenerationMetric } from "./metric.js";

export const generationMetrics = {
  exact_match: exactMatch,
  f1,
  rouge1,
  rougeL,
  bleu,
  sari,
  accuracy,
} as const satisfies Record<string, GenerationMetric>;

/** The metric registered as `name`, or an error suggesting the closest name. */
export function getGenerationMetric(name: string): GenerationMetric {
  return lookup(generationMetrics, name, "generation metric");
}
