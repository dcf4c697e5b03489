/**
 * The registry of evaluation tasks and groups (lm-eval v0.4.x task names, verbatim). A name that
 * is neither a task nor a group gets "Did you mean …" with the closest registered names.
 */
import type { Doc, GroupConfig, Task } from "../task.js";
import { arc_challenge, arc_easy } from "./arc.js";
import { boolq } from "./boolq.js";
import * as crows from "./crows_pairs.js";
import { hellaswag } from "./hellaswag.js";
import { lambada_openai } from "./lambada_openai.js";
import { mathqa } from "./mathqa.js";
import { miniTasks } from "./mini.js";
import { mmluGroups, mmluTasks } from "./mmlu.js";
import { mutual, mutual_plus } from "./mutual.js";
import { openbookqa } from "./openbookqa.js";
import { piqa } from "./piqa.js";
import { race, race_middle } from "./race.js";
import { truthfulqa_mc1, truthfulqa_mc2 } from "./truthfulqa.js";
import { winogrande } from "./winogrande.js";
import { didYouMean } from "../../util/suggest.js";

// `any`: each task has its own doc type
type AnyTask = Task<any>;

export const tasks = {
  hellaswag,
  piqa,
  boolq,
  winogrande,
  race,
  race_middle,
  mathqa,
  mutual,
  mutual_plus,
  arc_easy,
  arc_challenge,
  openbookqa,
  lambada_openai,
  truthfulqa_mc1,
  truthfulqa_mc2,
  ...crows,
  ...mmluTasks,
  ...miniTasks,
} satisfies Record<string, AnyTask>;

export const groups = { ...mmluGroups } satisfies Record<string, GroupConfig>;

for (const [name, t] of Object.entries(tasks)) {
  if (t.task !== name) throw new Error(`task registry: key "${name}" holds task "${t.task}"`);
  if (name in groups) throw new Error(`task registry: "${name}" is both a task and a group`);
}

function unknown(name: string): Error {
  return new Error(
    `Unknown task or group "${name}".${didYouMean(name, [...Object.keys(groups), ...Object.keys(tasks)])}`,
  );
}

export function getTask(name: string): Task<Doc> {
  const t = (tasks as Record<string, AnyTask>)[name];
  if (t === undefined) throw unknown(name);
  return t;
}

export function getGroup(name: string): GroupConfig | undefined {
  return (groups as Record<string, GroupConfig>)[name];
}

/** The leaf task names a task or group name stands for, in lm-eval's order. */
export function expandTaskNames(name: string): string[] {
  const g = getGroup(name);
  if (g) return g.task.flatMap(expandTaskNames);
  getTask(name);
  return [name];
}
