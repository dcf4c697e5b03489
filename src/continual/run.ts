/**
 * One run of a study, from wherever it stopped: open it (lock, data, model, run card, θ₀, the
 * methods), then for each stage train, evaluate (stage_eval.ts) and write; results.json is
 * rebuilt from the stage files (results.ts). study.ts runs a study's grid and reports progress.
 * A study directory holds `study.yaml` (the resolved config), `cache/` (the
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
import { ModelLM } from "../eval/model_lm.js";
import { expandGrid, loadStudy, type ModelSpec, type RunSpec, type Study } from "./config.js";
import { renderPrompt, resolveTemplate, type InstructionTask } from "./instruction.js";
import { acquireLock, RunLockedError, type LockInfo, type RunLock } from "./lock.js";
import { createMethods, needsStartWeights, type StageData } from "./methods/index.js";
import { stageTrainConfig } from "./methods/method.js";
import { dataFiles, FileHashes, makeRunCard } from "./runcard.js";
import { exportStage } from "./export.js";
import { loadTask } from "./tasks/index.js";
import { progressPrinter, type ProgressStream } from "../train/progress.js";
import { EventLog, eventsFile, type RunEvent } from "./events.js";
import { makeDir, removeStaleTemps, writeAtomic } from "../util/fs.js";
import { stagesDone, writeResults } from "./results.js";
import { evaluateGeneral, evaluateTasks, primaryScores } from "./stage_eval.js";

export interface RunnerOptions {
  /** Progress lines (one per event). @default none */
  log?: (line: string) => void;
  /** Where training progress goes (progress.ts: redrawn on a TTY). @default plain lines to `log` */
  progress?: ProgressStream;
  /** Each event of a run's event log (events.ts) as it is written, with the run's folder. */
  onEvent?: (dir: string, e: RunEvent) => void;
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

export const STUDY_FILE = "study.yaml";
export const RUN_FILE = "config.yaml";
/** Written when a run stops on an error (removed when it starts again): `{ "error": … }`. */
export const FAILED_FILE = "failed.json";

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
const json = (v: unknown) => JSON.stringify(v, null, 1) + "\n";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
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
export const isMain = () => currentDist()?.isMain ?? true;

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

/** Stage m's progress lines: `[run] stage m/N [task] step …`, redrawn when o.progress is a TTY. */
function stagePrinter(dir: string, o: RunnerOptions, m: number, n: number) {
  const prefix = `[${basename(dir)}] stage ${m}/${n} `;
  const to = o.progress;
  return progressPrinter({
    stream: to
      ? { isTTY: to.isTTY, write: (s: string) => to.write(s.replace(/^\r?/, `$&${prefix}`)) }
      : { write: (s: string) => o.log?.(prefix + s.replace(/\n$/, "")) },
  });
}

/** The order's tasks (train and test), their training texts, and the general set's, if any. */
async function loadStageData(
  c: Study["config"],
  order: readonly string[],
): Promise<{ tasks: InstructionTask[]; stages: StageData[]; general: SftText[] | null }> {
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
  return { tasks, stages, general };
}

/**
 * The evaluation cache key of the base model (stage 0): its files (or its weights when it is
 * built from a config), dtype, device, the stated precision and a LoRA adapter's files.
 */
function baseFingerprint(base: Base, spec: RunSpec, c: Study["config"]): string {
  return sha256(
    [
      base.dir === null
        ? moduleFingerprint(base.model)
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
}

/**
 * A stage's files: per-item records, general.json, model.sha256, the stage's export, and
 * tasks.json last (its presence marks the stage done).
 */
async function writeStage(
  dir: string,
  m: number,
  r: {
    generalOut: Awaited<ReturnType<typeof evaluateGeneral>>;
    taskOut: Awaited<ReturnType<typeof evaluateTasks>>;
    fingerprint: string;
  },
  exportIt: () => Promise<void>,
): Promise<void> {
  const { generalOut, taskOut, fingerprint } = r;
  const stageDir = join(dir, "stages", String(m));
  makeDir(join(stageDir, "items"));
  for (const [name, items] of [...generalOut.items, ...taskOut.items])
    writeAtomic(
      join(stageDir, "items", `${name}.jsonl`),
      items.map((r) => JSON.stringify(r)).join("\n") + "\n",
    );
  writeAtomic(join(stageDir, "general.json"), json(generalOut.results));
  writeAtomic(join(stageDir, "model.sha256"), fingerprint + "\n");
  await exportIt(); // before "done"
  writeAtomic(join(stageDir, "tasks.json"), json(taskOut.scores));
}

/** θ₀: a second copy of the base model's parameters, disposed with the run. */
async function loadStartWeights(
  spec: RunSpec,
  c: Study["config"],
  disposers: (() => void)[],
): Promise<Map<string, Tensor>> {
  const copy = (await loadBase(spec.model, c.tuning.kind)).model;
  disposers.push(() => copy.dispose());
  return new Map(copy.namedParameters().map(([n, p]) => [n, keepTensor(p)]));
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

    const { tasks, stages, general } = await loadStageData(c, order);

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
    let fingerprint = baseFingerprint(base, spec, c);
    const precision = prepareModel(model, c, spec, base.adapter);

    // θ₀ is a second copy of the base model (as loaded), so no checkpoint loaded into `model`
    // can touch it; only methods that declare they read it get one (loaded up front: loading is
    // asynchronous).
    const method = spec.method.name;
    const start = needsStartWeights(spec.method.parts, null, c.tuning.kind)
      ? await loadStartWeights(spec, c, disposers)
      : null;
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
    const train = (m: number, print = stagePrinter(dir, o, m, total - 1)) =>
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
    // trainStage on a finished stage trains nothing: it loads the stage's final checkpoint (the
    // weights and the methods' state) that the next stage continues from.
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
        await writeStage(dir, m, { generalOut, taskOut, fingerprint }, () =>
          exportStage(dir, m, model, { study, spec, baseDir: base.dir }, log),
        );
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
