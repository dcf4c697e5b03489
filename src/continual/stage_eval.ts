/**
 * Evaluation of one stage of a run: the general benchmarks in lm-eval's layout with per-item
 * records, and every continual task's generations scored by its metric.
 */
import { join } from "node:path";
import { emptyResults, evaluate, type EvalResults } from "../eval/evaluate.js";
import { ModelLM } from "../eval/model_lm.js";
import { getGenerationMetric } from "../eval/metrics/index.js";
import { getTask as getEvalTask } from "../eval/tasks/index.js";
import { type Benchmark, type Study } from "./config.js";
import { renderPrompt, type InstructionTask } from "./instruction.js";
import type { ItemRecord, MetricScores } from "./results.js";

/** A stage's scores for the event log: each benchmark's primary metric, each task's metric. */
export function primaryScores(
  study: Study,
  general: Omit<EvalResults, "samples">,
  tasks: Record<string, MetricScores>,
): { scores: Record<string, number>; tasks: Record<string, number> } {
  const scores: Record<string, number> = {};
  for (const b of study.benchmarks) {
    const v = general.results[b.name]?.[b.metric];
    if (typeof v === "number") scores[b.name] = v;
  }
  const first = (s: MetricScores) => Object.values(s)[0];
  return {
    scores,
    tasks: Object.fromEntries(Object.entries(tasks).map(([t, s]) => [t, first(s)])),
  };
}

/** The lm-eval layout of every benchmark (no samples) and per-item records of each. */
export async function evaluateGeneral(
  lm: ModelLM,
  study: Study,
): Promise<{ results: Omit<EvalResults, "samples">; items: [string, ItemRecord[]][] }> {
  const c = study.config;
  const merged = emptyResults();
  const items: [string, ItemRecord[]][] = [];
  for (const b of study.benchmarks) {
    const res = await evaluate(lm, [b.name], {
      dataDir: c.benchmarksDir ?? join(c.dataDir, "benchmarks"),
      shots: b.shots,
      limit: b.limit ?? undefined,
      logSamples: true,
    });
    const { samples, ...rest } = res;
    for (const k of Object.keys(merged) as (keyof typeof merged)[])
      Object.assign(merged[k], rest[k]);
    items.push([b.name, benchmarkItems(b, samples ?? {})]);
  }
  return { results: merged, items };
}

/** Per-item records of a benchmark; for a group, ids are `<subtask>/<doc_id>`. */
function benchmarkItems(b: Benchmark, samples: NonNullable<EvalResults["samples"]>): ItemRecord[] {
  const metric = b.metric.split(",")[0];
  const leaves = Object.keys(samples);
  return leaves.flatMap((leaf) => {
    const task = getEvalTask(leaf);
    const higher = task.metrics.find((x) => x.metric === metric)?.higher_is_better ?? true;
    return samples[leaf].map((s) => {
      const value = s[metric];
      if (typeof value !== "number")
        throw new Error(
          `${leaf}: item ${s.doc_id} has no "${metric}" (the primary metric of ${b.name})`,
        );
      const text = task.docToText(s.doc);
      const metrics = Object.fromEntries(
        task.metrics.map((x) => [x.metric, s[x.metric] as number]),
      );
      return {
        doc_id: leaves.length > 1 || leaf !== b.name ? `${leaf}/${s.doc_id}` : String(s.doc_id),
        correct: higher ? value === 1 : value === 0,
        ...(typeof text === "string" ? { text } : {}),
        ...metrics,
      };
    });
  });
}

/** Generates every test prompt of every task and scores it with the task's metric. */
export async function evaluateTasks(
  lm: ModelLM,
  tasks: InstructionTask[],
  until: string[],
): Promise<{ scores: Record<string, MetricScores>; items: [string, ItemRecord[]][] }> {
  const scores: Record<string, MetricScores> = {};
  const items: [string, ItemRecord[]][] = [];
  for (const t of tasks) {
    if (t.test.length === 0) throw new Error(`task "${t.name}": no test examples`);
    const metric = getGenerationMetric(t.metric);
    const predictions = await lm.generateUntil(
      t.test.map((ex) => ({ context: renderPrompt(t.template, ex), until })),
    );
    const refs = t.test.map((ex) => ex.references ?? [ex.output]);
    const sources = metric.needsSources ? t.test.map((ex) => ex.input) : undefined;
    scores[t.name] = { [t.metric]: metric.corpus(predictions, refs, sources) };
    items.push([
      t.name,
      predictions.map((p, i) => {
        const score = metric.sentence(p, refs[i], sources?.[i]);
        return {
          doc_id: String(i),
          correct: score === 100,
          score,
          prediction: p,
          references: refs[i],
        };
      }),
    ]);
  }
  return { scores, items };
}
