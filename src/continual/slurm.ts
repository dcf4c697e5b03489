/**
 * A study's grid on a Slurm cluster: one job array with one element per unfinished run, and a
 * report job that runs when the array ends, whatever its outcome (`--dependency=afterany`).
 *
 *     DIR/study.yaml, DIR/runs/<run>/config.yaml   as `lethe run` writes them (run.ts)
 *     DIR/slurm/array.sbatch    element i: `lethe run-one DIR i` (i: the run's index in the grid)
 *     DIR/slurm/report.sbatch   `lethe status DIR` into DIR/status.txt, then `lethe report DIR`
 *     DIR/slurm/jobs.json       every submission: array and report job ids, runs, settings
 *     DIR/runs/<run>/slurm-<job id>.out   the element's log (a requeued element appends to it)
 *     DIR/runs/<run>/slurm.json           the element's last word: completed, stopped, requeued,
 *                                         failed (with its error and failures so far), running
 *
 * An element runs the same code as `lethe run` for one cell (runCell: lock, resume, run card).
 * Elements are submitted with `--requeue` and `--signal=B:USR1@120`. The batch script traps
 * SIGUSR1 and SIGTERM and writes the signal's name into `runs/<run>/stop-requested`, which the
 * trainer checks after every step (src/train/stop.ts says why a file): lethe writes a checkpoint
 * at that step, releases the run's lock and exits. Exit status 75 (EX_TEMPFAIL) asks the batch
 * script to requeue the element: after SIGUSR1 (the time limit is near) and after a failure
 * while retries are left (`maxRetries`, default 2). It requeues `<array>_<index>`, never
 * $SLURM_JOB_ID: the last element's own job id is the whole array's, and requeueing that would
 * requeue every element. After SIGTERM lethe exits with 143 and the script requeues nothing, even
 * when the run failed just before the signal (exit 75): Slurm itself requeues a preempted or
 * `scontrol requeue`d element, and a cancelled one stays cancelled. A
 * requeued element starts again from the checkpoint, so its results equal an uninterrupted run's.
 * Slurm holds a requeued job for about two minutes (its BeginTime) before it may start again.
 *
 * Status: `squeue` says where the live elements are (pending, running on which node, requeued
 * how often); slurm.json says how the finished ones ended, since without an accounting database
 * (`sacct`) Slurm forgets a job minutes after it ends.
 *
 * Ranks: `nodesPerRun` × `ranksPerNode` (default: `gpusPerRun`, else 1) per run. With more than
 * one, the element starts them with `srun` in torchrun's environment (RANK = SLURM_PROCID,
 * WORLD_SIZE = SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, MASTER_ADDR = the first node, a port
 * from the job id): the run trains data parallel (src/train/distributed.ts), rank 0 writes, and
 * a stop request reaches every rank through the same stop file (they agree on the step).
 * `cpusPerRun` is per node, shared among its ranks.
 *
 * References: sbatch(1) (`--array`, `--requeue`, `--signal=B:USR1@120`, `--dependency=afterany`,
 * `--parsable`), squeue(1) `--Format`, scontrol(1) `requeue`; sysexits.h (EX_TEMPFAIL = 75).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { z } from "zod";
import { expandGrid, loadStudy, SlurmSchema, type Study } from "./config.js";
import { RunLockedError } from "./lock.js";
import { type RunnerOptions } from "./run.js";
import { prepareStudy, runCell, studyProgress } from "./study.js";
import {
  clearStop,
  handleStopSignals,
  signalExitCode,
  StopRequested,
  watchStopFile,
} from "../train/stop.js";
import { makeDir, writeAtomic } from "../util/fs.js";
import { currentDist } from "../dist/index.js";
import { parseWith } from "../util/schema.js";

/** The settings of a submission: the study's `slurm:` section overridden by the command line. */
export type SlurmSettings = z.output<typeof SlurmSchema>;

/** Exit status of `lethe run-one` that asks the batch script to requeue the element. */
export const EXIT_REQUEUE = 75;
/** Requeues of a run that keeps failing, when neither the config nor the command line says. */
export const DEFAULT_MAX_RETRIES = 2;
/** Seconds before the time limit at which Slurm sends SIGUSR1 to the batch script. */
export const SIGNAL_LEAD_SECONDS = 120;
/** The file the batch script writes the signal's name into (in the run folder). */
export const STOP_FILE = "stop-requested";

const SLURM_DIR = "slurm";
const JOBS_FILE = "jobs.json";
const RECORD_FILE = "slurm.json";
/** A run's log: the element's job id is filled in (Slurm's %j). */
const logName = (job: string) => `slurm-${job}.out`;

const JOBS_FORMAT = { name: "lethe-slurm-jobs", version: 1 } as const;
const RECORD_FORMAT = { name: "lethe-slurm-element", version: 1 } as const;

const SubmissionSchema = z.object({
  arrayJob: z.string(),
  reportJob: z.string(),
  /** Element index (the run's index in the grid) → run folder name. */
  runs: z.record(z.string(), z.string()),
  settings: SlurmSchema,
  at: z.string(),
});
export type Submission = z.output<typeof SubmissionSchema>;

const JobsSchema = z.object({
  format: z.object({ name: z.literal(JOBS_FORMAT.name), version: z.literal(JOBS_FORMAT.version) }),
  submissions: z.array(SubmissionSchema),
});

const ELEMENT_STATES = ["running", "completed", "stopped", "requeued", "failed"] as const;
const RecordSchema = z.object({
  format: z.object({
    name: z.literal(RECORD_FORMAT.name),
    version: z.literal(RECORD_FORMAT.version),
  }),
  arrayJob: z.string(),
  job: z.string(),
  task: z.number().int(),
  node: z.string(),
  log: z.string(),
  restarts: z.number().int(),
  state: z.enum(ELEMENT_STATES),
  /** Failures of this run in this array job so far (each one requeued while retries are left). */
  failures: z.number().int(),
  /** What ended it: the error, or the signal that stopped it. */
  reason: z.string().nullable(),
  updated: z.string(),
});
export type ElementRecord = z.output<typeof RecordSchema>;

const readJson = (file: string): unknown => {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
};
const json = (v: unknown) => JSON.stringify(v, null, 1) + "\n";

// ---------------------------------------------------------------------------------------------
// Slurm's commands

/** Runs a Slurm command; its stdout, or an error naming the command and what it said. */
function slurm(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(
      missing
        ? `${cmd} not found: run this on a Slurm cluster (for a local test cluster: bash scripts/slurm-local.sh start, then export SLURM_CONF)`
        : `${cmd}: ${r.error.message}`,
    );
  }
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(" ")} failed (exit status ${r.status}): ${(r.stderr || r.stdout).trim()}`,
    );
  return r.stdout;
}

/** `sbatch --parsable …`: the job id. */
function sbatch(args: string[]): string {
  const out = slurm("sbatch", ["--parsable", ...args]).trim();
  const id = out.split(";")[0]; // "<id>[;<cluster>]"
  if (!/^\d+$/.test(id)) throw new Error(`sbatch ${args.join(" ")}: unexpected answer "${out}"`);
  return id;
}

/** One line of squeue: an array element (task set) or a plain job (task null). */
export interface QueueEntry {
  arrayJob: string;
  task: number | null;
  job: string;
  /** Slurm's state: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, … */
  state: string;
  nodes: string;
  reason: string;
  restarts: number;
}

const SQUEUE_FIELDS = "ArrayJobID,ArrayTaskID,JobID,State,NodeList,Reason,RestartCnt";

/** squeue's lines of these jobs (array elements one by one), recently ended ones included. */
export function queueOf(jobs: string[]): QueueEntry[] {
  if (jobs.length === 0) return [];
  let out: string;
  try {
    out = slurm("squeue", [
      "--noheader",
      "--array",
      "--states=all",
      `--jobs=${jobs.join(",")}`,
      `--Format=${SQUEUE_FIELDS.split(",")
        .map((f) => `${f}:|`)
        .join(",")}`,
    ]);
  } catch (e) {
    if (/Invalid job id/i.test((e as Error).message)) return []; // all of them long gone
    throw e;
  }
  return out
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line) => {
      const [arrayJob, task, job, state, nodes, reason, restarts] = line
        .split("|")
        .map((s) => s.trim());
      return {
        arrayJob,
        task: /^\d+$/.test(task) ? Number(task) : null,
        job,
        state,
        nodes,
        reason,
        restarts: Number(restarts) || 0,
      };
    });
}

/** Slurm states of a job that is not over yet. */
const LIVE =
  /^(PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_|RESIZING|STAGE_OUT|SIGNALING)/;
const isLive = (e: QueueEntry) => LIVE.test(e.state);

// ---------------------------------------------------------------------------------------------
// Settings and scripts

/** A value that goes into an `#SBATCH` line as is: no whitespace, quotes or newlines. */
function checkWord(value: string, what: string): void {
  if (/[\s'"\\]/.test(value))
    throw new Error(
      `${what} "${value}": no whitespace, quotes or backslashes (write --opt=value, one option each)`,
    );
}

/**
 * The settings of a submission: the study's `slurm:` section (checked when the config loaded),
 * overridden field by field by the command line's `flags` (checked here, naming the field).
 */
export function slurmSettings(study: Study, flags: SlurmSettings): SlurmSettings {
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const settings = { ...study.config.slurm, ...parseWith(SlurmSchema, given, "command line") };
  for (const k of ["partition", "account"] as const)
    if (settings[k] !== undefined) checkWord(settings[k], k);
  for (const a of settings.sbatchArgs ?? []) checkWord(a, "sbatch argument");
  return settings;
}

/** The sbatch options of one run (an array element): resources and limits. */
function runOptions(s: SlurmSettings): string[] {
  return [
    ...(s.partition ? [`--partition=${s.partition}`] : []),
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.time ? [`--time=${s.time}`] : []),
    `--nodes=${s.nodesPerRun ?? 1}`,
    `--ntasks-per-node=${ranksPerNode(s)}`,
    `--cpus-per-task=${Math.max(1, Math.floor((s.cpusPerRun ?? 1) / ranksPerNode(s)))}`,
    ...(s.gpusPerRun ? [`--gpus-per-node=${s.gpusPerRun}`] : []),
    ...(s.mem ? [`--mem=${s.mem}`] : []),
    ...(s.sbatchArgs ?? []),
  ];
}

/** Ranks (srun tasks) per node of each run. */
export function ranksPerNode(s: SlurmSettings): number {
  return s.ranksPerNode ?? (s.gpusPerRun || 1);
}

/** A string as one bash word. */
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** How the batch scripts start lethe: this Node.js and this checkout's bin/lethe.js. */
export interface LetheCommand {
  node: string;
  lethe: string;
}

/**
 * The element's command line: as is for one rank; else under `srun`, one task per rank, each in
 * torchrun's environment (a single-quoted `bash -c` so that each task expands its own ids).
 */
function launch(cmd: string, ranks: number): string {
  if (ranks === 1) return cmd;
  const env = [
    "RANK=$SLURM_PROCID",
    "WORLD_SIZE=$SLURM_NTASKS",
    "LOCAL_RANK=$SLURM_LOCALID",
    "LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE",
  ].join(" ");
  return `export DIR
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))
srun --kill-on-bad-exit=1 --ntasks=${ranks} bash -c ${sh(`${env} exec ${cmd}`)}`;
}

/** DIR/slurm/array.sbatch: element i runs the grid's run i. */
export function arrayScript(
  dir: string,
  study: Study,
  s: SlurmSettings,
  cmd: LetheCommand,
): string {
  const runs = expandGrid(study).map((r) => r.name);
  const sbatchLines = [
    `--job-name=lethe-${study.config.name}`,
    "--requeue",
    `--signal=B:USR1@${SIGNAL_LEAD_SECONDS}`,
    "--open-mode=append",
    `--output=${join(dir, SLURM_DIR, "array-%A_%a.out")}`,
    ...runOptions(s),
  ].map((o) => `#SBATCH ${o}`);
  return `#!/bin/bash
# Written by \`lethe submit\` (src/continual/slurm.ts) for the study in ${dir}.
# Element i runs \`lethe run-one DIR i\`: the grid's run i, logged to runs/<run>/slurm-<job id>.out.
# SIGUSR1 (${SIGNAL_LEAD_SECONDS} s before the time limit) and SIGTERM (preemption, requeue, scancel) write
# the signal's name into runs/<run>/${STOP_FILE}: lethe checkpoints at its next step, releases
# the run and exits. Exit status ${EXIT_REQUEUE} asks this script to requeue the element, unless
# SIGTERM came (scancel, preemption, scontrol requeue): Slurm decides then, and a cancelled
# element must not requeue itself when its run failed just before the signal.
${sbatchLines.join("\n")}
set -u
DIR=${sh(dir)}
RUNS=(${runs.map(sh).join(" ")})
RUN=\${RUNS[$SLURM_ARRAY_TASK_ID]}
mkdir -p "$DIR/runs/$RUN"
exec >>"$DIR/runs/$RUN/slurm-$SLURM_JOB_ID.out" 2>&1
echo "lethe: element \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID} (job $SLURM_JOB_ID, restart \${SLURM_RESTART_COUNT:-0}) on $(hostname -s) at $(date -Is)"
export LETHE_THREADS="\${LETHE_THREADS:-\${SLURM_CPUS_PER_TASK:-1}}" # libtorch's threads: the CPUs granted
export LETHE_STOP_FILE="$DIR/runs/$RUN/${STOP_FILE}"
rm -f "$LETHE_STOP_FILE"
trap 'echo SIGUSR1 >"$LETHE_STOP_FILE"' USR1
TERMINATED=0
trap 'echo SIGTERM >"$LETHE_STOP_FILE"; TERMINATED=1' TERM
${launch(`${sh(cmd.node)} ${sh(cmd.lethe)} run-one "$DIR" "$SLURM_ARRAY_TASK_ID" --max-retries ${s.maxRetries ?? DEFAULT_MAX_RETRIES}`, (s.nodesPerRun ?? 1) * ranksPerNode(s))} &
pid=$!
# wait returns early when a trapped signal arrives: wait again until lethe has exited.
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
rm -f "$LETHE_STOP_FILE"
if [ "$rc" -eq ${EXIT_REQUEUE} ] && [ "$TERMINATED" -eq 0 ]; then
  # The element by its array name: the last element's SLURM_JOB_ID is the whole array's id.
  echo "lethe: requeueing \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID} at $(date -Is)"
  scontrol requeue "\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"
fi
exit "$rc"
`;
}

/** DIR/slurm/report.sbatch: the status table (failed runs with their logs) and the report. */
export function reportScript(
  dir: string,
  study: Study,
  s: SlurmSettings,
  cmd: LetheCommand,
): string {
  const sbatchLines = [
    `--job-name=lethe-${study.config.name}-report`,
    `--output=${join(dir, SLURM_DIR, "report-%j.out")}`,
    ...(s.partition ? [`--partition=${s.partition}`] : []),
    ...(s.account ? [`--account=${s.account}`] : []),
    "--nodes=1",
    "--ntasks=1",
    "--cpus-per-task=1",
    ...(s.sbatchArgs ?? []),
  ].map((o) => `#SBATCH ${o}`);
  const lethe = `${sh(cmd.node)} ${sh(cmd.lethe)}`;
  return `#!/bin/bash
# Written by \`lethe submit\` (src/continual/slurm.ts): runs once the study's job array has ended,
# whatever its outcome. status.txt lists every run with its Slurm outcome (failed runs with their
# error's log); report.html and fg.* hold the runs that produced results.
${sbatchLines.join("\n")}
set -u
DIR=${sh(dir)}
${lethe} status "$DIR" >"$DIR/status.txt.tmp-$$" && mv "$DIR/status.txt.tmp-$$" "$DIR/status.txt"
cat "$DIR/status.txt"
${lethe} report "$DIR"
`;
}

// ---------------------------------------------------------------------------------------------
// Submitting

export function readJobs(dir: string): Submission[] {
  const file = join(dir, SLURM_DIR, JOBS_FILE);
  if (!existsSync(file)) return [];
  return parseWith(JobsSchema, readJson(file), file).submissions;
}

/** Array elements and jobs of earlier submissions that are still pending or running. */
function liveRuns(submissions: Submission[]): Set<string> {
  const live = new Set<string>();
  const queue = queueOf(submissions.map((s) => s.arrayJob));
  for (const s of submissions)
    for (const e of queue)
      if (e.arrayJob === s.arrayJob && e.task !== null && isLive(e) && s.runs[e.task] !== undefined)
        live.add(s.runs[e.task]);
  return live;
}

export interface SubmitResult {
  /** Null when every run was complete or still queued: nothing was submitted. */
  arrayJob: string | null;
  reportJob: string | null;
  /** The runs submitted, by element index. */
  runs: Record<string, string>;
  /** Runs left out because an earlier submission still has them pending or running. */
  queued: string[];
}

/**
 * Writes the study folder as `lethe run` does (study.yaml; each element makes its run's folder
 * and config.yaml when it starts, so `lethe status` says "not started" until then) and the batch
 * scripts, then submits one array element per run that is neither complete nor still queued from
 * an earlier submission, and the report job after them.
 */
export function submitStudy(
  study: Study,
  dir: string,
  settings: SlurmSettings,
  cmd: LetheCommand,
  o: RunnerOptions = {},
): SubmitResult {
  prepareStudy(study, dir);
  const earlier = readJobs(dir);
  const queued = liveRuns(earlier);
  const runs: Record<string, string> = {};
  const progress = studyProgress(dir); // the grid in order, then other run folders
  expandGrid(study).forEach((spec, i) => {
    if (progress[i].complete || queued.has(spec.name)) return;
    runs[i] = spec.name;
  });
  for (const name of queued) o.log?.(`${name}: still queued by an earlier submission`);
  const indices = Object.keys(runs);
  if (indices.length === 0) return { arrayJob: null, reportJob: null, runs, queued: [...queued] };
  const slurmDir = join(dir, SLURM_DIR);
  makeDir(slurmDir);
  const arrayFile = join(slurmDir, "array.sbatch");
  const reportFile = join(slurmDir, "report.sbatch");
  writeAtomic(arrayFile, arrayScript(dir, study, settings, cmd));
  writeAtomic(reportFile, reportScript(dir, study, settings, cmd));
  const arrayJob = sbatch([`--array=${indices.join(",")}`, arrayFile]);
  let reportJob: string;
  try {
    reportJob = sbatch([`--dependency=afterany:${arrayJob}`, reportFile]);
  } catch (e) {
    spawnSync("scancel", [arrayJob]);
    throw e;
  }
  const submission: Submission = { arrayJob, reportJob, runs, settings, at: now() };
  writeAtomic(
    join(slurmDir, JOBS_FILE),
    json({ format: JOBS_FORMAT, submissions: [...earlier, submission] }),
  );
  return { arrayJob, reportJob, runs, queued: [...queued] };
}

/** The settings of the study folder's last submission (`lethe resume --slurm`). */
export function lastSettings(dir: string): SlurmSettings | null {
  return readJobs(dir).at(-1)?.settings ?? null;
}

/** Cancels every job of the study that is still pending or running; returns their ids. */
export function cancelStudy(dir: string): string[] {
  const submissions = readJobs(dir);
  if (submissions.length === 0) throw new Error(`${dir}: no Slurm submission (no slurm/jobs.json)`);
  const jobs = submissions.flatMap((s) => [s.arrayJob, s.reportJob]);
  const live = queueOf(jobs).filter(isLive);
  const ids = [...new Set(live.map((e) => (e.task === null ? e.job : `${e.arrayJob}_${e.task}`)))];
  if (ids.length > 0) slurm("scancel", ids);
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Status

/** A run's state on the cluster, for `lethe status`. */
export interface SlurmRunState {
  /** The array element, `<array job>_<index>`. */
  element: string;
  /** pending, running, completed, failed, stopped, requeued, cancelled, lost or not run. */
  state: string;
  /** Where it runs, while it runs. */
  node: string | null;
  /** How often Slurm requeued it. */
  restarts: number;
  /** The element's log, once it started. */
  log: string | null;
  /** The table's cell: `running on node1`, `pending, requeued 1×`, `failed, log runs/…`. */
  text: string;
}

export interface SlurmStatus {
  /** Run folder name → its element in the latest submission that had it. */
  runs: Map<string, SlurmRunState>;
  /** The last submission's report job: `<id> pending`, `<id> completed`, … */
  report: string;
  /** Why squeue could not be asked (then only what the runs wrote is shown); else null. */
  unreachable: string | null;
}

/** The study folder's runs on the cluster; null when the study was never submitted. */
export function slurmStatus(dir: string): SlurmStatus | null {
  const submissions = readJobs(dir);
  if (submissions.length === 0) return null;
  let queue: QueueEntry[] = [];
  let unreachable: string | null = null;
  try {
    queue = queueOf(submissions.flatMap((s) => [s.arrayJob, s.reportJob]));
  } catch (e) {
    unreachable = (e as Error).message; // not on the cluster: what the runs wrote still tells
  }
  const runs = new Map<string, SlurmRunState>();
  for (const s of submissions)
    for (const [index, name] of Object.entries(s.runs)) {
      const entry = queue.find((e) => e.arrayJob === s.arrayJob && String(e.task) === index);
      runs.set(name, runState(dir, name, s, Number(index), entry ?? null));
    }
  const last = submissions.at(-1)!;
  const report = queue.find((e) => e.job === last.reportJob && e.task === null);
  const reportText = report
    ? `${report.state.toLowerCase()}${report.state === "PENDING" ? ` (${report.reason})` : ""}`
    : existsSync(join(dir, "status.txt"))
      ? "done"
      : "gone";
  return { runs, report: `job ${last.reportJob} ${reportText}`, unreachable };
}

function runState(
  dir: string,
  name: string,
  s: Submission,
  index: number,
  entry: QueueEntry | null,
): SlurmRunState {
  const element = `${s.arrayJob}_${index}`;
  const record = readRecord(join(dir, "runs", name));
  const mine = record !== null && record.arrayJob === s.arrayJob ? record : null;
  const started = entry ? join("runs", name, logName(entry.job)) : null; // a log, once it ran
  const log = mine
    ? relative(dir, mine.log)
    : started !== null && existsSync(join(dir, started))
      ? started
      : null;
  const restarts = Math.max(entry?.restarts ?? 0, mine?.restarts ?? 0);
  const requeued = restarts > 0 ? `, requeued ${restarts}×` : "";
  const out = (state: string, text: string, node: string | null = null): SlurmRunState => ({
    element,
    state,
    node,
    restarts,
    log,
    text,
  });
  if (entry?.state === "CANCELLED")
    return out("cancelled", log ? `cancelled, log ${log}` : "cancelled");
  if (entry && isLive(entry)) {
    if (entry.state === "RUNNING")
      return out("running", `running on ${entry.nodes}${requeued}`, entry.nodes);
    if (entry.state === "PENDING") return out("pending", `pending${requeued}`);
    return out(entry.state.toLowerCase(), entry.state.toLowerCase() + requeued);
  }
  if (mine === null) return out("not run", "not run");
  switch (mine.state) {
    case "completed":
      return out("completed", `completed${requeued}`);
    case "failed":
      return out("failed", `failed${requeued}, log ${log}`);
    case "stopped":
      return out("stopped", `stopped by ${mine.reason}, log ${log}`);
    case "requeued":
      return out("requeued", `requeued, log ${log}`);
    case "running":
      // It said it started and never said how it ended: killed (time limit, memory, the node).
      return out("lost", `lost (killed?), log ${log}`);
  }
}

export function readRecord(runDir: string): ElementRecord | null {
  const file = join(runDir, RECORD_FILE);
  return existsSync(file) ? parseWith(RecordSchema, readJson(file), file) : null;
}

// ---------------------------------------------------------------------------------------------
// One element

const now = () => new Date().toISOString();

export interface ElementOptions extends RunnerOptions {
  /** Requeues of a run that keeps failing. @default DEFAULT_MAX_RETRIES */
  maxRetries?: number;
  /** The file the batch script writes a signal's name into. @default $LETHE_STOP_FILE */
  stopFile?: string | null;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * `lethe run-one DIR INDEX`: run INDEX of the study's grid, through the same runCell as
 * `lethe run`. SIGUSR1 and SIGTERM (and the stop file) stop it gracefully. Under Slurm it writes
 * the run's slurm.json. Returns the exit status for the batch script: 0 complete, EXIT_REQUEUE
 * (stopped by SIGUSR1, or failed with retries left), 128 + n (stopped by signal n), 1 failed.
 */
export async function runElement(
  dir: string,
  index: number,
  o: ElementOptions = {},
): Promise<number> {
  const env = o.env ?? process.env;
  const study = loadStudy(join(dir, "study.yaml"));
  const grid = expandGrid(study);
  const spec = grid[index];
  if (spec === undefined)
    throw new Error(
      `${join(dir, "study.yaml")}: the grid has runs 0 to ${grid.length - 1}, not ${index}`,
    );
  const runDir = join(dir, "runs", spec.name);
  const main = currentDist()?.isMain ?? true; // several ranks (srun): rank 0 writes
  if (main) makeDir(runDir);
  const job = env.SLURM_JOB_ID;
  const arrayJob = env.SLURM_ARRAY_JOB_ID ?? job;
  const previous = readRecord(runDir);
  let failures = previous !== null && previous.arrayJob === arrayJob ? previous.failures : 0;
  const record = (state: ElementRecord["state"], reason: string | null) => {
    if (job === undefined || !main) return; // not under Slurm, or not rank 0
    const r: ElementRecord = {
      format: RECORD_FORMAT,
      arrayJob: arrayJob!,
      job,
      task: index,
      node: env.SLURMD_NODENAME ?? hostname(),
      log: join(runDir, logName(job)),
      restarts: Number(env.SLURM_RESTART_COUNT ?? 0) || 0,
      state,
      failures,
      reason,
      updated: now(),
    };
    writeAtomic(join(runDir, RECORD_FILE), json(r));
  };
  const maxRetries = o.maxRetries ?? DEFAULT_MAX_RETRIES;
  watchStopFile(o.stopFile === undefined ? (env.LETHE_STOP_FILE ?? null) : o.stopFile);
  const unhandle = handleStopSignals();
  record("running", null);
  try {
    await runCell(study, dir, spec, o);
    record("completed", null);
    return 0;
  } catch (e) {
    if (e instanceof StopRequested) {
      o.log?.(`[${spec.name}] ${e.message}; the run continues from there when started again`);
      const requeue = e.reason === "SIGUSR1";
      record(requeue ? "requeued" : "stopped", e.reason);
      return requeue ? EXIT_REQUEUE : (signalExitCode(e.reason) ?? 1);
    }
    const message = (e as Error).message;
    // Another live process holds the run: not this run's failure, and no retry helps.
    if (!(e instanceof RunLockedError)) failures++;
    const retry = job !== undefined && !(e instanceof RunLockedError) && failures <= maxRetries;
    record(retry ? "requeued" : "failed", message);
    if (!retry) throw e;
    o.log?.(
      `[${spec.name}] failed (attempt ${failures} of ${maxRetries + 1}): ${message}; requeueing`,
    );
    return EXIT_REQUEUE;
  } finally {
    unhandle();
    clearStop();
  }
}
