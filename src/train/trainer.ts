/**
 * Supervised fine-tuning of one stage: the one visible training loop. Its configuration schema is
 * in config.ts, its resumable checkpoints' I/O in checkpoint.ts.
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
 * - A plugin's afterBackward may ask for another gradient at the step's current weights
 *   (`ctx.gradientAt`: the step's own micro-batches again, or other rows) without losing the
 *   step's own; it is reduced across ranks and unscaled as the step's. A-GEM's reference
 *   gradient and SAM's second pass use it (src/continual/methods/agem.ts, sam.ts).
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
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { crossEntropy, manualSeed, noGrad, tidy, type Tensor } from "../tensor/index.js";
import { flattenParameters, releaseGradients, trainableParameters } from "../nn/index.js";
import { AdamW, allFinite, clipGradNorm, GradScaler, lrFactor } from "../optim/index.js";
import type { LanguageModel } from "../models/index.js";
import type { Tokenizer } from "../io/tokenizer.js";
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
import type { TrainContext, TrainPlugin, TuningKind } from "./plugin.js";
import type { ProgressEvent } from "./progress.js";
import {
  applyPrecision,
  POLICIES,
  precisionView,
  resolvePrecision,
  roundingWarning,
  withPrecision,
  type Precision,
} from "./precision.js";
import { assertCheckpointing, checkpointed, type CheckpointOptions } from "./checkpointing.js";
import { StopRequested, stopRequestedByAny } from "./stop.js";
import { DataParallel } from "./distributed.js";
import { seedOf } from "../util/random.js";
import type { Dist } from "../dist/index.js";
import {
  DEFAULT_KEEP,
  parseTrainConfig,
  type TrainConfig,
  type TrainConfigInput,
} from "./config.js";
import {
  latestCheckpoint,
  loadOptimizer,
  loadPluginStates,
  loadWeights,
  readState,
  retain,
  STATE_FORMAT,
  STATE_VERSION,
  writeCheckpoint,
} from "./checkpoint.js";

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
    gradientAt: () => {
      throw new Error("ctx.gradientAt is only available in afterBackward");
    },
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

  /**
   * Forward and backward of one micro-batch (`tokens`: the label tokens of all the micro-batches
   * it belongs with), gradients accumulated; returns its loss. `seed` names its dropout stream.
   */
  const backwardMicro = (
    b: SftFeatures[],
    m: number,
    tokens: number,
    seed: (string | number)[],
    hooks: boolean,
  ): number => {
    manualSeed(seedOf(cfg.seed, stage, ...seed));
    return tidy(() => {
      const batch = collate(b, { kind, padId, decoderStartId, device });
      const { sum, logits, backward } = cfg.gradientCheckpointing
        ? checkpointedTokenLossSum(model, batch, {
            run: (fn) => withPrecision(precision, device, fn),
          })
        : { ...tokenLossSum(net, batch), backward: (root: Tensor) => root.backward() };
      let loss = sum.div(tokens);
      if (hooks) for (const p of plugins) loss = p.loss?.(ctx, loss, { batch, logits }) ?? loss;
      const value = loss.item();
      if (!Number.isFinite(value))
        throw new NonFiniteLossError(
          stage,
          ctx.step,
          lastCheckpoint,
          `loss is ${value} (micro-batch ${m})`,
        );
      backward(scaler ? scaler.scaleLoss(loss) : loss);
      return value;
    });
  };
  // afterBackward's `ctx.gradientAt`: the step's micro-batches, and how many gradients it took.
  let stepBatches: SftFeatures[][] = [];
  let stepTokens = 0;
  let evaluations = 0;
  let inAfterBackward = false;
  ctx.gradientAt = (micro, o = {}) => {
    if (!inAfterBackward)
      throw new Error(`stage "${stage}": ctx.gradientAt is only available in afterBackward`);
    const own = micro === undefined;
    const mbs = own ? stepBatches : micro.map((r) => [...r]);
    const tokens = own
      ? stepTokens
      : mbs.reduce((n, b) => n + b.reduce((k, r) => k + labelTokens(r, kind), 0), 0);
    if (tokens === 0) throw new Error(`stage "${stage}": ctx.gradientAt: no response token`);
    const call = evaluations++;
    const saved = flats.map((f) => tidy(() => f.grad.clone()));
    const { micro: m0, microBatches: n0 } = ctx;
    try {
      for (const f of flats) f.grad.zero_();
      ctx.microBatches = mbs.length;
      mbs.forEach((b, m) => {
        if (dp && !dp.mine(m)) return;
        ctx.micro = m;
        backwardMicro(b, m, tokens, ["gradient", ctx.step, call, m], o.hooks ?? own);
      });
      dp?.syncGrads(); // reduced across ranks as the step's own gradient
      scaler?.unscale(flats.map((f) => f.grad));
      const out = new Map<string, Tensor>();
      for (const [n, p] of trainableParameters(model))
        out.set(
          n,
          tidy(() => p.grad!.detach().clone()),
        );
      return out;
    } finally {
      noGrad(() => flats.forEach((f, i) => f.grad.copy_(saved[i])));
      for (const t of saved) t.dispose();
      Object.assign(ctx, { micro: m0, microBatches: n0 });
    }
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
        stepLoss += backwardMicro(b, m, tokens, ["step", step, m], true);
      });
      if (dp) {
        dp.syncGrads();
        stepLoss = dp.sum(stepLoss);
      }
      const grads = dp ? dp.grads() : optimizer.grads();
      scaler?.unscale(grads);
      [stepBatches, stepTokens, inAfterBackward] = [batches, tokens, true];
      try {
        for (const p of plugins) p.afterBackward?.(ctx);
      } finally {
        [stepBatches, inAfterBackward] = [[], false];
      }
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
