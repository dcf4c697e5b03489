/**
 * The miniature study's benchmarks over one world: the documents `evalSuite(world)` generates, in
 * the schema of the registered mini tasks (src/eval/tasks/mini.ts, each a real lm-eval task's
 * prompt and scoring), their reported metrics and chance levels. Their categories (Luo et al.'s
 * four general abilities) are stated in those declarations. `miniTasks` serves the docs from memory (the zoo's vocabulary and format documents,
 * `evaluateMini`); a study reads the same docs from the files src/mini/data.ts writes.
 *
 * mini_race: each article with questions q1..qn gives n docs, the k-th asking qk after q1..q(k-1)
 * answered in the prompt (lm-eval asks only the last one per article).
 */
import { scoreTasks, type EvalResults, type PreparedTask } from "../eval/evaluate.js";
import type { LM } from "../eval/lm.js";
import type { Doc, Task } from "../eval/task.js";
import { miniTasks as registered } from "../eval/tasks/mini.js";
import { lookup } from "../util/suggest.js";
import { evalSuite, type EvalSuite } from "./evalSuite.js";
import type { World } from "./world.js";

// `any`: each task has its own doc type
type AnyTask = Task<any>;

const MINI_DOCS = {
  mini_mmlu: (s: EvalSuite) => s.mmlu,
  mini_piqa: (s: EvalSuite) => s.piqa,
  mini_hellaswag: (s: EvalSuite) => s.hellaswag,
  mini_race: (s: EvalSuite) =>
    s.race.flatMap((a) =>
      a.questions.map((_, k) => ({ article: a.article, problems: a.questions.slice(0, k + 1) })),
    ),
  mini_crows_pairs: (s: EvalSuite) => s.crows_pairs,
} satisfies Record<keyof typeof registered, (s: EvalSuite) => object[]>;

export type MiniTaskName = keyof typeof MINI_DOCS;
export const MINI_TASK_NAMES = Object.keys(MINI_DOCS) as MiniTaskName[];

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

/** The test docs of every mini benchmark of `world`, as the task files hold them. */
export function miniDocs(world: World): Record<MiniTaskName, Doc[]> {
  const suite = evalSuite(world);
  return Object.fromEntries(
    MINI_TASK_NAMES.map((name) => [name, MINI_DOCS[name](suite)]),
  ) as unknown as Record<MiniTaskName, Doc[]>;
}

/** The registered mini tasks, reading `world`'s docs from memory instead of files. */
export function miniTasks(world: World): Record<MiniTaskName, AnyTask> {
  const docs = miniDocs(world);
  return Object.fromEntries(
    MINI_TASK_NAMES.map((name) => [
      name,
      {
        ...registered[name],
        original: async (_dataDir: string, split: string) => (split === "test" ? docs[name] : null),
      },
    ]),
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
