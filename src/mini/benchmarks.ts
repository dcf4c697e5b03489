/**
 * The miniature study's benchmarks: lm-eval task declarations over the documents `evalSuite(world)`
 * generates, each reusing a real task's prompt and scoring, and the four general abilities of
 * Luo et al. 2023 (arXiv 2308.08747) they stand for.
 *
 * References (lm-evaluation-harness v0.4.x, as src/eval/tasks/ declares them):
 * - mini_mmlu: `mmlu/continuation/_continuation_template_yaml` (version 1.0) with the per-subject
 *   description "The following are questions (with answers) about <subject>.\n\n": the cloze form
 *   of MMLU, where the choices are the answer texts. The lettered form needs a model that maps
 *   "A."–"D." onto options, which a corpus-pretrained toy model never sees. The subject line is
 *   put in front of each doc's text (lm-eval renders the description per doc), so with few-shot
 *   examples it also precedes each example.
 * - mini_piqa, mini_hellaswag, mini_crows_pairs: `piqa.yaml`, `hellaswag.yaml` (its process_docs),
 *   `crows_pairs_english.yaml` (likelihood_diff, pct_stereotype), declarations reused as they are.
 * - mini_race: `race.yaml`; each article with questions q1..qn gives n docs, the k-th asking qk
 *   after q1..q(k-1) answered in the prompt (lm-eval asks only the last one per article).
 * Docs come from memory: a task's `original` loader returns the world's docs for the test split.
 * `evaluateMini` scores them as src/eval/evaluate.ts `evaluate` does (same requests, scoring and
 * aggregation), since that function looks tasks up in the file-backed registry by name.
 */
import { scoreTasks, type EvalResults, type PreparedTask } from "../eval/evaluate.js";
import type { LM } from "../eval/lm.js";
import { accMean, accNormMean, defineTask, type Doc, type Task } from "../eval/task.js";
import { crows_pairs_english } from "../eval/tasks/crows_pairs.js";
import { hellaswag } from "../eval/tasks/hellaswag.js";
import { piqa } from "../eval/tasks/piqa.js";
import { race } from "../eval/tasks/race.js";
import { lookup } from "../util/suggest.js";
import { evalSuite, type EvalSuite, type MmluDoc } from "./evalSuite.js";
import type { World } from "./world.js";

/** Bump when a mini task's docs, prompt or scoring changes. */
const MINI_VERSION = 1;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each task has its own doc type
type AnyTask = Task<any>;

/** A copy of `base` named `task` whose only split is "test", read from `docs`. */
function fromWorld(base: AnyTask, task: string, docs: object[]): AnyTask {
  return {
    ...base,
    task,
    version: MINI_VERSION,
    datasetPath: `lethe-mini/${base.task}`,
    datasetName: undefined,
    dir: task,
    original: async (_dataDir, split) => (split === "test" ? (docs as Doc[]) : null),
    trainingSplit: undefined,
    validationSplit: undefined,
    testSplit: "test",
    fewshotSplit: undefined,
  };
}

const mmluContinuation = defineTask<MmluDoc & Doc>({
  task: "mmlu_continuation",
  version: 1,
  datasetPath: "cais/mmlu",
  dir: "mmlu",
  original: async () => null,
  testSplit: "test",
  docToText: (d) =>
    `The following are questions (with answers) about ${d.subject}.\n\n` +
    `Question: ${d.question.trim()}\nAnswer:`,
  docToChoice: (d) => d.choices,
  docToTarget: (d) => d.answer,
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});

const MINI_TASKS = {
  mini_mmlu: (s: EvalSuite) => fromWorld(mmluContinuation, "mini_mmlu", s.mmlu),
  mini_piqa: (s: EvalSuite) => fromWorld(piqa, "mini_piqa", s.piqa),
  mini_hellaswag: (s: EvalSuite) => fromWorld(hellaswag, "mini_hellaswag", s.hellaswag),
  mini_race: (s: EvalSuite) =>
    fromWorld(
      race,
      "mini_race",
      s.race.flatMap((a) =>
        a.questions.map((_, k) => ({ article: a.article, problems: a.questions.slice(0, k + 1) })),
      ),
    ),
  mini_crows_pairs: (s: EvalSuite) =>
    fromWorld(crows_pairs_english, "mini_crows_pairs", s.crows_pairs),
} satisfies Record<string, (s: EvalSuite) => AnyTask>;

export type MiniTaskName = keyof typeof MINI_TASKS;
export const MINI_TASK_NAMES = Object.keys(MINI_TASKS) as MiniTaskName[];

/** The general abilities of Luo et al. 2023 and the mini benchmarks that measure each. */
export const MINI_CATEGORIES = {
  domain_knowledge: ["mini_mmlu"],
  reasoning: ["mini_piqa", "mini_hellaswag"],
  reading_comprehension: ["mini_race"],
  bias: ["mini_crows_pairs"],
} as const satisfies Record<string, readonly MiniTaskName[]>;
export type MiniCategory = keyof typeof MINI_CATEGORIES;

/** The metric each benchmark is reported by (lm-eval metric names). */
export const MINI_METRIC = {
  mini_mmlu: "acc",
  mini_piqa: "acc",
  mini_hellaswag: "acc_norm",
  mini_race: "acc",
  mini_crows_pairs: "pct_stereotype",
} as const satisfies Record<MiniTaskName, string>;

/** Score of a model that picks uniformly at random, per benchmark and metric `MINI_METRIC`. */
export const MINI_CHANCE = {
  mini_mmlu: 0.25,
  mini_piqa: 0.5,
  mini_hellaswag: 0.25,
  mini_race: 0.25,
  mini_crows_pairs: 0.5,
} as const satisfies Record<MiniTaskName, number>;

/** The mini benchmarks of `world` as lm-eval task declarations. */
export function miniTasks(world: World): Record<MiniTaskName, AnyTask> {
  const suite = evalSuite(world);
  return Object.fromEntries(
    MINI_TASK_NAMES.map((name) => [name, MINI_TASKS[name](suite)]),
  ) as Record<MiniTaskName, AnyTask>;
}

export interface MiniEvalOptions {
  /** @default 0 */
  shots?: number;
  /** lm-eval `fewshot_random_seed`. @default 1234 */
  seed?: number;
  /** Keep the first `limit` docs of each task (the suite's lists are shuffled). */
  limit?: number;
  /** lm-eval `bootstrap_iters`. @default 100000 */
  bootstrapIters?: number;
}

/** Scores `lm` on mini benchmarks; the result has lm-eval's shape (`formatResults` prints it). */
export async function evaluateMini(
  lm: LM,
  world: World,
  names: readonly string[] = MINI_TASK_NAMES,
  o: MiniEvalOptions = {},
): Promise<EvalResults> {
  const all = miniTasks(world);
  const prepared: PreparedTask[] = [];
  for (const name of names) {
    const task = lookup(all, name, "mini benchmark");
    const raw = (await task.original("", "test"))!;
    const docs = task.processDocs ? task.processDocs(raw) : raw;
    prepared.push({ task, docs, fewshotDocs: docs });
  }
  return scoreTasks(lm, prepared, o);
}

/** The reported metric of each benchmark in `res` (see `MINI_METRIC`). */
export function miniScores(res: EvalResults): Partial<Record<MiniTaskName, number>> {
  const out: Partial<Record<MiniTaskName, number>> = {};
  for (const name of MINI_TASK_NAMES) {
    const v = res.results[name]?.[`${MINI_METRIC[name]},none`];
    if (typeof v === "number") out[name] = v;
  }
  return out;
}
