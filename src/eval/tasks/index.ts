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
import { mmluGroups, mmluTasks } from "./mmlu.js";
import { openbookqa } from "./openbookqa.js";
import { piqa } from "./piqa.js";
import { race } from "./race.js";
import { truthfulqa_mc1, truthfulqa_mc2 } from "./truthfulqa.js";
import { winogrande } from "./winogrande.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each task has its own doc type
type AnyTask = Task<any>;

export const tasks = {
  hellaswag,
  piqa,
  boolq,
  winogrande,
  race,
  arc_easy,
  arc_challenge,
  openbookqa,
  lambada_openai,
  truthfulqa_mc1,
  truthfulqa_mc2,
  ...crows,
  ...mmluTasks,
} satisfies Record<string, AnyTask>;

export const groups = { ...mmluGroups } satisfies Record<string, GroupConfig>;

for (const [name, t] of Object.entries(tasks)) {
  if (t.task !== name) throw new Error(`task registry: key "${name}" holds task "${t.task}"`);
  if (name in groups) throw new Error(`task registry: "${name}" is both a task and a group`);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function unknown(name: string): Error {
  const names = [...Object.keys(groups), ...Object.keys(tasks)];
  const close = names
    .map((n) => ({ n, d: editDistance(name, n) }))
    .filter(({ d }) => d <= Math.max(2, Math.floor(name.length / 3)))
    .sort((x, y) => x.d - y.d)
    .slice(0, 3)
    .map(({ n }) => `"${n}"`);
  const hint = close.length > 0 ? ` Did you mean ${close.join(" or ")}?` : "";
  return new Error(`Unknown task or group "${name}".${hint}`);
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
