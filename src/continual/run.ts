/**
 * The study runner. A study directory holds `study.yaml` (the resolved config), `cache/` (the
 * evaluation cache every run shares, and file hashes) and one folder per grid cell under `runs/`:
 *
 *     runs/<model>__<method>__<order>__seed<s>/
 *       config.yaml      the run's own config (one model, method, order, seed; absolute paths)
 *       run-card.json    runcard.ts: written once the run's data has loaded, again on every resume
 *       lock/            lock.ts: one process per run
 *       checkpoints/<m>-<task>/ckpt-<step>/   the trainer's (src/train/trainer.ts), as `keep` says
 *       stages/<m>/general.json   lm-eval results layout of the general suite
 *       stages/<m>/tasks.json     every continual task's generation metric
 *       stages/<m>/items/<name>.jsonl   per item: {doc_id, correct, text | prediction, …}
 *       stages/<m>/model.sha256   the evaluated model's fingerprint (the evaluation cache key)
 *       results.json     results.ts, rewritten after every stage (no timings: byte-comparable)
 *       timings.json     wall seconds per stage: train, eval, bookkeeping; training tokens/s;
 *                        16-mixed: optimizer steps skipped for inf/NaN gradients
 *       events.jsonl     events.ts: the run's event log (steps, stages, evaluations, errors)
 *
 * A run evaluates the base model (stage 0); then for each task of its order it trains, evaluates
 * the general benchmarks and every task of the order (seen and still to come, for forward
 * transfer), writes the stage's files, and moves on. A stage counts as done when its tasks.json
 * exists (written last, atomically); results.json is always rebuilt from the stage files on disk,
 * so a run killed at any point and resumed writes the same bytes as one never interrupted.
 * Resuming also removes the temporary files a kill left (`*.tmp-<pid>` of dead processes).
 * A graceful stop (src/train/stop.ts: a Slurm element's SIGUSR1/SIGTERM) ends the run at the next
 * training step with a checkpoint, or before the next stage or evaluation, without failed.json.
 *
 * `study.yaml` is the grid: resuming a study runs every cell of it, including cells whose folder a
 * kill prevented from being made, and status lists those as not started.
 *
 * Evaluation results are cached by model fingerprint: stage 0 hashes the base model (and the
 * precision, when the config states one), stage m chains stage m−1's fingerprint with the sha256
 * of stage m's final checkpoint files. A resume reads it back from the last finished stage's
 * model.sha256 (runs older than that file chain it again from the checkpoints).
 *
 * Precision (src/train/precision.ts): the train section's `precision` applies to training and to
 * every evaluation of the run (scoring under autocast for the mixed modes, float32 logits).
 *
 * Memory: the runner holds one copy of the weights. θ₀, a second copy, is loaded only for a
 * method that declares `needsStartWeights` (L2-SP, WiSE-FT, LwF "start", in full fine-tuning);
 * a log line (`weights held: …`) states the parameter bytes held. A finished stage's checkpoint
 * holds no optimizer state; `keep: none` also removes a finished stage's checkpoint once the next
 * stage is done (and the last one when the run completes), so only a resume's needs stay on disk.
 *
 * References: Luo et al. 2023, arXiv 2308.08747 (protocol: general benchmarks after every
 * stage, FG per category); Lopez-Paz & Ranzato 2017 (the accuracy matrix, BWT, FWT).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { stringify as toYaml } from "yaml";
import { keep as keepTensor, type Tensor } from "../tensor/index.js";
import { currentDist, type Dist } from "../dist/index.js";
import { createModel, parseModelConfig, type LanguageModel } from "../models/index.js";
import { applyLora } from "../models/lora.js";
import {
  loadLoraAdapter,
  mergeLoraAdapter,
  readAdapterConfig,
  resolveAdapter,
} from "../io/peft.js";
import { loadTensors } from "../io/checkpoint.js";
import { loadPretrained } from "../io/pretrained.js";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { sha256File } from "../io/hash.js";
import type { SftText } from "../train/data.js";
import { trainStage } from "../train/trainer.js";
import { DEFAULT_KEEP } from "../train/config.js";
import { StopRequested, throwIfStopRequested } from "../train/stop.js";
import {
  applyPrecision,
  POLICIES,
  precisionView,
  resolvePrecision,
  tensorBytes,
  type Precision,
} from "../train/precision.js";
import { filesFingerprint, moduleFingerprint, ResultCache } from "../eval/cache.js";
import { emptyResults, evaluate, type EvalResults } from "../eval/evaluate.js";
import { ModelLM } from "../eval/model_lm.js";
import { getGenerationMetric } from "../eval/metrics/index.js";
import { getTask as getEvalTask } from "../eval/tasks/index.js";
import {
  expandGrid,
  loadStudy,
  runConfig,
  type Benchmark,
  type ModelSpec,
  type RunSpec,
  type Study,
} from "./config.js";
import { renderPrompt, resolveTemplate, type InstructionTask } from "./instruction.js";
import { acquireLock, isLocked, RunLockedError, type LockInfo, type RunLock } from "./lock.js";
import { createMethods, needsStartWeights } from "./methods/index.js";
import { stageTrainConfig } from "./methods/method.js";
import {
  avgAcc,
  bootstrapCI,
  bwt,
  fgByCategory,
  fgFromItems,
  finalAcc,
  forgetting,
  fwt,
  itemFlips,
  plasticity,
} from "./metrics.js";
import { RESULTS_FORMAT, type MetricScores, type RunResults } from "./results.js";
import { dataFiles, FileHashes, makeRunCard } from "./runcard.js";
import { exportStage } from "./export.js";
import { loadTask } from "./tasks/index.js";
import { progressPrinter, type ProgressStream } from "../train/progress.js";
import { EventLog, eventsFile, type RunEvent } from "./events.js";
import { makeDir, removeStaleTemps, writeAtomic } from "../util/fs.js";

export interface RunnerOptions {
  /** Progress lines (one per event). @default none */
  log?: (line: string) => void;
  /** Where training progress goes (progress.ts: redrawn on a TTY). @default plain lines to `log` */
  progress?: ProgressStream;
  /** Each event of a run's event log (events.ts) as it is written, with the run's folder. */
  onEvent?: (dir: string, e: RunEvent) => void;
}

/** One evaluated item, as written to `stages/<m>/items/<name>.jsonl`. */
export interface ItemRecord {
  doc_id: string;
  correct: boolean;
  [field: string]: unknown;
}

/** timings.json: wall seconds per stage (not in results.json, which stays byte-comparable). */
export interface Timings {
  stages: {
    stage: number;
    train: number;
    eval: number;
    bookkeeping: number;
    tokensPerSecond: number | null;
    /** 16-mixed only: optimizer steps of the stage skipped for an inf/NaN gradient. */
    skippedSteps?: number;
  }[];
}

const STUDY_FILE = "study.yaml";
const RUN_FILE = "config.yaml";
/** Written when a run stops on an error (removed when it starts again): `{ "error": … }`. */
const FAILED_FILE = "failed.json";

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
const json = (v: unknown) => JSON.stringify(v, null, 1) + "\n";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

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

/** Number of consecutive stages, from 0, whose tasks.json exists. */
function stagesDone(dir: string, total: number): number {
  let m = 0;
  while (m < total && existsSync(join(dir, "stages", String(m), "tasks.json"))) m++;
  return m;
}

// ---------------------------------------------------------------------------------------------
// One run

interface Base {
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** The model folder read (for `ref`), else null. */
  dir: string | null;
  /** The folder of the spec's starting adapter (`adapter`), else null. */
  adapter: string | null;
}

/** A `build` model: seeded random weights, in the spec's dtype and on its device. */
function buildModel(spec: ModelSpec): LanguageModel {
  if (!spec.build) throw new Error(`model "${spec.name}" is not built by lethe (it has a ref)`);
  const source = `model "${spec.name}" build.config`;
  const model = createModel(parseModelConfig(spec.build.config, source), {
    seed: spec.build.seed,
  });
  if (spec.dtype !== "float32") model.to(spec.dtype);
  if (spec.device !== "cpu") model.to(spec.device);
  return model;
}

/** The starting model: built or loaded; full fine-tuning merges the spec's adapter into it. */
async function loadBase(spec: ModelSpec, kind: "full" | "lora"): Promise<Base> {
  const adapter = spec.adapter === undefined ? null : await resolveAdapter(spec.adapter);
  const base = async (): Promise<Omit<Base, "adapter">> => {
    if (spec.build)
      return {
        model: buildModel(spec),
        tokenizer: await loadTokenizer(spec.build.tokenizer),
        dir: null,
      };
    const p = await loadPretrained(spec.ref!, { dtype: spec.dtype, device: spec.device });
    if (!p.tokenizer) {
      p.model.dispose();
      throw new Error(`${p.dir}: model "${spec.name}" has no tokenizer files`);
    }
    return { model: p.model, tokenizer: p.tokenizer, dir: p.dir };
  };
  const b = await base();
  try {
    if (adapter !== null && kind === "full") mergeLoraAdapter(b.model, adapter);
  } catch (e) {
    b.model.dispose();
    throw e;
  }
  return { ...b, adapter };
}

/**
 * The run's model as it trains: the precision's dtype (a stated precision casts; without one the
 * weights stay as loaded) and, for LoRA, the adapters: the study's tuning.lora, or the starting
 * adapter, trained on (its r, lora_alpha and target_modules; tuning.lora's dropout).
 */
function prepareModel(
  model: LanguageModel,
  c: Study["config"],
  spec: RunSpec,
  adapter: string | null,
): Precision {
  const precision = resolvePrecision(c.train.precision, spec.model.dtype);
  if (c.train.precision !== undefined) applyPrecision(model, precision);
  if (c.tuning.kind !== "lora") return precision;
  const saved = adapter === null ? null : readAdapterConfig(adapter);
  applyLora(model, {
    r: saved?.r ?? c.tuning.lora.r,
    alpha: saved?.lora_alpha ?? c.tuning.lora.alpha,
    dropout: c.tuning.lora.dropout,
    targetModules: saved?.target_modules ?? c.tuning.lora.targetModules,
    seed: spec.seed,
  });
  if (adapter !== null) loadLoraAdapter(model, adapter);
  return precision;
}

/** The folder of stage m's checkpoints. */
const stageCheckpoints = (dir: string, order: readonly string[], m: number) =>
  join(dir, "checkpoints", `${m}-${order[m - 1]}`);

/** A finished stage of a run folder and what rebuilding its model needs (runStage). */
export interface RunStage {
  dir: string;
  study: Study;
  spec: RunSpec;
  /** 0 (the starting model) to the number of tasks. */
  stage: number;
  /** Stage m's final checkpoint weights; null for stage 0. */
  checkpoint: string | null;
}

/**
 * Stage m of the run folder `dir` (null: the last finished), checked: the run, the stage, its
 * checkpoint. For `lethe export` (src/cli/export.ts), with loadRunModel.
 */
export function runStage(dir: string, m: number | null): RunStage {
  const file = join(dir, RUN_FILE);
  if (!existsSync(file))
    throw new Error(`${dir}: not a run folder (no ${RUN_FILE}); a study's runs are in its runs/`);
  const study = loadStudy(file);
  const spec: RunSpec = { ...expandGrid(study)[0], name: basename(dir) };
  const order = spec.order.tasks;
  const done = stagesDone(dir, order.length + 1);
  const resume = `\`lethe resume ${dir}\` continues it`;
  if (m === null && done === 0)
    throw new Error(`${dir}: no stage is finished yet (${resume}; stage 0 is its starting model)`);
  const stage = m ?? done - 1;
  if (!Number.isInteger(stage) || stage < 0 || stage > order.length)
    throw new Error(
      `${dir}: no stage ${stage}: the run has stages 0 (its starting model) to ${order.length}`,
    );
  if (stage > 0 && stage >= done)
    throw new Error(
      `${dir}: stage ${stage} is not finished yet (${done === 0 ? "no stage is" : `stages 0 to ${done - 1} are`}; ${resume})`,
    );
  if (spec.method.parts.some((p) => p.name === "olora") && stage >= 2)
    throw new Error(
      `${dir}: olora merges earlier tasks' adapters into the base weights as each stage starts, so stage ${stage} cannot be rebuilt from its checkpoint; a run with export: [hf] in its config writes it while it trains`,
    );
  if (stage === 0) return { dir, study, spec, stage, checkpoint: null };
  const stageDir = stageCheckpoints(dir, order, stage);
  if (!existsSync(stageDir))
    throw new Error(
      `${stageDir}: stage ${stage}'s checkpoint is gone (train.keep: ${study.config.train.keep ?? DEFAULT_KEEP}); a run with export: in its config writes it while it trains`,
    );
  const checkpoint = join(finalCheckpoint(stageDir), "model.safetensors");
  return { dir, study, spec, stage, checkpoint };
}

/**
 * The model of a run's stage as the run held it: the base model (with its adapter), the
 * precision's dtype, LoRA layers, then the stage's final checkpoint. On the CPU unless `device`
 * says otherwise; in eval mode. Returns it and the base model's folder (null: a `build` model).
 */
export async function loadRunModel(
  s: RunStage,
  o: { device?: string } = {},
): Promise<{ model: LanguageModel; baseDir: string | null }> {
  const c = s.study.config;
  const base = await loadBase({ ...s.spec.model, device: o.device ?? "cpu" }, c.tuning.kind);
  const { model } = base;
  try {
    prepareModel(model, c, s.spec, base.adapter);
    if (s.checkpoint !== null) {
      // The checkpoint holds the trainable parameters: all of them, or LoRA's.
      const saved = loadTensors(s.checkpoint);
      try {
        const { unexpected } = model.loadStateDict(saved, { strict: false, source: s.checkpoint });
        const missing = model
          .namedParameters()
          .filter(([n, p]) => p.requiresGrad && !saved.has(n))
          .map(([n]) => n);
        if (unexpected.length > 0 || missing.length > 0)
          throw new Error(
            `${s.checkpoint}: does not match the run's trainable parameters: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`,
          );
      } finally {
        for (const t of saved.values()) t.dispose();
      }
    }
    model.eval();
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, baseDir: base.dir };
}

/** The final checkpoint folder of a finished stage (the trainer's highest `ckpt-<step>`). */
function finalCheckpoint(dir: string): string {
  const steps = existsSync(dir)
    ? readdirSync(dir)
        .map((n) => /^ckpt-(\d+)$/.exec(n))
        .filter((m) => m !== null)
        .map((m) => Number(m[1]))
    : [];
  if (steps.length === 0) throw new Error(`${dir}: no checkpoint of a finished stage`);
  return join(dir, `ckpt-${Math.max(...steps)}`);
}

/** Stage m's model fingerprint: stage m−1's chained with the final checkpoint's files. */
function chainFingerprint(previous: string, ckpt: string): string {
  const files = readdirSync(ckpt)
    .filter((f) => f.endsWith(".safetensors"))
    .sort()
    .map((f) => `${f}:${sha256File(join(ckpt, f))}`);
  return sha256([previous, ...files].join("\n"));
}

/** `1,234,567 bytes`. */
const bytes = (n: number) => `${n.toLocaleString("en-US")} bytes`;

const toSft = (t: InstructionTask): SftText[] =>
  t.train.map((ex) => ({ prompt: renderPrompt(t.template, ex), response: ex.output }));

/** Rank 0 of the group (or the one process) — the one that writes. */
const isMain = () => currentDist()?.isMain ?? true;

/**
 * The run's lock, taken by rank 0 for the whole group (null on the other ranks); every rank
 * throws the same RunLockedError when another process holds it. Doubles as the handshake
 * that orders the other ranks after rank 0's writes of the study's and run's files.
 */
function lockForGroup(dir: string, dist: Dist | null): RunLock | null {
  if (!dist) return acquireLock(dir);
  let lock: RunLock | null = null;
  let held: LockInfo | null = null;
  let error: string | null = null;
  if (dist.isMain)
    try {
      lock = acquireLock(dir);
    } catch (e) {
      if (e instanceof RunLockedError) held = e.holder;
      else error = (e as Error).message;
    }
  const said = dist.broadcastJson({ held, error });
  if (said.held) throw new RunLockedError(dir, said.held);
  if (said.error) throw new Error(dist.isMain ? said.error : `rank 0: ${said.error}`);
  return lock;
}

/** Trains and evaluates one run folder from wherever it stopped. */
export async function executeRun(
  dir: string,
  cacheDir: string,
  o: RunnerOptions = {},
): Promise<void> {
  // Several ranks: rank 0 holds the lock for the group, logs and writes every file; all ranks
  // train and evaluate (src/train/distributed.ts, ModelLM's `dist`).
  const dist = currentDist();
  const main = dist === null || dist.isMain;
  const log = (line: string) => (main ? o.log?.(`[${basename(dir)}] ${line}`) : undefined);
  const lock = lockForGroup(dir, dist);
  if (lock?.tookOver)
    log(
      `note: took over the lock of process ${lock.tookOver.pid} on ${lock.tookOver.host}, which is gone`,
    );
  const disposers: (() => void)[] = [];
  if (main) rmSync(join(dir, FAILED_FILE), { force: true });
  const events = main ? new EventLog(eventsFile(dir), (e) => o.onEvent?.(dir, e)) : null;
  // Stage m's progress lines: `[run] stage m/N [task] step …`, redrawn when o.progress is a TTY.
  const printer = (m: number, n: number) => {
    const prefix = `[${basename(dir)}] stage ${m}/${n} `;
    const to = o.progress;
    return progressPrinter({
      stream: to
        ? { isTTY: to.isTTY, write: (s: string) => to.write(s.replace(/^\r?/, `$&${prefix}`)) }
        : { write: (s: string) => o.log?.(prefix + s.replace(/\n$/, "")) },
    });
  };
  try {
    if (main) {
      removeStaleTemps(dir);
      removeStaleTemps(cacheDir);
    }
    const study = loadStudy(join(dir, RUN_FILE));
    const c = study.config;
    const spec: RunSpec = { ...expandGrid(study)[0], name: basename(dir) };
    const order = spec.order.tasks;
    const total = order.length + 1;
    let done = stagesDone(dir, total);
    const ckptDir = (m: number) => stageCheckpoints(dir, order, m);
    // keep: none: a finished stage's checkpoint goes once a later stage is done (a resume starts
    // from the last done stage's), the last one when the run is complete.
    const retire = () => {
      if ((c.train.keep ?? DEFAULT_KEEP) !== "none") return;
      for (let m = 1; m < (done === total ? total : done - 1); m++)
        rmSync(ckptDir(m), { recursive: true, force: true });
    };
    if (done === total) {
      events?.emit({ type: "run_end" });
      if (main) {
        writeResults(dir, study, spec);
        retire();
      }
      log("already complete");
      dist?.barrier();
      return;
    }
    let wall = performance.now();
    const timingsFile = join(dir, "timings.json");
    const timings: Timings = existsSync(timingsFile)
      ? readJson<Timings>(timingsFile)
      : { stages: [] };
    timings.stages = timings.stages.filter((s) => s.stage < done);

    const template = resolveTemplate(c.tasks.template);
    const taskOptions = {
      seed: c.tasks.seed,
      maxTrain: c.budget.maxTrain ?? undefined,
      maxTest: c.budget.maxTest ?? undefined,
      template,
    };
    const tasks: InstructionTask[] = [];
    for (const t of order) tasks.push(await loadTask(t, c.dataDir, taskOptions, c.tasks.define));
    const stages = tasks.map((t) => ({ name: t.name, examples: toSft(t) }));
    const general = c.general
      ? toSft(
          await loadTask(
            c.general.task,
            c.dataDir,
            { ...taskOptions, maxTrain: c.general.maxTrain ?? undefined },
            c.tasks.define,
          ),
        )
      : null;

    const base = await loadBase(spec.model, c.tuning.kind);
    disposers.push(() => base.model.dispose());
    const { model, tokenizer } = base;
    // The data is known now (it loaded): the card hashes it; a resume writes it again.
    if (main) {
      makeDir(cacheDir);
      const hashes = new FileHashes(cacheDir);
      writeAtomic(
        join(dir, "run-card.json"),
        json(makeRunCard(study, spec, c, model, dataFiles(study, spec, base.dir), hashes)),
      );
    }
    let fingerprint = sha256(
      [
        base.dir === null
          ? moduleFingerprint(model)
          : filesFingerprint(
              readdirSync(base.dir)
                .sort()
                .map((f) => join(base.dir!, f)),
            ),
        spec.model.dtype,
        spec.model.device,
        ...(c.train.precision === undefined ? [] : [c.train.precision]),
        ...(base.adapter === null
          ? []
          : [
              filesFingerprint(
                readdirSync(base.adapter)
                  .sort()
                  .map((f) => join(base.adapter!, f)),
              ),
            ]),
      ].join(":"),
    );
    const precision = prepareModel(model, c, spec, base.adapter);

    // θ₀ is a second copy of the base model (as loaded), so no checkpoint loaded into `model`
    // can touch it; only methods that declare they read it get one (loaded up front: loading is
    // asynchronous).
    const method = spec.method.name;
    let start: Map<string, Tensor> | null = null;
    if (needsStartWeights(spec.method.parts, null, c.tuning.kind)) {
      const copy = (await loadBase(spec.model, c.tuning.kind)).model;
      disposers.push(() => copy.dispose());
      start = new Map(copy.namedParameters().map(([n, p]) => [n, keepTensor(p)]));
    }
    log(
      `weights held: ${bytes(tensorBytes(model.parameters()))} of parameters (${precision}); ` +
        (start === null
          ? `no θ₀ copy (${method} does not read it)`
          : `θ₀ copy ${bytes(tensorBytes(start.values()))} (${method} reads it)`),
    );
    const plugins = createMethods(spec.method.parts, {
      stages,
      general,
      seed: spec.seed,
      tokenizer,
      startWeights: () => {
        if (start === null)
          throw new Error(
            `method "${method}" read the starting weights (θ₀) without declaring needsStartWeights for these options and ${c.tuning.kind} tuning`,
          );
        return start;
      },
    });
    const evalModel = precisionView(model, precision);
    const cache = ResultCache.open(cacheDir, { readOnly: !main });
    const trainConfig = { ...c.train, seed: spec.seed };
    // Training speed, and when the last step ended: the rest of trainStage (stage-end hooks, the
    // final checkpoint) counts as bookkeeping.
    const speed = { tokensPerSecond: null as number | null, lastStep: 0 };
    const train = (m: number, print = printer(m, total - 1)) =>
      trainStage({
        stage: order[m - 1],
        model,
        kind: c.tuning.kind,
        examples: stages[m - 1].examples,
        tokenizer,
        // The method's learning-rate control between stages (lr decay, per-stage lr, re-warming).
        config: stageTrainConfig(trainConfig, spec.method.lr, m - 1, order.length),
        plugins,
        dir: ckptDir(m),
        dist,
        onProgress: (e) => {
          speed.tokensPerSecond = e.tokensPerSecond;
          speed.lastStep = performance.now();
          const { loss, lr, tokensPerSecond, etaSeconds, step, totalSteps } = e;
          const skippedSteps = e.skippedSteps ?? 0;
          const rss = process.memoryUsage.rss();
          const ev = { loss, lr, tokensPerSecond, etaSeconds, step, totalSteps, skippedSteps, rss };
          events?.emit({ type: "step", stage: m, ...ev });
          if (main) print(e);
        },
      });

    // Stages already done: their fingerprint, and the last one's weights and state.
    const saved = join(dir, "stages", String(done - 1), "model.sha256");
    if (done >= 1 && existsSync(saved)) fingerprint = readFileSync(saved, "utf8").trim();
    else
      for (let m = 1; m < done; m++)
        fingerprint = chainFingerprint(fingerprint, finalCheckpoint(ckptDir(m)));
    if (main) retire();
    if (done > 0) events?.emit({ type: "resume", stage: done });
    if (done > 1) train(done - 1);
    let bookkeeping = (performance.now() - wall) / 1000;

    for (let m = done; m < total; m++) {
      throwIfStopRequested(`before stage ${m}/${total - 1}`, dist);
      wall = performance.now();
      let trainSeconds = 0;
      let skippedSteps: number | undefined;
      speed.tokensPerSecond = null;
      events?.emit({ type: "stage_start", stage: m, task: m === 0 ? null : order[m - 1] });
      if (m >= 1) {
        log(`stage ${m}/${total - 1} (${order[m - 1]}): training`);
        const t0 = performance.now();
        speed.lastStep = t0;
        const res = train(m);
        if (res.resumedFrom)
          log(`stage ${m}/${total - 1}: resumed from ${basename(res.resumedFrom)}`);
        trainSeconds = (speed.lastStep - t0) / 1000;
        if (POLICIES[precision].lossScaling) skippedSteps = res.skippedSteps.length;
        fingerprint = chainFingerprint(fingerprint, res.checkpoint);
        events?.emit({ type: "checkpoint", stage: m, path: res.checkpoint });
      }
      throwIfStopRequested(`before stage ${m}/${total - 1}'s evaluation`, dist);
      log(`stage ${m}/${total - 1}: evaluating`);
      const t1 = performance.now();
      const lm = new ModelLM(evalModel, tokenizer, {
        batchSize: c.eval.batchSize,
        maxLength: c.eval.maxLength,
        prefixCacheMb: c.eval.prefixCacheMb,
        maxGenToks: c.tasks.maxGenToks,
        cache: { store: cache, fingerprint },
        name: `${spec.model.name} after stage ${m}`,
        dist,
      });
      const generalOut = await evaluateGeneral(lm, study);
      const taskOut = await evaluateTasks(lm, tasks, c.tasks.until);
      const evalSeconds = (performance.now() - t1) / 1000;
      events?.emit({
        type: "eval",
        stage: m,
        ...primaryScores(study, generalOut.results, taskOut.scores),
      });

      if (main) {
        const stageDir = join(dir, "stages", String(m));
        makeDir(join(stageDir, "items"));
        for (const [name, items] of [...generalOut.items, ...taskOut.items])
          writeAtomic(
            join(stageDir, "items", `${name}.jsonl`),
            items.map((r) => JSON.stringify(r)).join("\n") + "\n",
          );
        writeAtomic(join(stageDir, "general.json"), json(generalOut.results));
        writeAtomic(join(stageDir, "model.sha256"), fingerprint + "\n");
        await exportStage(dir, m, model, { study, spec, baseDir: base.dir }, log); // before "done"
        writeAtomic(join(stageDir, "tasks.json"), json(taskOut.scores));
        const seconds = (performance.now() - wall) / 1000;
        timings.stages.push({
          stage: m,
          train: trainSeconds,
          eval: evalSeconds,
          bookkeeping: bookkeeping + seconds - trainSeconds - evalSeconds,
          tokensPerSecond: speed.tokensPerSecond,
          ...(skippedSteps === undefined ? {} : { skippedSteps }),
        });
        bookkeeping = 0;
        writeAtomic(timingsFile, json(timings));
        writeResults(dir, study, spec);
      }
      done = m + 1;
      if (main) retire();
      dist?.barrier(); // the stage's files are written before any rank reads them
      events?.emit({ type: "stage_end", stage: m, seconds: (performance.now() - wall) / 1000 });
      events?.sync();
      log(`stage ${m}/${total - 1}: results written`);
    }
    events?.emit({ type: "run_end" });
  } catch (e) {
    // Said in the folder, so `lethe status` can tell a failed run from an interrupted one.
    if (main && !(e instanceof StopRequested))
      writeAtomic(join(dir, FAILED_FILE), json({ error: (e as Error).message }));
    if (!(e instanceof StopRequested))
      events?.emit({ type: "error", message: (e as Error).message });
    throw e;
  } finally {
    events?.close();
    for (const d of disposers.reverse()) d();
    lock?.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation of one stage

/** A stage's scores for the event log: each benchmark's primary metric, each task's metric. */
function primaryScores(
  study: Study,
  general: Omit<EvalResults, "samples">,
  tasks: Record<string, MetricScores>,
): { scores: Record<string, number>; tasks: Record<string, number> } {
  const scores: Record<string, number> = {};
  for (const b of study.benchmarks) {
    const v = general.results[b.name]?.[b.metric];
    if (typeof v === "number") scores[b.name] = v;
  }
  const first = (s: MetricScores) => Object.values(s)[0];
  return {
    scores,
    tasks: Object.fromEntries(Object.entries(tasks).map(([t, s]) => [t, first(s)])),
  };
}

/** The lm-eval layout of every benchmark (no samples) and per-item records of each. */
async function evaluateGeneral(
  lm: ModelLM,
  study: Study,
): Promise<{ results: Omit<EvalResults, "samples">; items: [string, ItemRecord[]][] }> {
  const c = study.config;
  const merged = emptyResults();
  const items: [string, ItemRecord[]][] = [];
  for (const b of study.benchmarks) {
    const res = await evaluate(lm, [b.name], {
      dataDir: c.benchmarksDir ?? join(c.dataDir, "benchmarks"),
      shots: b.shots,
      limit: b.limit ?? undefined,
      logSamples: true,
    });
    const { samples, ...rest } = res;
    for (const k of Object.keys(merged) as (keyof typeof merged)[])
      Object.assign(merged[k], rest[k]);
    items.push([b.name, benchmarkItems(b, samples ?? {})]);
  }
  return { results: merged, items };
}

/** Per-item records of a benchmark; for a group, ids are `<subtask>/<doc_id>`. */
function benchmarkItems(b: Benchmark, samples: NonNullable<EvalResults["samples"]>): ItemRecord[] {
  const metric = b.metric.split(",")[0];
  const leaves = Object.keys(samples);
  return leaves.flatMap((leaf) => {
    const task = getEvalTask(leaf);
    const higher = task.metrics.find((x) => x.metric === metric)?.higher_is_better ?? true;
    return samples[leaf].map((s) => {
      const value = s[metric];
      if (typeof value !== "number")
        throw new Error(
          `${leaf}: item ${s.doc_id} has no "${metric}" (the primary metric of ${b.name})`,
        );
      const text = task.docToText(s.doc);
      const metrics = Object.fromEntries(
        task.metrics.map((x) => [x.metric, s[x.metric] as number]),
      );
      return {
        doc_id: leaves.length > 1 || leaf !== b.name ? `${leaf}/${s.doc_id}` : String(s.doc_id),
        correct: higher ? value === 1 : value === 0,
        ...(typeof text === "string" ? { text } : {}),
        ...metrics,
      };
    });
  });
}

/** Generates every test prompt of every task and scores it with the task's metric. */
async function evaluateTasks(
  lm: ModelLM,
  tasks: InstructionTask[],
  until: string[],
): Promise<{ scores: Record<string, MetricScores>; items: [string, ItemRecord[]][] }> {
  const scores: Record<string, MetricScores> = {};
  const items: [string, ItemRecord[]][] = [];
  for (const t of tasks) {
    if (t.test.length === 0) throw new Error(`task "${t.name}": no test examples`);
    const metric = getGenerationMetric(t.metric);
    const predictions = await lm.generateUntil(
      t.test.map((ex) => ({ context: renderPrompt(t.template, ex), until })),
    );
    const refs = t.test.map((ex) => ex.references ?? [ex.output]);
    const sources = metric.needsSources ? t.test.map((ex) => ex.input) : undefined;
    scores[t.name] = { [t.metric]: metric.corpus(predictions, refs, sources) };
    items.push([
      t.name,
      predictions.map((p, i) => {
        const score = metric.sentence(p, refs[i], sources?.[i]);
        return {
          doc_id: String(i),
          correct: score === 100,
          score,
          prediction: p,
          references: refs[i],
        };
      }),
    ]);
  }
  return { scores, items };
}

// ---------------------------------------------------------------------------------------------
// results.json

/** A function of the stage files on disk only, so a resumed run writes the same bytes. */
export function buildResults(dir: string, study: Study, spec: RunSpec): RunResults {
  const order = spec.order.tasks;
  const total = order.length + 1;
  const done = stagesDone(dir, total);
  const stages: RunResults["stages"] = [];
  const items = new Map<string, ItemRecord[][]>(); // benchmark → per stage
  for (let m = 0; m < done; m++) {
    const s = join(dir, "stages", String(m));
    const general = readJson<EvalResults>(join(s, "general.json"));
    const tasks = readJson<Record<string, MetricScores>>(join(s, "tasks.json"));
    const scores: Record<string, MetricScores> = {};
    for (const b of study.benchmarks) {
      const rec = general.results[b.name];
      scores[b.name] = Object.fromEntries(
        Object.entries(rec).filter(
          (e): e is [string, number] => typeof e[1] === "number" && !e[0].includes("_stderr"),
        ),
      );
      const lines = readFileSync(join(s, "items", `${b.name}.jsonl`), "utf8").split("\n");
      const recs = lines.filter((l) => l !== "").map((l) => JSON.parse(l) as ItemRecord);
      items.set(b.name, [...(items.get(b.name) ?? []), recs]);
    }
    stages.push({ stage: m, task: m === 0 ? null : order[m - 1], general: scores, tasks });
  }

  const curves: Record<string, number[]> = {};
  for (const b of study.benchmarks) curves[b.name] = stages.map((s) => s.general[b.name][b.metric]);
  const fgCurves = study.benchmarks.filter((b) => curves[b.name][0] !== 0);
  const fg: RunResults["fg"] =
    done >= 2
      ? fgByCategory(
          fgCurves.map((b) => ({
            benchmark: b.name,
            category: b.category,
            scores: curves[b.name],
          })),
        )
      : { perBenchmark: {}, perCategory: {} };
  const iters = study.config.eval.bootstrapIters;
  if (done >= 2 && iters > 0) {
    fg.ci = {};
    for (const b of fgCurves) {
      const metric = b.metric.split(",")[0];
      const perStage = items.get(b.name)!;
      const rows = perStage[0].map((_, k) => perStage.map((st) => st[k][metric] as number));
      const stat = (sample: readonly number[][]) => {
        const base = sample.reduce((a, r) => a + r[0], 0);
        return base === 0 ? NaN : fgFromItems(sample);
      };
      const ci = bootstrapCI(rows, stat, { iters, seed: 0 });
      if (Number.isFinite(ci.lo) && Number.isFinite(ci.hi)) fg.ci[b.name] = [ci.lo, ci.hi];
    }
  }

  const matrix = stages.map((s) =>
    order.map((t) => {
      const v = Object.values(s.tasks[t]);
      return v[0];
    }),
  );
  const k = done - 1; // tasks trained so far: metrics as if the order ended here
  const sub = matrix.slice(0, k + 1).map((row) => row.slice(0, k));
  const when = (need: number, f: () => number) => (k >= need ? f() : NaN);
  const flips: NonNullable<RunResults["flips"]> = {};
  for (const b of study.benchmarks) {
    const perStage = items.get(b.name)!;
    if (done < 2) break;
    flips[b.name] = itemFlips(perStage.map((st) => st.map((r) => r.correct))).map((f) => ({
      stage: f.stage,
      forgotten: f.forgotten.map((i) => perStage[0][i].doc_id),
      learned: f.learned.map((i) => perStage[0][i].doc_id),
    }));
  }
  return {
    format: RESULTS_FORMAT,
    run: {
      name: spec.name,
      model: spec.model.name,
      method: spec.method.label,
      order,
      seed: spec.seed,
    },
    progress: { stagesDone: done, totalStages: total },
    categories: Object.fromEntries(study.benchmarks.map((b) => [b.name, b.category])),
    primaryMetric: Object.fromEntries(study.benchmarks.map((b) => [b.name, b.metric])),
    stages,
    fg,
    matrix,
    avg_acc: when(1, () => avgAcc(sub)),
    final_acc: k >= 1 ? finalAcc(sub) : [],
    bwt: when(2, () => bwt(sub)),
    fwt: when(2, () => fwt(sub)),
    forgetting: when(2, () => forgetting(sub)),
    plasticity: when(1, () => plasticity(sub)),
    curves,
    flips,
  };
}

function writeResults(dir: string, study: Study, spec: RunSpec): void {
  writeAtomic(join(dir, "results.json"), json(buildResults(dir, study, spec)));
}
