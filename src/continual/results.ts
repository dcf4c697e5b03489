/**
 * The layout of a run's `results.json` (format "lethe-results", version 2): what the study runner
 * writes after every stage and what the report, `lethe compare` and users' scripts read.
 * Stage 0 is the starting model; stages 1..N follow the task sequence. It is a function of the
 * run's stage files only, so a run interrupted and resumed writes the same bytes as one that was
 * not; wall-clock timings live beside it in `timings.json`. Version 1 also had `stages[].seconds`.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type EvalResults } from "../eval/evaluate.js";
import type { RunSpec, Study } from "./config.js";
import {
  avgAcc,
  bootstrapCI,
  bwt,
  fgByCategory,
  fgFromItems,
  finalAcc,
  forgetting,
  fwt,
  itemFlips,
  plasticity,
} from "./metrics.js";
import { writeAtomic } from "../util/fs.js";
export const RESULTS_FORMAT = { name: "lethe-results", version: 2 } as const;

/** Scores of one benchmark or task at one stage: metric name → value (lm-eval metric names). */
export type MetricScores = Record<string, number>;

/** One evaluated item, as written to `stages/<m>/items/<name>.jsonl`. */
export interface ItemRecord {
  doc_id: string;
  correct: boolean;
  [field: string]: unknown;
}

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

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
const json = (v: unknown) => JSON.stringify(v, null, 1) + "\n";

/** Number of consecutive stages, from 0, whose tasks.json exists. */
export function stagesDone(dir: string, total: number): number {
  let m = 0;
  while (m < total && existsSync(join(dir, "stages", String(m), "tasks.json"))) m++;
  return m;
}

/** A function of the stage files on disk only, so a resumed run writes the same bytes. */
export function buildResults(dir: string, study: Study, spec: RunSpec): RunResults {
  const order = spec.order.tasks;
  const total = order.length + 1;
  const done = stagesDone(dir, total);
  const stages: RunResults["stages"] = [];
  const items = new Map<string, ItemRecord[][]>(); // benchmark → per stage
  for (let m = 0; m < done; m++) {
    const s = join(dir, "stages", String(m));
    const general = readJson<EvalResults>(join(s, "general.json"));
    const tasks = readJson<Record<string, MetricScores>>(join(s, "tasks.json"));
    const scores: Record<string, MetricScores> = {};
    for (const b of study.benchmarks) {
      const rec = general.results[b.name];
      scores[b.name] = Object.fromEntries(
        Object.entries(rec).filter(
          (e): e is [string, number] => typeof e[1] === "number" && !e[0].includes("_stderr"),
        ),
      );
      const lines = readFileSync(join(s, "items", `${b.name}.jsonl`), "utf8").split("\n");
      const recs = lines.filter((l) => l !== "").map((l) => JSON.parse(l) as ItemRecord);
      items.set(b.name, [...(items.get(b.name) ?? []), recs]);
    }
    stages.push({ stage: m, task: m === 0 ? null : order[m - 1], general: scores, tasks });
  }

  const curves: Record<string, number[]> = {};
  for (const b of study.benchmarks) curves[b.name] = stages.map((s) => s.general[b.name][b.metric]);
  const fgCurves = study.benchmarks.filter((b) => curves[b.name][0] !== 0);
  const fg: RunResults["fg"] =
    done >= 2
      ? fgByCategory(
          fgCurves.map((b) => ({
            benchmark: b.name,
            category: b.category,
            scores: curves[b.name],
          })),
        )
      : { perBenchmark: {}, perCategory: {} };
  const iters = study.config.eval.bootstrapIters;
  if (done >= 2 && iters > 0) {
    fg.ci = {};
    for (const b of fgCurves) {
      const metric = b.metric.split(",")[0];
      const perStage = items.get(b.name)!;
      const rows = perStage[0].map((_, k) => perStage.map((st) => st[k][metric] as number));
      const stat = (sample: readonly number[][]) => {
        const base = sample.reduce((a, r) => a + r[0], 0);
        return base === 0 ? NaN : fgFromItems(sample);
      };
      const ci = bootstrapCI(rows, stat, { iters, seed: 0 });
      if (Number.isFinite(ci.lo) && Number.isFinite(ci.hi)) fg.ci[b.name] = [ci.lo, ci.hi];
    }
  }

  const matrix = stages.map((s) =>
    order.map((t) => {
      const v = Object.values(s.tasks[t]);
      return v[0];
    }),
  );
  const k = done - 1; // tasks trained so far: metrics as if the order ended here
  const sub = matrix.slice(0, k + 1).map((row) => row.slice(0, k));
  const when = (need: number, f: () => number) => (k >= need ? f() : NaN);
  const flips: NonNullable<RunResults["flips"]> = {};
  // Flips need a stage after the base model.
  if (done >= 2)
    for (const b of study.benchmarks) {
      const perStage = items.get(b.name)!;
      flips[b.name] = itemFlips(perStage.map((st) => st.map((r) => r.correct))).map((f) => ({
        stage: f.stage,
        forgotten: f.forgotten.map((i) => perStage[0][i].doc_id),
        learned: f.learned.map((i) => perStage[0][i].doc_id),
      }));
    }
  return {
    format: RESULTS_FORMAT,
    run: {
      name: spec.name,
      model: spec.model.name,
      method: spec.method.label,
      order,
      seed: spec.seed,
    },
    progress: { stagesDone: done, totalStages: total },
    categories: Object.fromEntries(study.benchmarks.map((b) => [b.name, b.category])),
    primaryMetric: Object.fromEntries(study.benchmarks.map((b) => [b.name, b.metric])),
    stages,
    fg,
    matrix,
    avg_acc: when(1, () => avgAcc(sub)),
    final_acc: k >= 1 ? finalAcc(sub) : [],
    bwt: when(2, () => bwt(sub)),
    fwt: when(2, () => fwt(sub)),
    forgetting: when(2, () => forgetting(sub)),
    plasticity: when(1, () => plasticity(sub)),
    curves,
    flips,
  };
}

export function writeResults(dir: string, study: Study, spec: RunSpec): void {
  writeAtomic(join(dir, "results.json"), json(buildResults(dir, study, spec)));
}
