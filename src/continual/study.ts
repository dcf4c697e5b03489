/**
 * A study folder: its grid (`study.yaml`), one folder per cell under `runs/`, and how far each
 * cell is. `runStudy` and `resumeRuns` run every cell from wherever it stopped (run.ts runs one);
 * `studyProgress`, `runProgress` and `runState` are what `lethe status`, `lethe serve` and Slurm
 * read. The layout of a study and a run folder is described in run.ts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { expandGrid, loadStudy, runConfig, type RunSpec, type Study } from "./config.js";
import { isLocked, RunLockedError, type LockInfo } from "./lock.js";
import { type RunResults } from "./results.js";
import { makeDir, removeStaleTemps, writeAtomic } from "../util/fs.js";
import {
  executeRun,
  FAILED_FILE,
  RUN_FILE,
  STUDY_FILE,
  isMain,
  type RunnerOptions,
} from "./run.js";
import { stagesDone } from "./results.js";

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;

// ---------------------------------------------------------------------------------------------
// Studies

/** Runs (or continues) every cell of a study in `outDir`; returns the run folders it completed. */
export async function runStudy(
  study: Study,
  outDir: string,
  o: RunnerOptions = {},
): Promise<string[]> {
  prepareStudy(study, outDir);
  return runGrid(study, outDir, o);
}

/** Writes `outDir/study.yaml` (and runs/), or checks that the one there is this study's. */
export function prepareStudy(study: Study, outDir: string): void {
  if (!isMain()) return; // rank 0 writes; executeRun's lock handshake orders the others after it
  makeDir(join(outDir, "runs"));
  const studyFile = join(outDir, STUDY_FILE);
  const text = toYaml(study.config);
  if (existsSync(studyFile) && readFileSync(studyFile, "utf8") !== text)
    throw new Error(
      `${studyFile}: ${outDir} holds a study with another config; use another --out or \`lethe resume ${outDir}\``,
    );
  if (!existsSync(studyFile)) writeAtomic(studyFile, text);
}

/**
 * Every cell of the study's grid in `outDir`, in order: its folder and config.yaml are made when
 * missing, then it runs from wherever it stopped. A cell that another live process holds is
 * skipped with a note (studyProgress then shows it incomplete). Returns the folders completed.
 */
async function runGrid(study: Study, outDir: string, o: RunnerOptions): Promise<string[]> {
  if (isMain()) removeStaleTemps(outDir, { recursive: false }); // the report's files; runs/ and cache/ by run
  const dirs: string[] = [];
  const grid = expandGrid(study);
  for (const [i, spec] of grid.entries()) {
    o.log?.(`run ${i + 1}/${grid.length}: ${spec.name}`);
    try {
      dirs.push(await runCell(study, outDir, spec, o));
    } catch (e) {
      if (!(e instanceof RunLockedError)) throw e;
      o.log?.(`[${spec.name}] skipped: ${e.message}`);
    }
  }
  return dirs;
}

/** Makes a cell's folder and config.yaml under `outDir/runs/` when missing (else checks them). */
export function prepareRun(study: Study, outDir: string, spec: RunSpec): string {
  const dir = join(outDir, "runs", spec.name);
  if (!isMain()) return dir;
  makeDir(dir);
  const file = join(dir, RUN_FILE);
  const runText = toYaml(runConfig(study, spec));
  if (!existsSync(file)) writeAtomic(file, runText);
  else if (readFileSync(file, "utf8") !== runText)
    throw new Error(`${file}: differs from the study's config for this run`);
  return dir;
}

/** One cell of a study's grid, from wherever it stopped: `lethe run` and a Slurm element alike. */
export async function runCell(
  study: Study,
  outDir: string,
  spec: RunSpec,
  o: RunnerOptions = {},
): Promise<string> {
  const dir = prepareRun(study, outDir, spec);
  await executeRun(dir, study.config.cacheDir ?? join(outDir, "cache"), o);
  return dir;
}

/**
 * Finishes a study folder: every cell of the grid in its study.yaml, those never started
 * included; or one run folder. Returns the run folders completed.
 */
export async function resumeRuns(dir: string, o: RunnerOptions = {}): Promise<string[]> {
  if (existsSync(join(dir, RUN_FILE))) {
    const study = loadStudy(join(dir, RUN_FILE));
    await executeRun(dir, study.config.cacheDir ?? join(dir, "..", "..", "cache"), o);
    return [dir];
  }
  return runGrid(loadStudy(studyFileOf(dir)), dir, o);
}

function studyFileOf(dir: string): string {
  const file = join(dir, STUDY_FILE);
  if (!existsSync(file))
    throw new Error(`${dir}: neither a run (no ${RUN_FILE}) nor a study (no ${STUDY_FILE})`);
  return file;
}

export const STATES = ["complete", "running", "failed", "stopped", "not started"] as const;

/**
 * complete; running: a live process (or one on another host) holds its lock; failed: it stopped
 * on an error (failed.json holds it); stopped: started, incomplete, held by no live process and
 * not failed (interrupted: killed, or the machine went down); not started.
 */
export type RunState = (typeof STATES)[number];

/** A run's state, and the process holding its lock (null unless it is running). */
export function runState(p: RunStatus): { state: RunState; holder: LockInfo | null } {
  const holder = p.started && !p.complete ? isLocked(p.dir) : null;
  const state = p.complete
    ? "complete"
    : holder
      ? "running"
      : p.failed !== null
        ? "failed"
        : p.started
          ? "stopped"
          : "not started";
  return { state, holder };
}

export interface RunStatus {
  dir: string;
  /** Whether the run's folder and config.yaml exist. */
  started: boolean;
  stagesDone: number;
  totalStages: number;
  complete: boolean;
  fg: Record<string, number> | null;
  /** The error it last stopped on (failed.json), if it did; null otherwise. */
  failed: string | null;
}

/**
 * Every run of a study folder, started or not: the grid of its study.yaml in order, then any
 * other run folder under runs/. For a run folder, that run.
 */
export function studyProgress(dir: string): RunStatus[] {
  if (existsSync(join(dir, RUN_FILE))) return [{ dir, started: true, ...runProgress(dir) }];
  const study = loadStudy(studyFileOf(dir));
  const status = (d: string, totalStages: number): RunStatus =>
    existsSync(join(d, RUN_FILE))
      ? { dir: d, started: true, ...runProgress(d) }
      : {
          dir: d,
          started: false,
          stagesDone: 0,
          totalStages,
          complete: false,
          fg: null,
          failed: null,
        };
  const out = expandGrid(study).map((spec) =>
    status(join(dir, "runs", spec.name), spec.order.tasks.length + 1),
  );
  const runs = join(dir, "runs");
  const known = new Set(out.map((r) => r.dir));
  if (existsSync(runs))
    for (const name of readdirSync(runs).sort()) {
      const d = join(runs, name);
      if (!known.has(d) && existsSync(join(d, RUN_FILE))) out.push(status(d, 0));
    }
  return out;
}

/** How far a run is: stages done (of 1 + tasks) and the last FG per category. */
export function runProgress(dir: string): {
  stagesDone: number;
  totalStages: number;
  complete: boolean;
  fg: Record<string, number> | null;
  failed: string | null;
} {
  const study = loadStudy(join(dir, RUN_FILE));
  const total = study.orders[0].tasks.length + 1;
  const done = stagesDone(dir, total);
  const file = join(dir, "results.json");
  const fg = existsSync(file) ? readJson<RunResults>(file).fg.perCategory : null;
  const failedFile = join(dir, FAILED_FILE);
  const failed = existsSync(failedFile) ? readJson<{ error: string }>(failedFile).error : null;
  return { stagesDone: done, totalStages: total, complete: done === total, fg, failed };
}
