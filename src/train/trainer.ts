/**
 * Supervised fine-tuning of one stage: the one visible training loop, its configuration schema,
 * and resumable checkpoints.
 *
 * References:
 * - Loss as transformers ≥ 4.46 `Trainer` with gradient accumulation (`num_items_in_batch`,
 *   `ForCausalLMLoss`): the step's loss is the sum of the token cross-entropies of all its
 *   micro-batches divided by the number of label tokens in the whole step, so accumulating 2×4
 *   rows gives the gradient of one batch of 8. Causal labels are shifted inside the loss.
 * - Schedules, warmup (`warmup_ratio`, ceil) and AdamW as `transformers/optimization.py` and
 *   `torch.optim.AdamW` (src/optim); weight decay on ≥ 2-D weights only (nanoGPT's rule, which
 *   for these models is HF's "not bias, not a norm"); clipping as `clip_grad_norm_`.
 * - Checkpoints as HF Trainer's `checkpoint-<step>/` folders (model.safetensors, optimizer state,
 *   trainer_state.json), written to `ckpt-<step>.tmp/` and renamed, so a folder named
 *   `ckpt-<step>` is always complete. A stage resumes from its latest one. Only in-progress
 *   checkpoints hold the optimizer state: the stage-end one has weights (and plugin state) only.
 *   `keep` (HF `save_total_limit` in spirit): "last" (default) removes older step checkpoints
 *   as each new one lands, so a stage's folder ends with its final checkpoint alone; "all" keeps
 *   every one (their optimizer state is dropped at stage end); "none" is "last" here, and the
 *   study runner also removes finished stages' folders once a run no longer needs them
 *   (src/continual/run.ts).
 * - Precision policies as Lightning's `precision=` (src/train/precision.ts): the forward and
 *   loss under autocast for the mixed modes, float32 master weights and AdamW state; "16-mixed"
 *   scales the loss as torch.amp.GradScaler (one per stage, as the optimizer; its state is in
 *   the checkpoints), unscales before the afterBackward hooks and clipping, and skips (and
 *   counts) a step whose gradients hold an inf or NaN. A non-finite loss still stops the stage:
 *   loss scaling cannot cure a forward pass that overflows.
 * - `gradientCheckpointing` as transformers' `gradient_checkpointing_enable()` (one segment per
 *   decoder layer), run as two passes in src/train/checkpointing.ts (T5/mT5: decoder layers). Plugins
 *   see the same logits and loss; a plugin's own forward keeps its full graph.
 *
 * Exact resume: nothing random carries state between steps. The epoch order comes from
 * (seed, stage, epoch), and the default generator (dropout, LoRA dropout) is reseeded from
 * (seed, stage, step, micro-batch) before each forward, so a resumed run repeats the
 * uninterrupted one bit for bit on CPU.
 *
 * Failure is loud: a NaN or infinite loss or gradient norm stops the stage with its step and the
 * last good checkpoint (`NonFiniteLossError`); a loss that never leaves ln(vocab) for the whole
 * stage is a warning (`stuckLossWarning`) on the last progress event and in the stage result.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { crossEntropy, manualSeed, noGrad, tidy, type Tensor } from "../tensor/index.js";
import { flattenParameters, releaseGradients } from "../nn/index.js";
import {
  AdamW,
  allFinite,
  clipGradNorm,
  GradScaler,
  type GradScalerState,
  lrFactor,
} from "../optim/index.js";
import type { LanguageModel } from "../models/index.js";
import { loadTensors, saveTensors } from "../io/checkpoint.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { didYouMean } from "../util/suggest.js";
import {
  type Batch,
  collate,
  epochOrder,
  labelTokens,
  pack,
  rowTokens,
  type SftFeatures,
  type SftText,
  tokenizeAll,
  tokenizeSft,
} from "./data.js";
import type { PluginState, TrainContext, TrainPlugin, TuningKind } from "./plugin.js";
import type { ProgressEvent } from "./progress.js";
import {
  applyPrecision,
  POLICIES,
  precisionView,
  PrecisionSchema,
  resolvePrecision,
  roundingWarning,
  withPrecision,
  type Precision,
} from "./precision.js";
import { assertCheckpointing, checkpointed, type CheckpointOptions } from "./checkpointing.js";
import { StopRequested, stopRequestedByAny } from "./stop.js";
import { DataParallel, DistributedSchema, readOptimizerState } from "./distributed.js";
import type { Dist } from "../dist/index.js";

/** Which checkpoints stay: see the header. */
export const KEEP = ["last", "all", "none"] as const;
export type Keep = (typeof KEEP)[number];
export const DEFAULT_KEEP: Keep = "last";

export const TrainConfigSchema = z.strictObject({
  lr: z.number().positive().default(2e-5), // Stanford Alpaca's full fine-tuning rate
  epochs: z.number().int().positive().default(3), // Alpaca: 3
  steps: z.number().int().positive().nullable().default(null), // set: this many optimizer steps, epochs ignored (HF max_steps)
  batchSize: z.number().int().positive().default(4), // rows per micro-batch
  gradAccum: z.number().int().positive().default(8), // micro-batches per optimizer step
  warmup: z.number().min(0).max(1).default(0.03), // share of steps with linear warmup (Alpaca's warmup_ratio)
  schedule: z.enum(["constant", "linear", "cosine"]).default("cosine"), // Alpaca: cosine
  clip: z.number().min(0).default(1), // max gradient L2 norm, 0 = off (HF max_grad_norm)
  weightDecay: z.number().min(0).default(0), // AdamW decoupled decay (Alpaca: 0)
  seed: z.number().int().min(0).default(42), // HF TrainingArguments' default
  maxLength: z.number().int().min(2).default(512), // tokens per row (Alpaca model_max_length)
  packing: z.boolean().default(false), // causal only: concatenate examples into full rows
  checkpointEvery: z.number().int().min(0).default(500), // steps between checkpoints, 0 = stage end only (HF save_steps)
  // Optional, defaults stated here, so configs written before these fields read back unchanged:
  precision: PrecisionSchema.optional(), // default: the weights' dtype's (float32 → 32-true, bfloat16 → bf16-true)
  keep: z.enum(KEEP).optional(), // checkpoints kept: last (default), all or none (see the header)
  gradientCheckpointing: z.boolean().optional(), // default false; true: block activations recomputed in backward (causal models)
  distributed: DistributedSchema.optional(), // with several ranks: ddp (default), zero1 or zero2 (src/train/distributed.ts)
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** A config with defaults filled; an error names the field. */
export function parseTrainConfig(raw: unknown, source = "train config"): TrainConfig {
  const parsed = TrainConfigSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const known = Object.keys(TrainConfigSchema.shape);
    throw new Error(
      `${source}: unknown field "${issue.keys[0]}".${didYouMean(issue.keys[0], known)} Fields: ${known.join(", ")}`,
    );
  }
  throw new Error(`${source}: field "${issue.path.join(".")}": ${issue.message}`);
}

/**
 * Relative distance from ln(vocab), the loss of a uniform prediction, within which every step of
 * a stage counts as stuck. A model saturated by an absurd lr (1e6) sits at ln(vocab) to 1e-5; a
 * fresh random model starts within 0.5% of it and a working lr leaves 1% within a few steps.
 */
export const STUCK_RTOL = 0.01;
/** Fewer steps cannot tell a fresh random model, whose loss starts near ln(vocab), from a stuck one. */
export const STUCK_MIN_STEPS = 4;

/**
 * The warning for a stage whose every loss stayed within STUCK_RTOL of ln(vocab): the model
 * learned nothing. Null when the loss moved, or the stage has fewer than STUCK_MIN_STEPS steps.
 */
export function stuckLossWarning(
  stage: string,
  losses: readonly number[],
  vocab: number,
  lr: number,
): string | null {
  const uniform = Math.log(vocab);
  if (losses.length < STUCK_MIN_STEPS) return null;
  if (losses.some((l) => !(Math.abs(l - uniform) <= STUCK_RTOL * uniform))) return null;
  return (
    `stage "${stage}": the training loss stayed within ${STUCK_RTOL * 100}% of ln(vocab) = ` +
    `ln(${vocab}) = ${uniform.toFixed(4)}, a uniform prediction, for all ${losses.length} steps: ` +
    `the model learned nothing (lr ${lr} too high or too low?)`
  );
}

/** A non-finite loss or gradient norm; names the step and the checkpoint to go back to. */
export class NonFiniteLossError extends Error {
  constructor(
    readonly stage: string,
    readonly step: number,
    readonly lastCheckpoint: string | null,
    what: string,
  ) {
    super(
      `stage "${stage}": ${what} at step ${step}; last good checkpoint: ` +
        (lastCheckpoint ?? "none (no checkpoint written yet in this stage)"),
    );
    this.name = "NonFiniteLossError";
  }
}

export interface TrainStageOptions {
  /** Stage name: shown in progress, part of every seed and of the checkpoint fingerprint. */
  stage: string;
  /** Trained in place; with a config `precision`, first cast to its parameter dtype. */
  model: LanguageModel;
  /** "lora": the caller has applied LoRA, so only the adapters require grad. */
  kind: TuningKind;
  examples: readonly SftText[];
  tokenizer: Tokenizer;
  config: TrainConfigInput;
  plugins?: readonly TrainPlugin[];
  /** This stage's checkpoint folder (created); a stage resumes from the latest checkpoint in it. */
  dir: string;
  /** The process group when this process is one rank of several (src/train/distributed.ts). */
  dist?: Dist | null;
  onProgress?: (e: ProgressEvent) => void;
}

export interface StageResult {
  /** Optimizer steps of the stage. */
  steps: number;
  /** Mean token loss of every step (regularisers included), resumed steps too. */
  losses: number[];
  /** The stage-end checkpoint folder. */
  checkpoint: string;
  /** The checkpoint this call resumed from, if any. */
  resumedFrom: string | null;
  /**
   * Warnings about the stage as a whole: updates rounding away under a 16-bit "true" policy
   * (`roundingWarning`, also on this process's first progress event) and `stuckLossWarning`
   * (also on the last progress event).
   */
  warnings: string[];
  /** 16-mixed: the steps skipped for an inf/NaN gradient, resumed ones included; else empty. */
  skippedSteps: number[];
}

const STATE_FORMAT = "lethe-trainer-state";
const STATE_VERSION = 1;
const CKPT = /^ckpt-(\d+)$/;

/** trainer_state.json. */
interface TrainerState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  stage: string;
  kind: TuningKind;
  step: number;
  totalSteps: number;
  /** sha256 of the config, stage, kind and every token row: resume only into the same run. */
  fingerprint: string;
  optimizerStep: number;
  losses: number[];
  plugins: Record<string, unknown>;
  /** 16-mixed only: the loss scaler's state and the steps it skipped. */
  scaler?: GradScalerState;
  skippedSteps?: number[];
}

/** A 32-bit seed from its parts (FNV-1a over their JSON), so every draw has its own stream. */
function seedOf(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(JSON.stringify(parts), "utf8"))
    h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

/**
 * The summed token cross-entropy of a batch and the logits. Causal: logits at t predict labels
 * at t+1. Seq2seq: decoder logits against the labels.
 */
export function tokenLossSum(model: LanguageModel, batch: Batch): { sum: Tensor; logits: Tensor } {
  let logits: Tensor;
  let labels: Tensor;
  if (model.kind === "causal") {
    logits = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }).logits;
    labels = batch.labels.slice(1, 1); // (B, T-1)
    const V = logits.size(-1);
    const sum = crossEntropy(logits.slice(1, 0, -1).reshape(-1, V), labels.reshape(-1), {
      reduction: "sum",
    });
    return { sum, logits };
  }
  if (batch.decoderInputIds === null)
    throw new Error("tokenLossSum: a seq2seq batch needs decoderInputIds");
  logits = model.forward({
    inputIds: batch.inputIds,
    attentionMask: batch.attentionMask,
    decoderInputIds: batch.decoderInputIds,
  }).logits; // (B, L, V)
  const V = logits.size(-1);
  return {
    sum: crossEntropy(logits.reshape(-1, V), batch.labels.reshape(-1), { reduction: "sum" }),
    logits,
  };
}

/**
 * `tokenLossSum` through checkpointed blocks (src/train/checkpointing.ts):
 * `backward(root)` back-propagates the loss built on `sum` (and on `logits`) in place of
 * `root.backward()`.
 */
export function checkpointedTokenLossSum(
  model: LanguageModel,
  batch: Batch,
  o: CheckpointOptions = {},
): { sum: Tensor; logits: Tensor; backward(root: Tensor): void } {
  assertCheckpointing(model);
  if (model.kind === "seq2seq") {
    const decoderInputIds = batch.decoderInputIds;
    if (decoderInputIds === null)
      throw new Error("checkpointedTokenLossSum: a seq2seq batch needs decoderInputIds");
    const inputs = {
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
      decoderInputIds,
    };
    const c = checkpointed(() => model.segments(inputs), o);
    const V = c.logits.size(-1); // (B, L, V) against the labels, as tokenLossSum
    const sum = crossEntropy(c.logits.reshape(-1, V), batch.labels.reshape(-1), {
      reduction: "sum",
    });
    return { sum, logits: c.logits, backward: (root) => c.backward(root) };
  }
  const inputs = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
  const c = checkpointed(() => model.segments(inputs), o);
  const labels = batch.labels.slice(1, 1); // (B, T-1)
  const V = c.logits.size(-1);
  const sum = crossEntropy(c.logits.slice(1, 0, -1).reshape(-1, V), labels.reshape(-1), {
    reduction: "sum",
  });
  return { sum, logits: c.logits, backward: (root) => c.backward(root) };
}

/** Which rows each step of a stage trains on: a pure function of (seed, stage, step). */
class StagePlan {
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  private cached: { epoch: number; order: number[] } | null = null;
  constructor(
    private readonly lengths: number[],
    private readonly cfg: TrainConfig,
    private readonly stage: string,
  ) {
    this.stepsPerEpoch = Math.ceil(lengths.length / (cfg.batchSize * cfg.gradAccum));
    this.totalSteps = cfg.steps ?? cfg.epochs * this.stepsPerEpoch;
  }
  /** Epoch and micro-batches (row indices) of 1-based `step`. */
  step(step: number): { epoch: number; micro: number[][] } {
    const epoch = Math.floor((step - 1) / this.stepsPerEpoch);
    if (this.cached?.epoch !== epoch) {
      const per = this.cfg.batchSize * this.cfg.gradAccum;
      this.cached = {
        epoch,
        order: epochOrder(this.lengths, per, seedOf(this.cfg.seed, this.stage, "epoch", epoch)),
      };
    }
    const per = this.cfg.batchSize * this.cfg.gradAccum;
    const k = (step - 1) % this.stepsPerEpoch;
    const rows = this.cached.order.slice(k * per, (k + 1) * per);
    const micro: number[][] = [];
    for (let i = 0; i < rows.length; i += this.cfg.batchSize)
      micro.push(rows.slice(i, i + this.cfg.batchSize));
    return { epoch, micro };
  }
}

function fingerprint(o: TrainStageOptions, cfg: TrainConfig, rows: SftFeatures[]): string {
  const h = createHash("sha256");
  // What is kept, and how ranks share the work, do not change what is trained, so a resume may
  // change `keep` or `distributed` (and the world size).
  const trained = { ...cfg, keep: undefined, distributed: undefined };
  h.update(JSON.stringify({ stage: o.stage, kind: o.kind, cfg: trained, rows: rows.length }));
  for (const r of rows) h.update(Int32Array.from([r.inputIds.length, ...r.inputIds, ...r.labels]));
  return h.digest("hex");
}

/**
 * The latest complete checkpoint folder in `dir`, or null; `clean` (one process, or rank 0)
 * removes half-written `.tmp` ones.
 */
function latestCheckpoint(dir: string, clean = true): string | null {
  let best: { step: number; path: string } | null = null;
  for (const name of readdirSync(dir)) {
    if (clean && name.startsWith("ckpt-") && name.endsWith(".tmp")) {
      rmSync(join(dir, name), { recursive: true, force: true });
      continue;
    }
    const m = CKPT.exec(name);
    if (
      m &&
      existsSync(join(dir, name, "trainer_state.json")) &&
      (!best || Number(m[1]) > best.step)
    )
      best = { step: Number(m[1]), path: join(dir, name) };
  }
  return best?.path ?? null;
}

function readState(path: string): TrainerState {
  const file = join(path, "trainer_state.json");
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(file, "utf8")) as TrainerState;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (s?.format !== STATE_FORMAT || s.version !== STATE_VERSION)
    throw new Error(
      `${file}: field "format"/"version": expected ${STATE_FORMAT} version ${STATE_VERSION}`,
    );
  return s;
}

function trainableParameters(model: LanguageModel): [string, Tensor][] {
  return model.namedParameters().filter(([, p]) => p.requiresGrad);
}

/**
 * Trains `model` in place on one stage's examples. If `dir` holds checkpoints of this same run
 * (same config, stage, kind and data), continues from the latest one; a finished stage only
 * loads its final weights. Leaves the model in eval mode.
 */
export function trainStage(o: TrainStageOptions): StageResult {
  const cfg = parseTrainConfig(o.config, `stage "${o.stage}" train config`);
  const { model, tokenizer, stage } = o;
  const plugins = o.plugins ?? [];
  const names = new Set<string>();
  for (const p of plugins) {
    if (!p.supports.includes(o.kind))
      throw new Error(
        `plugin "${p.name}" does not support ${o.kind} fine-tuning (supports: ${p.supports.join(", ")})`,
      );
    if (names.has(p.name)) throw new Error(`plugin "${p.name}" is given twice`);
    names.add(p.name);
  }
  if (cfg.precision !== undefined) applyPrecision(model, cfg.precision);
  let trainable = trainableParameters(model);
  if (trainable.length === 0)
    throw new Error(`stage "${stage}": the model has no parameter that requires grad`);
  if (o.kind === "lora" && trainable.length === model.namedParameters().length)
    throw new Error(
      `stage "${stage}": kind is "lora" but no parameter is frozen; apply LoRA to the model first`,
    );
  const kind = model.kind;
  if (cfg.packing && kind !== "causal")
    throw new Error(`stage "${stage}": packing needs a causal model`);
  const precision: Precision = resolvePrecision(cfg.precision, trainable[0][1].dtype);
  if (cfg.gradientCheckpointing) assertCheckpointing(model);
  const keep = cfg.keep ?? DEFAULT_KEEP;

  const tokenize = (ex: SftText) => tokenizeSft(tokenizer, ex, { kind, maxLength: cfg.maxLength });
  const tokenized = tokenizeAll(tokenizer, o.examples, { kind, maxLength: cfg.maxLength });
  const rows = cfg.packing ? pack(tokenized, cfg.maxLength) : tokenized;
  if (rows.length === 0) throw new Error(`stage "${stage}": no examples`);
  const plan = new StagePlan(
    rows.map((r) => rowTokens(r, kind)),
    cfg,
    stage,
  );
  const total = plan.totalSteps;
  const runId = fingerprint(o, cfg, rows);
  const device = trainable[0][1].device;
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const decoderStartId = model.kind === "seq2seq" ? model.config.decoder_start_token_id : undefined;
  // Known before any step (the weights at stage start), so the same on a resume.
  const rounding = roundingWarning(stage, precision, cfg.lr, model);
  const startWarnings = rounding === null ? [] : [rounding];
  const stageWarnings = (losses: readonly number[]): string[] => {
    const w = stuckLossWarning(stage, losses, model.config.vocab_size, cfg.lr);
    return w === null ? startWarnings : [...startWarnings, w];
  };

  const dist = o.dist ?? null;
  const main = dist === null || dist.isMain;
  mkdirSync(o.dir, { recursive: true });
  const resumeFrom = latestCheckpoint(o.dir, main);
  const resumed = resumeFrom ? readState(resumeFrom) : null;
  if (resumed && resumed.fingerprint !== runId)
    throw new Error(
      `${join(resumeFrom!, "trainer_state.json")}: checkpoint of a different run (config, stage, kind or data differ); use an empty dir`,
    );
  if (resumed && resumed.step === total) {
    loadWeights(resumeFrom!, trainable, device);
    loadPluginStates(resumeFrom!, resumed, plugins, model);
    model.eval();
    return {
      steps: total,
      losses: resumed.losses,
      checkpoint: resumeFrom!,
      resumedFrom: resumeFrom,
      warnings: stageWarnings(resumed.losses),
      skippedSteps: resumed.skippedSteps ?? [],
    };
  }

  const ndim = new Map(trainable.map(([n, p]) => [n, p.ndim]));
  const flats = flattenParameters(model, (n) => (ndim.get(n)! >= 2 ? "decay" : "no_decay"));
  trainable = trainableParameters(model); // now views into the flat buffers
  const dp = dist && new DataParallel(dist, cfg.distributed ?? "ddp", flats, stage, cfg.gradAccum);
  if (dp?.mode === "zero2" && plugins.some((p) => p.afterBackward))
    throw new Error(
      `stage "${stage}": distributed: zero2 leaves each rank a shard of the gradients, which the afterBackward hook of ${plugins.find((p) => p.afterBackward)!.name} reads whole; use zero1 or ddp`,
    );
  const decayOf = (f: { name: string }) => (f.name === "decay" ? cfg.weightDecay : 0);
  const optimizer = new AdamW(
    dp ? dp.groups(decayOf) : flats.map((f) => ({ params: f, weightDecay: decayOf(f) })),
    { lr: cfg.lr },
  );
  const scaler = POLICIES[precision].lossScaling ? new GradScaler() : null;
  if (scaler && resumed?.scaler) scaler.loadState(resumed.scaler);
  const skippedSteps = resumed?.skippedSteps?.slice() ?? [];
  // The model as the policy runs it (itself for the "true" policies): the loss and every
  // plugin's forward go through it.
  const net = precisionView(model, precision);
  const schedule = {
    name: cfg.schedule,
    warmupSteps: Math.ceil(cfg.warmup * total),
    totalSteps: total,
  };
  const ctx: TrainContext = {
    stage,
    kind: o.kind,
    model: net,
    optimizer,
    config: cfg,
    tokenize,
    step: resumed?.step ?? 0,
    totalSteps: total,
    epoch: 0,
    micro: 0,
    microBatches: 0,
  };
  const losses = resumed ? resumed.losses.slice() : [];
  let lastCheckpoint = resumeFrom;
  const save = (step: number): string => {
    const final = step === total;
    lastCheckpoint = writeCheckpoint(o.dir, step, {
      trainable,
      optimizer: final ? null : optimizer.stateDict(), // a finished stage needs no optimizer state
      dp,
      plugins,
      state: {
        format: STATE_FORMAT,
        version: STATE_VERSION,
        stage,
        kind: o.kind,
        step,
        totalSteps: total,
        fingerprint: runId,
        optimizerStep: optimizer.stepCount,
        losses,
        plugins: {},
        ...(scaler ? { scaler: scaler.state(), skippedSteps } : {}),
      },
    });
    if (main) retain(o.dir, lastCheckpoint, keep, final);
    return lastCheckpoint;
  };

  try {
    model.train();
    if (resumed) {
      loadWeights(resumeFrom!, trainable, device);
      loadOptimizer(resumeFrom!, resumed, optimizer, device, dp);
      loadPluginStates(resumeFrom!, resumed, plugins, model);
    } else dp?.broadcastWeights();
    for (const p of plugins) p.stageStart?.(ctx);

    const started = performance.now();
    let tokensSeen = 0;
    let stepsRun = 0;
    for (let step = ctx.step + 1; step <= total; step++) {
      const { epoch, micro } = plan.step(step);
      Object.assign(ctx, { step, epoch, micro: 0, microBatches: micro.length });
      const batches = micro.map((ix) => {
        let b = ix.map((i) => rows[i]);
        for (const p of plugins) b = p.batch?.(ctx, b) ?? b;
        return b;
      });
      const tokens = batches.reduce(
        (n, b) => n + b.reduce((m, r) => m + labelTokens(r, kind), 0),
        0,
      );
      if (tokens === 0)
        throw new Error(`stage "${stage}": step ${step} has no response token to learn from`);
      optimizer.lr = cfg.lr * lrFactor(schedule, step - 1);

      let stepLoss = 0;
      batches.forEach((b, m) => {
        tokensSeen += b.reduce((n, r) => n + rowTokens(r, kind), 0); // every rank's: the step's
        if (dp && !dp.mine(m)) return; // another rank's micro-batch
        ctx.micro = m;
        manualSeed(seedOf(cfg.seed, stage, "step", step, m));
        stepLoss += tidy(() => {
          const batch = collate(b, { kind, padId, decoderStartId, device });
          const { sum, logits, backward } = cfg.gradientCheckpointing
            ? checkpointedTokenLossSum(model, batch, {
                run: (fn) => withPrecision(precision, device, fn),
              })
            : { ...tokenLossSum(net, batch), backward: (root: Tensor) => root.backward() };
          let loss = sum.div(tokens);
          for (const p of plugins) loss = p.loss?.(ctx, loss, { batch, logits }) ?? loss;
          const value = loss.item();
          if (!Number.isFinite(value))
            throw new NonFiniteLossError(
              stage,
              step,
              lastCheckpoint,
              `loss is ${value} (micro-batch ${m})`,
            );
          backward(scaler ? scaler.scaleLoss(loss) : loss);
          return value;
        });
      });
      if (dp) {
        dp.syncGrads();
        stepLoss = dp.sum(stepLoss);
      }
      const grads = dp ? dp.grads() : optimizer.grads();
      scaler?.unscale(grads);
      for (const p of plugins) p.afterBackward?.(ctx);
      // 16-mixed: an inf/NaN gradient (the scale overflowed float16) skips the step.
      const skip = scaler !== null && !(dp ? dp.allFinite() : allFinite(grads));
      if (skip) skippedSteps.push(step);
      else {
        if (cfg.clip > 0) {
          const norm = clipGradNorm(grads, cfg.clip, dp?.sharded ? dp.sumSquares : undefined);
          if (!Number.isFinite(norm))
            throw new NonFiniteLossError(stage, step, lastCheckpoint, `gradient norm is ${norm}`);
        }
        optimizer.step();
        dp?.gatherWeights();
      }
      scaler?.update(skip);
      if (dp) dp.zeroGrad();
      else optimizer.zeroGrad();
      losses.push(stepLoss);
      for (const p of plugins) p.afterStep?.(ctx);
      if (cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0 && step < total) save(step);

      stepsRun++;
      const elapsed = (performance.now() - started) / 1000;
      const warnings = [
        ...(stepsRun === 1 ? startWarnings : []),
        ...(step === total ? stageWarnings(losses).slice(startWarnings.length) : []),
      ];
      if (o.onProgress)
        o.onProgress({
          stage,
          step,
          totalSteps: total,
          loss: stepLoss,
          lr: optimizer.lr,
          tokensPerSecond: tokensSeen / Math.max(elapsed, 1e-9),
          etaSeconds: (elapsed / stepsRun) * (total - step),
          ...(scaler ? { lossScale: scaler.scale, skippedSteps: skippedSteps.length } : {}),
          ...(warnings.length > 0 ? { warnings } : {}),
        });
      else for (const w of warnings) process.stderr.write(`WARNING: ${w}\n`);
      // A graceful stop (src/train/stop.ts): checkpoint this step, then leave.
      const stop = step < total ? stopRequestedByAny(dist) : null; // every rank stops at this step
      if (stop !== null) {
        const at = lastCheckpoint === join(o.dir, `ckpt-${step}`) ? lastCheckpoint : save(step);
        throw new StopRequested(stop, `in stage "${stage}" at step ${step}/${total}: ${at}`);
      }
    }
    ctx.step = total;
    for (const p of plugins) p.stageEnd?.(ctx);
    const checkpoint = save(total);
    return {
      steps: total,
      losses,
      checkpoint,
      resumedFrom: resumeFrom,
      warnings: stageWarnings(losses),
      skippedSteps,
    };
  } finally {
    model.eval();
    releaseGradients(model, flats); // the weights stay in the flat buffers, for the next stage
    optimizer.dispose();
    dp?.dispose();
  }
}

/**
 * Applies `keep` in a stage's folder after `latest` was written: "last" and "none" remove every
 * other step checkpoint; "all" keeps them, and at the stage end (`final`) drops their optimizer
 * state, which only an in-progress checkpoint needs.
 */
function retain(dir: string, latest: string, keep: Keep, final: boolean): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!CKPT.test(name) || path === latest) continue;
    if (keep !== "all") rmSync(path, { recursive: true, force: true });
    else if (final) rmSync(join(path, "optimizer.safetensors"), { force: true });
  }
}

/** Writes `ckpt-<step>.tmp/` and renames it to `ckpt-<step>`; returns the final path. */
function writeCheckpoint(
  dir: string,
  step: number,
  c: {
    trainable: [string, Tensor][];
    /** Null at a stage's end: only an in-progress checkpoint needs the optimizer state. */
    optimizer: { step: number; lr: number; tensors: Map<string, Tensor> } | null;
    /** Several ranks: each writes its optimizer shard (zero), then rank 0 the rest. */
    dp: DataParallel | null;
    plugins: readonly TrainPlugin[];
    state: TrainerState;
  },
): string {
  const final = join(dir, `ckpt-${step}`);
  const tmp = `${final}.tmp`;
  const dist = c.dp?.dist;
  const main = !dist || dist.isMain;
  if (main) {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
  }
  if (dist) {
    dist.barrier(); // the folder exists
    if (c.optimizer) c.dp!.saveOptimizer(tmp, c.optimizer);
    dist.barrier(); // every shard is written
    if (!main) {
      dist.barrier(); // rank 0 has renamed the folder
      return final;
    }
  }
  saveTensors(join(tmp, "model.safetensors"), new Map(c.trainable), { format: "pt" });
  if (c.optimizer && !dist) saveTensors(join(tmp, "optimizer.safetensors"), c.optimizer.tensors);
  const pluginTensors = new Map<string, Tensor>();
  for (const p of c.plugins) {
    const s = p.state?.();
    if (!s) continue;
    c.state.plugins[p.name] = s.meta ?? null;
    for (const [k, t] of s.tensors) pluginTensors.set(`${p.name}/${k}`, t);
  }
  if (pluginTensors.size > 0) saveTensors(join(tmp, "plugins.safetensors"), pluginTensors);
  const fd = openSync(join(tmp, "trainer_state.json"), "w");
  try {
    writeFileSync(fd, JSON.stringify(c.state, null, 1));
    fsyncSync(fd); // the tensors are fsynced by saveTensors; the folder is complete before the rename
  } finally {
    closeSync(fd);
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  dist?.barrier();
  return final;
}

function loadWeights(path: string, trainable: [string, Tensor][], device: string): void {
  const file = join(path, "model.safetensors");
  const saved = loadTensors(file, { device });
  try {
    const want = new Set(trainable.map(([n]) => n));
    const extra = [...saved.keys()].filter((k) => !want.has(k));
    const missing = [...want].filter((k) => !saved.has(k));
    if (extra.length || missing.length)
      throw new Error(
        `${file}: tensors do not match the trainable parameters: missing [${missing.join(", ")}], unexpected [${extra.join(", ")}]`,
      );
    noGrad(() => {
      for (const [n, p] of trainable) {
        const t = saved.get(n)!;
        if (t.shape.join(",") !== p.shape.join(","))
          throw new Error(
            `${file}: tensor "${n}" has shape [${t.shape}] but the model's is [${p.shape}]`,
          );
        p.copy_(t);
      }
    });
  } finally {
    for (const t of saved.values()) t.dispose();
  }
}

function loadOptimizer(
  path: string,
  s: TrainerState,
  optimizer: AdamW,
  device: string,
  dp: DataParallel | null,
): void {
  const tensors = dp ? dp.loadOptimizerState(path, device) : readOptimizerState(path, device);
  try {
    optimizer.loadStateDict({ step: s.optimizerStep, lr: optimizer.lr, tensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Hands each plugin its saved state; the tensors become the plugin's to keep or dispose. */
function loadPluginStates(
  path: string,
  s: TrainerState,
  plugins: readonly TrainPlugin[],
  model: LanguageModel,
): void {
  const file = join(path, "plugins.safetensors");
  const all = existsSync(file) ? loadTensors(file) : new Map<string, Tensor>();
  for (const p of plugins) {
    if (!p.loadState) continue;
    if (!(p.name in s.plugins))
      throw new Error(`${join(path, "trainer_state.json")}: no state for plugin "${p.name}"`);
    const tensors = new Map<string, Tensor>();
    for (const [k, t] of all)
      if (k.startsWith(`${p.name}/`)) tensors.set(k.slice(p.name.length + 1), t);
    p.loadState({ tensors, meta: s.plugins[p.name] } satisfies PluginState, model);
    for (const k of tensors.keys()) all.delete(`${p.name}/${k}`);
  }
  for (const t of all.values()) t.dispose();
}
