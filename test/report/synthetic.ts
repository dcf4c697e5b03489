/**
 * Synthetic study directories for the report tests: plausible results.json, run-card.json and
 * stages/<m>/items/ files in the layout of src/continual/results.ts, made from a seeded PRNG. Scores decay
 * with a per-model forgetting rate, and FG is computed from the curves with the real
 * `fgByCategory`, so tables and findings see internally consistent numbers.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  fgByCategory,
  avgAcc,
  bwt,
  finalAcc,
  forgetting,
  fwt,
  plasticity,
} from "../../src/continual/metrics.js";
import { RESULTS_FORMAT, type RunResults } from "../../src/continual/results.js";
import { makeRng, type Rng } from "../../src/continual/rng.js";

export interface SynthModel {
  name: string;
  params: number;
  architecture: "decoder-only" | "encoder-decoder";
  family: string;
  base?: string;
  /** Fraction of the starting score lost by the last stage under full fine-tuning. */
  rate: number;
}

export const STUDY_MODELS: SynthModel[] = [
  {
    name: "bloomz-560m",
    params: 5.6e8,
    architecture: "decoder-only",
    family: "bloomz",
    rate: 0.06,
  },
  { name: "bloomz-1b1", params: 1.1e9, architecture: "decoder-only", family: "bloomz", rate: 0.1 },
  { name: "bloomz-3b", params: 3e9, architecture: "decoder-only", family: "bloomz", rate: 0.15 },
  { name: "mt0-base", params: 5.8e8, architecture: "encoder-decoder", family: "mt0", rate: 0.12 },
  { name: "mt0-large", params: 1.2e9, architecture: "encoder-decoder", family: "mt0", rate: 0.17 },
  { name: "mt0-xl", params: 3.7e9, architecture: "encoder-decoder", family: "mt0", rate: 0.22 },
  { name: "llama-7b", params: 6.7e9, architecture: "decoder-only", family: "llama", rate: 0.16 },
  {
    name: "alpaca-7b",
    params: 6.7e9,
    architecture: "decoder-only",
    family: "llama",
    base: "llama-7b",
    rate: 0.09,
  },
];

const CATEGORIES: Record<string, string> = {
  mmlu: "domain_knowledge",
  piqa: "reasoning",
  hellaswag: "reasoning",
  arc_easy: "reasoning",
  race: "reading_comprehension",
  boolq: "reading_comprehension",
  crows_pairs_english_gender: "bias",
  crows_pairs_english_race_color: "bias",
  crows_pairs_english_age: "bias",
};
const BASE_SCORE: Record<string, number> = {
  mmlu: 0.31,
  piqa: 0.7,
  hellaswag: 0.46,
  arc_easy: 0.58,
  race: 0.36,
  boolq: 0.63,
};
const TASKS = ["gigaword", "esnli", "covid_qa", "haiku"];

/** A valid RunResults whose FG per category is given (other fields plausible, not derived). */
export function resultsWithFg(
  run: { model: string; method: string; seed: number },
  perCategory: Record<string, number>,
  ci?: Record<string, [number, number]>,
): RunResults {
  const matrix = [
    [0.2, 0.2],
    [0.6, 0.25],
    [0.5, 0.7],
  ];
  return {
    format: RESULTS_FORMAT,
    run: { name: `${run.model}-${run.method}-s${run.seed}`, ...run, order: ["a", "b"] },
    categories: {},
    primaryMetric: {},
    stages: [0, 1, 2].map((s) => ({
      stage: s,
      task: s ? ["a", "b"][s - 1] : null,
      general: {},
      tasks: {},
      seconds: { train: 0, eval: 0 },
    })),
    fg: { perCategory, perBenchmark: {}, ...(ci ? { ci } : {}) },
    matrix,
    avg_acc: avgAcc(matrix),
    final_acc: finalAcc(matrix),
    bwt: bwt(matrix),
    fwt: fwt(matrix),
    forgetting: forgetting(matrix),
    plasticity: plasticity(matrix),
    curves: {},
  };
}

const noise = (rng: Rng, scale: number) => (rng() - 0.5) * 2 * scale;

function runResults(m: SynthModel, method: string, seed: number, rng: Rng): RunResults {
  const n = TASKS.length;
  const rate = m.rate * (method === "replay" ? 0.45 : 1) * (1 + noise(rng, 0.12));
  const curves: Record<string, number[]> = {};
  for (const b of Object.keys(CATEGORIES)) {
    if (CATEGORIES[b] === "bias") {
      const s0 = 0.6 + noise(rng, 0.05); // pct_stereotype falls: less bias
      curves[b] = Array.from(
        { length: n + 1 },
        (_, s) => s0 * (1 - 0.5 * rate * (s / n) + (s ? noise(rng, 0.01) : 0)),
      );
    } else {
      const s0 = BASE_SCORE[b] * (1 + m.params / 2e10);
      curves[b] = Array.from(
        { length: n + 1 },
        (_, s) => s0 * (1 - rate * (s / n) ** 0.7 + (s ? noise(rng, 0.01) : 0)),
      );
    }
  }
  const fg = fgByCategory(
    Object.keys(CATEGORIES).map((b) => ({
      benchmark: b,
      category: CATEGORIES[b],
      scores: curves[b],
    })),
  );
  const matrix = Array.from({ length: n + 1 }, (_, i) =>
    TASKS.map((_, j) => {
      if (i <= j) return 0.18 + 0.04 * i + noise(rng, 0.02); // not trained yet
      const learned = 0.62 + 0.05 * Math.log10(m.params / 1e8) + noise(rng, 0.02);
      return learned * (1 - rate * 0.8 * (i - j - 1)) + noise(rng, 0.01);
    }),
  );
  const primary = (b: string) => (CATEGORIES[b] === "bias" ? "pct_stereotype,none" : "acc,none");
  return {
    format: RESULTS_FORMAT,
    run: { name: `${m.name}-${method}-s${seed}`, model: m.name, method, order: TASKS, seed },
    categories: CATEGORIES,
    primaryMetric: Object.fromEntries(Object.keys(CATEGORIES).map((b) => [b, primary(b)])),
    stages: curves.mmlu.map((_, s) => ({
      stage: s,
      task: s ? TASKS[s - 1] : null,
      general: Object.fromEntries(
        Object.keys(CATEGORIES).map((b) => [b, { [primary(b)]: curves[b][s] }]),
      ),
      tasks: Object.fromEntries(TASKS.map((t, j) => [t, { rougeL: matrix[s][j] }])),
      seconds: { train: s ? 30 + 10 * rng() : 0, eval: 12 + 2 * rng() },
    })),
    fg,
    matrix,
    avg_acc: avgAcc(matrix),
    final_acc: finalAcc(matrix),
    bwt: bwt(matrix),
    fwt: fwt(matrix),
    forgetting: forgetting(matrix),
    plasticity: plasticity(matrix),
    curves,
  };
}

function writeItems(dir: string, rate: number, rng: Rng): void {
  for (const b of ["mmlu", "piqa"]) {
    let correct = Array.from({ length: 40 }, () => rng() < 0.6);
    for (let s = 0; s <= TASKS.length; s++) {
      if (s > 0) correct = correct.map((c) => (c ? rng() > rate * 1.5 : rng() < 0.1));
      mkdirSync(join(dir, "stages", String(s), "items"), { recursive: true });
      const lines = correct.map((c, k) =>
        JSON.stringify({
          doc_id: `${b}-${k}`,
          correct: c,
          text: `${b} question ${k}: which answer is right, <A> or <B>?`,
        }),
      );
      writeFileSync(join(dir, "stages", String(s), "items", `${b}.jsonl`), lines.join("\n") + "\n");
    }
  }
}

/** Writes a study under `root`: runs/<model>-<method>-s<seed>/ for each combination. */
export function writeStudy(
  root: string,
  o: { models?: SynthModel[]; methods?: string[]; seeds?: number[] } = {},
): string[] {
  const { models = STUDY_MODELS, methods = ["full", "replay"], seeds = [0, 1] } = o;
  const rng = makeRng(1234);
  const dirs: string[] = [];
  for (const m of models)
    for (const method of methods)
      for (const seed of seeds) {
        const results = runResults(m, method, seed, rng);
        const dir = join(root, "runs", results.run.name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "results.json"), JSON.stringify(results, null, 1));
        const card = {
          model: {
            name: m.name,
            params: m.params,
            architecture: m.architecture,
            family: m.family,
            ...(m.base ? { base: m.base } : {}),
          },
          config: { method, order: TASKS, lr: 2e-5, epochs: 1, batch_size: 8 },
          seed,
          git_commit: "0123abc",
          versions: { node: "v20.19.0", libtorch: "2.5.1", lethe: "0.1.0" },
          hardware: "synthetic",
          data_sha256: { mmlu: "9f2c…", piqa: "41ab…" },
        };
        writeFileSync(join(dir, "run-card.json"), JSON.stringify(card, null, 1));
        writeItems(dir, m.rate, rng);
        dirs.push(dir);
      }
  return dirs;
}
