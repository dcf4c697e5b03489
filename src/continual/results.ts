/**
 * The layout of a run's `results.json` (format "lethe-results", version 2): what the study runner
 * writes after every stage and what the report, `lethe compare` and users' scripts read.
 * Stage 0 is the starting model; stages 1..N follow the task sequence. It is a function of the
 * run's stage files only, so a run interrupted and resumed writes the same bytes as one that was
 * not; wall-clock timings live beside it in `timings.json`. Version 1 also had `stages[].seconds`.
 */
export const RESULTS_FORMAT = { name: "lethe-results", version: 2 } as const;

/** Scores of one benchmark or task at one stage: metric name → value (lm-eval metric names). */
export type MetricScores = Record<string, number>;

export interface StageResult {
  /** 0 = base model, m = after training on the m-th task. */
  stage: number;
  /** The task trained in this stage (null for stage 0). */
  task: string | null;
  /** General-suite benchmarks (lm-eval task names, e.g. "mmlu", "piqa", "crows_pairs_english"). */
  general: Record<string, MetricScores>;
  /** Continual tasks (seen and still to come): their generation metric or log-likelihood score. */
  tasks: Record<string, MetricScores>;
}

export interface RunResults {
  format: typeof RESULTS_FORMAT;
  run: { name: string; model: string; method: string; order: string[]; seed: number };
  /**
   * Stages with results so far (the runner rewrites results.json after every stage) out of
   * 1 + tasks. Until the run is complete, every metric below is computed as if the order ended
   * at the last trained task; one that needs more tasks than that is NaN (null in the file).
   */
  progress?: { stagesDone: number; totalStages: number };
  /** Benchmark → category (the paper's: domain_knowledge, reasoning, reading_comprehension, bias). */
  categories: Record<string, string>;
  /** Which metric of each benchmark FG and the matrix use (e.g. "acc,none", "pct_stereotype,none"). */
  primaryMetric: Record<string, string>;
  stages: StageResult[];
  /** FG per category and per benchmark (Luo et al.), with bootstrap CIs over items where known. */
  fg: {
    perCategory: Record<string, number>;
    perBenchmark: Record<string, number>;
    ci?: Record<string, [number, number]>;
  };
  /** R[stage][task] over the continual tasks, stage 0 = base. */
  matrix: number[][];
  avg_acc: number;
  final_acc: number[];
  bwt: number;
  fwt: number;
  forgetting: number;
  plasticity: number;
  /** Per benchmark, per stage: the primary score (for curves). */
  curves: Record<string, number[]>;
  /** Per benchmark: item ids right at stage 0 and wrong at stage m, per stage m. */
  flips?: Record<string, { stage: number; forgotten: string[]; learned: string[] }[]>;
}
