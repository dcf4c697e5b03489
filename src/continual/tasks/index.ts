/**
 * The registry of built-in instruction tasks and the named task sequences a continual run trains
 * in order.
 *
 * Sequences:
 * - "luo2023": in the spirit of Luo et al. 2023 (arXiv 2308.08747), who train CT0's tasks
 *   (Scialom et al. 2022) in the order Simp → Emdg → InqQA → Exp → HGen. The empathetic-dialogue
 *   and inquisitive-question data are not in shared data, so the two other CT0 tasks that are,
 *   Haiku and COVID-QA, take their places: asset → haiku → covid_qa → esnli → gigaword.
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
import { asset } from "./asset.js";
import { covidQa } from "./covid_qa.js";
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
  luo2023: ["asset", "haiku", "covid_qa", "esnli", "gigaword"],
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

/** A task definition by name ("Did you mean …" when unknown). */
export function getTask(name: string): TaskDefinition {
  return lookup<TaskDefinition>(TASKS, name, "instruction task");
}

/** The task names of a sequence, in training order. */
export function getSequence(name: string): readonly TaskName[] {
  return lookup<readonly TaskName[]>(SEQUENCES, name, "task sequence");
}

/** Loads a task by name from the shared data root. */
export function loadTask(
  name: string,
  dataDir: string,
  options?: TaskOptions,
): Promise<InstructionTask> {
  return getTask(name).load(dataDir, options);
}
