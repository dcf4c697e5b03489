/**
 * The registry of built-in instruction tasks and the named task sequences a continual run trains
 * in order.
 *
 * Sequences:
 * - "luo2023": Luo et al. 2023 (arXiv 2308.08747)'s five CT0 tasks (Scialom et al. 2022) from
 *   their real datasets, in the paper's order Simp → Emdg → InqQA → Exp → HGen: wiki_auto →
 *   empathetic_dialogues → eli5 → esnli_ct0 → gigaword_ct0 (CT0's processing and templates,
 *   100,000 examples each drawn as Luo's code draws them: src/continual/ct0.ts).
 * - "mini": the paper's order over the miniature study's synthetic tasks (src/continual/tasks/mini.ts):
 *   simplification → empathetic dialogue → inquisitive question generation → explanation →
 *   headline generation.
 * - "olora-4-order1..3" and "olora-15-order4..6": the standard 4-task and long 15-task orders of
 *   O-LoRA (Wang et al. 2023, Table 7; `scripts/order_{1,2,3}.sh` of cmnfriend/O-LoRA), the same
 *   orders as Progressive Prompts (Razdaibiedina et al. 2023).
 */
import {
  lookup,
  type InstructionTask,
  type TaskDefinition,
  type TaskOptions,
} from "../instruction.js";
import { alpaca } from "./alpaca.js";
import { declareTask, type TaskDeclaration } from "./declare.js";
import { asset } from "./asset.js";
import { covidQa } from "./covid_qa.js";
import { eli5 } from "./eli5.js";
import { empatheticDialogues } from "./empathetic_dialogues.js";
import { esnliCt0 } from "./esnli_ct0.js";
import { gigawordCt0 } from "./gigaword_ct0.js";
import { wikiAuto } from "./wiki_auto.js";
import { esnli } from "./esnli.js";
import { gigaword } from "./gigaword.js";
import { haiku } from "./haiku.js";
import { miniTasks } from "./mini.js";
import { oloraTasks } from "./olora.js";

const GENERATION_TASKS = {
  haiku,
  esnli,
  asset,
  covid_qa: covidQa,
  gigaword,
  alpaca,
  wiki_auto: wikiAuto,
  empathetic_dialogues: empatheticDialogues,
  eli5,
  esnli_ct0: esnliCt0,
  gigaword_ct0: gigawordCt0,
} as const satisfies Record<string, TaskDefinition>;

for (const name of [...Object.keys(oloraTasks), ...Object.keys(miniTasks)]) {
  if (name in GENERATION_TASKS) throw new Error(`task registry: duplicate task name "${name}"`);
}

export const TASKS = { ...GENERATION_TASKS, ...oloraTasks, ...miniTasks } as const satisfies Record<
  string,
  TaskDefinition
>;

export type TaskName = keyof typeof TASKS;

export const SEQUENCES = {
  luo2023: ["wiki_auto", "empathetic_dialogues", "eli5", "esnli_ct0", "gigaword_ct0"],
  mini: [
    "mini_simplification",
    "mini_empathetic_dialogue",
    "mini_inquisitive_qg",
    "mini_explanation",
    "mini_headline_generation",
  ],
  "olora-4-order1": ["dbpedia", "amazon", "yahoo", "agnews"],
  "olora-4-order2": ["dbpedia", "amazon", "agnews", "yahoo"],
  "olora-4-order3": ["yahoo", "amazon", "agnews", "dbpedia"],
  "olora-15-order4": [
    "MNLI",
    "CB",
    "WiC",
    "COPA",
    "QQP",
    "BoolQA",
    "RTE",
    "IMDB",
    "yelp",
    "amazon",
    "SST-2",
    "dbpedia",
    "agnews",
    "MultiRC",
    "yahoo",
  ],
  "olora-15-order5": [
    "MultiRC",
    "BoolQA",
    "WiC",
    "MNLI",
    "CB",
    "COPA",
    "QQP",
    "RTE",
    "IMDB",
    "SST-2",
    "dbpedia",
    "agnews",
    "yelp",
    "amazon",
    "yahoo",
  ],
  "olora-15-order6": [
    "yelp",
    "amazon",
    "MNLI",
    "CB",
    "COPA",
    "QQP",
    "RTE",
    "IMDB",
    "SST-2",
    "dbpedia",
    "agnews",
    "yahoo",
    "MultiRC",
    "BoolQA",
    "WiC",
  ],
} as const satisfies Record<string, readonly TaskName[]>;

export type SequenceName = keyof typeof SEQUENCES;

/** Whether `name` is a built-in task (a config may not declare a task of that name). */
export function isBuiltinTask(name: string): boolean {
  return Object.hasOwn(TASKS, name);
}

/**
 * A task definition by name ("Did you mean …" when unknown): a built-in one, or one of
 * `declared` (a study config's `tasks:`).
 */
export function getTask(name: string, declared: readonly TaskDeclaration[] = []): TaskDefinition {
  const decl = declared.find((d) => d.name === name);
  if (decl) return declareTask(decl);
  // Unknown names are suggested among the built-in and the declared tasks alike.
  const known: Record<string, TaskDefinition | null> = { ...TASKS };
  for (const d of declared) known[d.name] = null;
  return lookup(known, name, "instruction task")!;
}

/** The task names of a sequence, in training order. */
export function getSequence(name: string): readonly TaskName[] {
  return lookup<readonly TaskName[]>(SEQUENCES, name, "task sequence");
}

/** Loads a task by name (built in, or one of `declared`) from the shared data root. */
export function loadTask(
  name: string,
  dataDir: string,
  options?: TaskOptions,
  declared: readonly TaskDeclaration[] = [],
): Promise<InstructionTask> {
  return getTask(name, declared).load(dataDir, options);
}
