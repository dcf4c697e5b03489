/**
 * `lethe run`, `lethe resume`, `lethe status`: the study runner's commands (src/continual/run.ts).
 * Their options are declared in commands.ts.
 *
 *   lethe run CONFIG.yaml [--out DIR]   runs every cell of the study's grid into DIR
 *                                       (default runs/<study name>); continues a DIR it started
 *   lethe resume DIR                    finishes the whole grid of a study DIR (its study.yaml,
 *                                       cells never started included), or one run DIR
 *   lethe status [DIR] [--json]         a summary line, then one row per run of the grid: state,
 *                                       last stage done, last FG per category, holding process
 *
 * Stages count as the runner's progress lines count them: stage 0 is the base model's
 * evaluation, stages 1..N the tasks, so a complete run of 5 tasks is at stage 5/5.
 *
 * A run folder that another live process holds is skipped with the holder's pid and host (a run
 * DIR given alone is refused). run and resume exit 1 when any run of the grid is still incomplete.
 */
import { existsSync } from "node:fs";
import type { RunnerOptions } from "../continual/run.js";
import { tensorboardSink } from "../report/tensorboard.js";
import { basename, isAbsolute, join, relative, resolve } from "node:path";
import { expandGrid, loadStudy, runConfig, type Study } from "../continual/config.js";
import { expandTaskNames } from "../eval/tasks/index.js";
import { parseModelRef } from "../io/pretrained.js";
import { unfitMessage } from "../continual/plan.js";
import type { LockInfo } from "../continual/lock.js";
import {
  resumeRuns,
  runState,
  runStudy,
  STATES,
  studyProgress,
  type RunState,
  type RunStatus,
} from "../continual/study.js";
export { STATES, type RunState };
import { slurmStatus, type SlurmStatus } from "../continual/slurm.js";
import { writeReport } from "../report/index.js";
import { command } from "./commands.js";
import { launchLocal, nprocOf, shouldLaunch } from "./launch.js";
import { currentDist } from "../dist/index.js";

const log = (line: string) => process.stdout.write(`${line}\n`);

/**
 * What run, resume and study print: log lines and progress (redrawn on a TTY, else bounded plain
 * lines); --quiet nothing; --json each event as a JSON line with its run. Every run's
 * TensorBoard file (report/tensorboard.ts) is kept current either way.
 */
export function runnerOutput(o: {
  quiet?: boolean;
  json?: boolean;
}): RunnerOptions & { say: (line: string) => void } {
  const tb = tensorboardSink();
  const quiet = o.quiet === true || o.json === true;
  return {
    say: quiet ? () => {} : log,
    log: quiet ? undefined : log,
    progress: !quiet && process.stdout.isTTY ? process.stdout : undefined,
    onEvent: (dir, e) => {
      if (o.json) process.stdout.write(JSON.stringify({ run: basename(dir), ...e }) + "\n");
      tb(dir, e);
    },
  };
}

const outputFlags = (o: { quiet?: boolean; json?: boolean }) => [
  ...(o.quiet ? ["--quiet"] : []),
  ...(o.json ? ["--json"] : []),
];

/** Every finished run and study gets its report (report/index.ts) beside its results. */
async function report(dir: string, say: (line: string) => void = log): Promise<void> {
  const { html } = await writeReport([dir], dir);
  say(`report: ${html}`);
}

export interface RunRow {
  /** The run's folder name (under the study's runs/). */
  name: string;
  dir: string;
  state: RunState;
  /** The last stage done: 0 the base model's evaluation, m the model after task m; null: none. */
  stage: number | null;
  /** The run's number of tasks: its last stage. */
  stages: number;
  /** The last FG per category (percent), once a stage after the base one is done. */
  fg: Record<string, number> | null;
  /** The process holding the run, while it runs. */
  process: LockInfo | null;
  /** The error a failed run stopped on. */
  error: string | null;
}

function rowOf(p: RunStatus, name: string): RunRow {
  const { state, holder } = runState(p);
  return {
    name,
    dir: p.dir,
    state,
    stage: p.stagesDone > 0 ? p.stagesDone - 1 : null,
    stages: p.totalStages - 1,
    fg: p.fg && Object.keys(p.fg).length > 0 ? p.fg : null,
    process: holder,
    error: p.failed,
  };
}

/** The rows of a study folder's runs (its grid, then other run folders), or of one run folder. */
export function statusRows(dir: string): RunRow[] {
  return studyProgress(dir).map((p) =>
    rowOf(p, p.dir === dir ? basename(dir) : relative(join(dir, "runs"), p.dir)),
  );
}

const stageText = (r: RunRow) => `${r.stage ?? "-"}/${r.stages}`;

/** `5 runs: 1 complete, 1 running, 1 failed, 1 stopped, 1 not started`. */
function summaryOf(rows: RunRow[]): Record<"runs" | RunState, number> {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<RunState, number>;
  for (const r of rows) counts[r.state]++;
  return { runs: rows.length, ...counts };
}

/** Columns padded to their widest cell; `right` columns aligned right (numbers). */
export function table(rows: string[][], right: boolean[]): string {
  const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (right[i] ? c.padStart(width[i]) : c.padEnd(width[i])))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** A path as the user would type it: relative to the working folder when inside it. */
function shown(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? dir : rel;
}

/** The text of `lethe status`: a summary line, then the table. */
export function formatStatus(
  dir: string,
  rows: RunRow[],
  slurm: SlurmStatus | null = null,
): string {
  const s = summaryOf(rows);
  const head =
    `${shown(dir)}: ${s.runs} run${s.runs === 1 ? "" : "s"}: ` +
    STATES.map((state) => `${s[state]} ${state}`).join(", ");
  if (rows.length === 0) return head + "\n";
  const categories = [...new Set(rows.flatMap((r) => Object.keys(r.fg ?? {})))];
  const cells = [
    [
      "run",
      "state",
      "stage",
      ...categories.map((c) => `FG ${c}`),
      ...(slurm ? ["slurm"] : []),
      "process",
    ],
    ...rows.map((r) => [
      r.name,
      r.state,
      stageText(r),
      ...categories.map((c) => (r.fg?.[c] === undefined ? "-" : r.fg[c].toFixed(2))),
      ...(slurm ? [slurm.runs.get(r.name)?.text ?? "-"] : []),
      r.process ? `pid ${r.process.pid} on ${r.process.host}` : "",
    ]),
  ];
  const right = cells[0].map((_, i) => i >= 2 && i < 3 + categories.length); // stage, FG
  // Slurm (src/continual/slurm.ts): the report job, and why squeue could not be asked.
  const foot = slurm
    ? `slurm: report ${slurm.report}` +
      (slurm.unreachable ? `\nslurm: squeue not reachable: ${slurm.unreachable}` : "") +
      "\n"
    : "";
  return `${head}\n${table(cells, right)}\n${foot}`;
}

/** 0 when every run of the study (or the run) in `dir` is complete; else names the rest, 1. */
function exitStatus(dir: string): number {
  const left = statusRows(dir).filter((r) => r.state !== "complete");
  for (const r of left)
    process.stderr.write(
      `lethe: ${r.dir}: incomplete (${r.state}, stage ${stageText(r)})` +
        (r.process ? `, in use by process ${r.process.pid} on ${r.process.host}` : "") +
        "\n",
    );
  return left.length === 0 ? 0 : 1;
}

/**
 * `lethe run --dry-run`: the study as it would run, every name resolved (model refs parsed, tasks,
 * benchmarks and their lm-eval leaves, categories), each model's effective train settings (its
 * overrides merged, as runs/<run>/config.yaml will hold them) and the grid. Loads no weights.
 */
export function dryRunText(study: Study, nproc = 1): string {
  const c = study.config;
  const grid = expandGrid(study);
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
  const lines = [
    `study ${c.name}: ${plural(c.models.length, "model")} × ${plural(study.methods.length, "method")} × ${plural(study.orders.length, "order")} × ${plural(c.seeds.length, "seed")} = ${plural(grid.length, "run")}`,
    `models (${c.models.length}):`,
  ];
  for (const m of c.models) {
    const run = grid.find((r) => r.model === m);
    const t = run ? runConfig(study, run).train : c.train;
    const where = m.ref === undefined ? "built" : parseModelRef(m.ref);
    const src =
      where === "built"
        ? "built (seeded weights)"
        : "dir" in where
          ? where.dir
          : `hf:${where.repo}${where.revision ? `@${where.revision}` : ""}`;
    if (t.gradAccum % nproc !== 0)
      throw new Error(
        `model "${m.name}": gradAccum ${t.gradAccum} is not a multiple of ${nproc} ranks (--nproc-per-node)`,
      );
    lines.push(
      `  ${m.name}: ${src}, ${m.dtype} on ${m.device}${m.base ? `, base ${m.base}` : ""}; ` +
        `lr ${t.lr} ${t.schedule} (warmup ${t.warmup}), ${t.steps === null ? plural(t.epochs, "epoch") : plural(t.steps, "step")}, ` +
        `batch ${t.batchSize} × accum ${t.gradAccum} = ${t.batchSize * t.gradAccum} per step` +
        `${nproc > 1 ? ` (${t.batchSize} per device, ${t.gradAccum / nproc} accum on ${nproc} ranks)` : ""}, ` +
        `max length ${t.maxLength}, precision ${t.precision ?? "from dtype"}, ${c.tuning.kind} tuning`,
    );
  }
  lines.push(`methods (${study.methods.length}):`);
  for (const m of study.methods)
    lines.push(
      `  ${m.label}: ${m.name}${Object.keys(m.options).length ? ` ${JSON.stringify(m.options)}` : ""}`,
    );
  lines.push(`orders (${study.orders.length}):`);
  for (const o of study.orders)
    lines.push(`  ${o.name} (${plural(o.tasks.length, "task")}): ${o.tasks.join(" → ")}`);
  const categories = [...new Set(study.benchmarks.map((b) => b.category))];
  lines.push(
    `benchmarks (${study.benchmarks.length} in ${categories.length} categor${categories.length === 1 ? "y" : "ies"}):`,
  );
  for (const cat of categories) {
    const bs = study.benchmarks.filter((b) => b.category === cat);
    lines.push(`  ${cat} (${bs.length}):`);
    for (const b of bs) {
      const leaves = expandTaskNames(b.name);
      lines.push(
        `    ${b.name}: ${b.shots}-shot, ${b.metric}${b.limit === null ? "" : `, first ${b.limit} docs`}` +
          `${leaves.length > 1 || leaves[0] !== b.name ? `, ${plural(leaves.length, "lm-eval task")}` : ""}`,
      );
    }
  }
  lines.push(`runs (${grid.length}):`, ...grid.map((r) => `  ${r.name}`));
  return lines.join("\n") + "\n";
}

export const runCommand = command("run", async ({ values, positionals: [file] }) => {
  const nproc = nprocOf(values["nproc-per-node"]);
  const study = loadStudy(file);
  if (values["dry-run"]) {
    process.stdout.write(dryRunText(study, nproc));
    return 0;
  }
  const out = resolve(values.out ?? join("runs", study.config.name));
  if (!values["ignore-plan"]) {
    // Before anything loads: a run that cannot fit its device's memory is refused (lethe plan).
    const world = Math.max(nproc, Number(process.env.WORLD_SIZE ?? "1"));
    const unfit = await unfitMessage(study, file, { worldSize: world });
    if (unfit !== null) {
      process.stderr.write(`lethe run: ${unfit}\n`);
      return 1;
    }
  }
  if (shouldLaunch(nproc))
    return launchLocal(nproc, ["run", resolve(file), "--out", out, ...outputFlags(values)]);
  if (!(currentDist()?.isMain ?? true)) {
    await runStudy(study, out, {}); // rank 0 prints and reports
    return 0;
  }
  const output = runnerOutput(values);
  const dirs = await runStudy(study, out, output);
  output.say(`${dirs.length} run(s) complete in ${out}`);
  await report(out, output.say);
  return exitStatus(out);
});

export const resumeCommand = command("resume", async ({ values, positionals: [arg] }) => {
  const dir = resolve(arg);
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  if (values.slurm) return (await import("./submit.js")).resubmit(dir);
  const nproc = nprocOf(values["nproc-per-node"]);
  if (shouldLaunch(nproc)) return launchLocal(nproc, ["resume", dir, ...outputFlags(values)]);
  if (!(currentDist()?.isMain ?? true)) {
    await resumeRuns(dir, {}); // rank 0 prints and reports
    return 0;
  }
  const output = runnerOutput(values);
  const dirs = await resumeRuns(dir, output);
  output.say(`${dirs.length} run(s) complete in ${dir}`);
  await report(dir, output.say);
  return exitStatus(dir);
});

export const statusCommand = command("status", async ({ values, positionals }) => {
  const dir = resolve(positionals[0] ?? ".");
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  const rows = statusRows(dir);
  const slurm = slurmStatus(dir); // null unless `lethe submit` sent the study to Slurm
  if (values.json) {
    const runs = slurm ? rows.map((r) => ({ ...r, slurm: slurm.runs.get(r.name) ?? null })) : rows;
    const extra = slurm ? { slurm: { report: slurm.report, unreachable: slurm.unreachable } } : {};
    process.stdout.write(
      JSON.stringify({ dir, summary: summaryOf(rows), runs, ...extra }, null, 2) + "\n",
    );
  } else process.stdout.write(formatStatus(dir, rows, slurm));
  return 0;
});
