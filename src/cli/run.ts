/**
 * `lethe run`, `lethe resume`, `lethe status`: the study runner's commands (src/continual/run.ts).
 *
 *   lethe run CONFIG.yaml [--out DIR]   runs every cell of the study's grid into DIR
 *                                       (default runs/<study name>); continues a DIR it started
 *   lethe resume DIR                    finishes the whole grid of a study DIR (its study.yaml,
 *                                       cells never started included), or one run DIR
 *   lethe status [DIR]                  per run of the grid: stage/total or "not started", last FG
 *                                       per category, locked or not
 *
 * A run folder that another live process holds is skipped with the holder's pid and host (a run
 * DIR given alone is refused). run and resume exit 1 when any run of the grid is still incomplete.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadStudy } from "../continual/config.js";
import { isLocked } from "../continual/lock.js";
import { resumeRuns, runStudy, studyProgress } from "../continual/run.js";
import { writeReport } from "../report/index.js";
import { parseFlags } from "./flags.js";

const USAGE = `lethe run CONFIG.yaml [--out DIR]
lethe resume DIR
lethe status [DIR]`;

function one(positionals: string[], what: string, optional = false): string | undefined {
  if (positionals.length > 1)
    throw new Error(`expected one ${what}, got ${positionals.length}\nusage:\n${USAGE}`);
  if (positionals.length === 0 && !optional) throw new Error(`missing ${what}\nusage:\n${USAGE}`);
  return positionals[0];
}

const log = (line: string) => process.stdout.write(`${line}\n`);

/** Every finished run and study gets its report (report/index.ts) beside its results. */
async function report(dir: string): Promise<void> {
  const { html } = await writeReport([dir], dir);
  log(`report: ${html}`);
}

/** 0 when every run of the study (or the run) in `dir` is complete; else names the rest, 1. */
function exitStatus(dir: string): number {
  const left = studyProgress(dir).filter((r) => !r.complete);
  for (const r of left) {
    const holder = r.started ? isLocked(r.dir) : null;
    process.stderr.write(
      `lethe: ${r.dir}: incomplete (${r.started ? `stage ${r.stagesDone}/${r.totalStages}` : "not started"})` +
        (holder ? `, in use by process ${holder.pid} on ${holder.host}` : "") +
        "\n",
    );
  }
  return left.length === 0 ? 0 : 1;
}

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { out: { type: "string" } }, USAGE, true);
  const file = one(positionals, "config file")!;
  const study = loadStudy(file);
  const out = resolve(values.out ?? join("runs", study.config.name));
  const dirs = await runStudy(study, out, { log });
  log(`${dirs.length} run(s) complete in ${out}`);
  await report(out);
  return exitStatus(out);
}

export async function resumeCommand(argv: string[]): Promise<number> {
  const { positionals } = parseFlags(argv, {}, USAGE, true);
  const dir = resolve(one(positionals, "run or study directory")!);
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  const dirs = await resumeRuns(dir, { log });
  log(`${dirs.length} run(s) complete in ${dir}`);
  await report(dir);
  return exitStatus(dir);
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { positionals } = parseFlags(argv, {}, USAGE, true);
  const dir = resolve(one(positionals, "directory", true) ?? ".");
  for (const p of studyProgress(dir)) {
    const d = p.dir;
    const holder = p.started ? isLocked(d) : null;
    const fg =
      p.fg && Object.keys(p.fg).length > 0
        ? Object.entries(p.fg)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(", ")
        : "-";
    log(
      `${d}  stage ${p.stagesDone}/${p.totalStages}${p.complete ? " complete" : p.started ? "" : " not started"}  FG: ${fg}  ` +
        (holder ? `locked by pid ${holder.pid} on ${holder.host}` : "not locked"),
    );
  }
  return 0;
}
