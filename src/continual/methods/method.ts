/**
 * The contract of a continual-learning mitigation method: a named definition with a zod options
 * schema (defaults included), the tuning kinds it supports, and `create(options, env)` returning
 * one trainer plugin (src/train/plugin.ts) that is used for every stage of a run. Plus the few
 * helpers several methods share: the run's stage lookup, per-draw seeds, batch mixing, parameter
 * access by name.
 *
 * References: Avalanche `training/plugins` (one plugin per strategy, `supports_distributed`);
 * lethe STYLE.md #16 (a method is one file, its math a pure function beside it).
 *
 * Lifecycle: the runner creates the plugin once and passes it to `trainStage` for each stage in
 * order. What must survive a restart lives in `state()`; the trainer reloads it from each
 * completed stage's checkpoint, so a resumed run rebuilds it. The model's parameter tensors are
 * replaced by flat views at every stage start, so methods look parameters up by name, never keep
 * them across stages.
 */
import { z } from "zod";
import { tidy, type Tensor } from "../../tensor/index.js";
import { trainableParameters, type Module } from "../../nn/index.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import type { SftFeatures, SftText } from "../../train/data.js";
import type { TrainContext, TrainPlugin, TuningKind } from "../../train/plugin.js";
import { makeRng, randomInt, type Rng } from "../rng.js";
import { seedOf } from "../../util/random.js";

/** One stage of the run: the name `trainStage` gets and its training examples. */
export interface StageData {
  name: string;
  examples: readonly SftText[];
}

/** What a method may need beyond the trainer's context, across the whole run. */
export interface MethodEnv {
  /** Every stage of the run in training order (replay draws from those before the current one). */
  readonly stages: readonly StageData[];
  /** The general instruction set (Alpaca), rendered; null when the run has none. */
  readonly general: readonly SftText[] | null;
  /**
   * The starting model's parameters by name (θ₀, before the first stage), on the model's device.
   * Only for methods whose `needsStartWeights` says so: the runner loads this second copy of the
   * weights for them alone, and refuses the call otherwise. The tensors stay the runner's.
   */
  startWeights(): ReadonlyMap<string, Tensor>;
  /** The run's seed; every random draw of a method derives from it, the stage and the step. */
  readonly seed: number;
  /** The model's tokenizer, for methods that generate text (sdft, lamol, ssr); absent = none. */
  readonly tokenizer?: Tokenizer;
}

/**
 * What a method changes beyond adding a loss term, so that a combination of methods can be
 * checked at config time:
 * - "rows": its batch hook adds rows to micro-batches (replay, mix_general);
 * - "gradient": its afterBackward hook rewrites the step's gradient (A-GEM, SAM): two such
 *   methods would each undo what the other's rewrite guarantees;
 * - "adapters": it re-initialises or merges the LoRA adapters between stages (O-LoRA);
 * - "teacher-rows": it computes per-row targets in its batch hook, so methods that add rows must
 *   come before it in the list (LwF).
 */
export type MethodEdit = "rows" | "gradient" | "adapters" | "teacher-rows";

/** The settings a method may not work under, known at config time. */
export interface MethodSetting {
  kind: TuningKind;
  /** train.precision; undefined = the weights' dtype's "true" policy. */
  precision: string | undefined;
  /** train.distributed; it applies only when the run has several ranks. */
  distributed: string | undefined;
}

export interface MethodDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  /** One line for `--help` and reports. */
  description: string;
  supports: readonly TuningKind[];
  /** A strict zod object whose fields all have defaults. */
  options: S;
  /** What it rewrites besides the loss (see MethodEdit); absent = nothing. */
  edits?: readonly MethodEdit[];
  /**
   * How it behaves under data parallel (several ranks) and under mixed precision, in a sentence
   * each, for the README and `--help`.
   */
  scale: { distributed: string; precision: string };
  /** Why it cannot run with these options in this setting, or null; checked at config time. */
  refuse?(options: z.output<S>, setting: MethodSetting): string | null;
  /**
   * Whether the plugin reads `env.startWeights()` (θ₀) with these options and tuning kind;
   * absent = never. A copy of the weights is held only for methods that say so.
   */
  needsStartWeights?(options: z.output<S>, kind: TuningKind): boolean;
  /** The plugin's hooks; `createMethod` names it and gives it `supports` from this definition. */
  create(options: z.output<S>, env: MethodEnv): MethodPlugin;
}

/**
 * What `create` returns: a trainer plugin without its name and supported kinds, which the
 * definition states once (a plugin that repeats them must agree with it).
 */
export type MethodPlugin = Omit<TrainPlugin, "name" | "supports"> &
  Partial<Pick<TrainPlugin, "name" | "supports">>;

/**
 * Learning-rate control between stages, available to every method and combination: stage i
 * (0-based among the trained stages) trains at `lr_per_stage[i]` when that list is given, else
 * at train.lr · `lr_decay_per_stage`^i; `rewarm: false` keeps the warmup to the first stage
 * only (later stages start at their full rate), `rewarm: true` warms up every stage as
 * train.warmup says. The defaults change nothing. The study runner applies it to each stage's
 * train config (`stageTrainConfig`); the grid over these options is the paper's open question on
 * learning-rate control (Luo et al. 2023, arXiv 2308.08747, §6). Reference for re-warming:
 * Gupta et al. 2023, "Continual Pre-Training of Large Language Models: How to (re)warm your
 * model?" (arXiv 2308.04014).
 */
export const LrControlSchema = z.strictObject({
  lr_decay_per_stage: z.number().positive().default(1), // factor per stage after the first
  rewarm: z.boolean().default(true), // warm up every stage (true) or the first only (false)
  lr_per_stage: z.array(z.number().positive()).min(1).nullable().default(null), // explicit lr per stage
});
export type LrControl = z.output<typeof LrControlSchema>;

/** The train config of trained stage `i` (0-based) of `stages` under `lr`; an error names the field. */
export function stageTrainConfig<T extends { lr: number; warmup: number }>(
  train: T,
  lr: LrControl | null | undefined,
  i: number,
  stages: number,
): T {
  if (!lr) return train;
  if (lr.lr_per_stage !== null && lr.lr_per_stage.length !== stages)
    throw new Error(
      `field "lr.lr_per_stage": ${lr.lr_per_stage.length} rates for ${stages} trained stages`,
    );
  const rate = lr.lr_per_stage?.[i] ?? train.lr * lr.lr_decay_per_stage ** i;
  return { ...train, lr: rate, warmup: i > 0 && !lr.rewarm ? 0 : train.warmup };
}

/** Checks a definition and infers its options type (`satisfies` alone would not). */
export function defineMethod<S extends z.ZodType>(d: MethodDefinition<S>): MethodDefinition<S> {
  return d;
}

/** Index of `ctx.stage` in the run's stages; an error names the stage and the known ones. */
export function stageIndex(env: MethodEnv, stage: string): number {
  const i = env.stages.findIndex((s) => s.name === stage);
  if (i < 0)
    throw new Error(
      `stage "${stage}" is not one of the run's stages (${env.stages.map((s) => s.name).join(", ")})`,
    );
  return i;
}

/** A 32-bit seed from its parts (FNV-1a over their JSON): one stream per (seed, stage, step, …). */
export const drawSeed = seedOf;

/**
 * Rows to add to a micro-batch of `n` rows so that the added ones make up `ratio` of it:
 * k = n·r / (1 − r), rounded down or up with probability equal to the fraction (`u` ∈ [0, 1)),
 * so the share is exact in expectation and exact whenever n·r / (1 − r) is an integer.
 */
export function mixCount(n: number, ratio: number, u: number): number {
  if (!(ratio >= 0 && ratio < 1))
    throw new RangeError(`mixCount: ratio must be in [0, 1), got ${ratio}`);
  const k = (n * ratio) / (1 - ratio);
  const whole = Math.floor(k + 1e-9);
  return whole + (u < k - whole - 1e-9 ? 1 : 0);
}

/**
 * A batch hook that appends rows drawn uniformly with replacement from `pool(ctx)` so they make
 * up `ratio` of every micro-batch (replay, general-instruction mixing). Draws depend only on
 * (seed, stage, step, micro-batch), so a resumed stage draws the same rows. Tokenised rows are
 * cached per pool entry.
 */
export function mixingHook(
  name: string,
  ratio: number,
  seed: number,
  pool: (ctx: TrainContext) => readonly SftText[],
): NonNullable<TrainPlugin["batch"]> {
  const cache = new Map<SftText, SftFeatures>();
  let last = { step: -1, stage: "", micro: 0 };
  return (ctx, rows) => {
    const examples = pool(ctx);
    if (examples.length === 0 || ratio === 0) return;
    // The trainer calls batch once per micro-batch, in order, before any forward.
    last =
      last.step === ctx.step && last.stage === ctx.stage
        ? { ...last, micro: last.micro + 1 }
        : { step: ctx.step, stage: ctx.stage, micro: 0 };
    const rng: Rng = makeRng(drawSeed(seed, name, ctx.stage, ctx.step, last.micro));
    const k = mixCount(rows.length, ratio, rng());
    const added: SftFeatures[] = [];
    for (let i = 0; i < k; i++) {
      const ex = examples[randomInt(rng, examples.length)];
      let f = cache.get(ex);
      if (!f) cache.set(ex, (f = ctx.tokenize(ex)));
      added.push(f);
    }
    return [...rows, ...added];
  };
}

/**
 * Replaces the tensors of `into` (disposing the old ones) with detached copies of `model`'s
 * trainable weights, by name: a method's snapshot of θ (at a stage's start or end), which the
 * method owns and saves with its state.
 */
export function snapshotWeights(into: Map<string, Tensor>, model: Module): void {
  disposeAll(into);
  for (const [n, t] of snapshot(trainableParameters(model))) into.set(n, t);
}

/** Detached copies of tensors, by name (a state snapshot the caller owns). */
export function snapshot(named: Iterable<[string, Tensor]>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [n, t] of named)
    out.set(
      n,
      tidy(() => t.detach().clone()),
    );
  return out;
}

/** Disposes every tensor of a map and empties it. */
export function disposeAll(m: Map<string, Tensor>): void {
  for (const t of m.values()) t.dispose();
  m.clear();
}

/** How a bounded episodic memory picks its examples from a task's training set. */
export const MEMORY_SELECTION = ["reservoir", "random"] as const;
export type MemorySelection = (typeof MEMORY_SELECTION)[number];

/**
 * Reservoir sampling (Vitter 1985, Algorithm R): the indices of `k` of `n` items seen one at a
 * time in their order, each kept with probability k / n; the first k fill the reservoir, item
 * i ≥ k replaces slot j = ⌊u·(i+1)⌋ when j < k. Returned in reservoir slot order.
 */
export function reservoirSample(n: number, k: number, rng: Rng): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i < k) out.push(i);
    else {
      const j = randomInt(rng, i + 1);
      if (j < k) out[j] = i;
    }
  }
  return out;
}

/** `k` of `n` indices drawn uniformly without replacement (the first k of a seeded shuffle). */
export function randomSample(n: number, k: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, Math.min(k, n));
}

/**
 * The episodic memory of the stages before `stage`: every example of each (perTask null), or
 * `perTask` of each chosen by `selection`, drawn from (seed, method, that task's stage name)
 * alone, so the same at every later stage and after a resume.
 */
export function taskMemory(
  env: MethodEnv,
  stage: string,
  perTask: number | null,
  selection: MemorySelection,
  method: string,
): SftText[] {
  return env.stages.slice(0, stageIndex(env, stage)).flatMap((s) => {
    if (perTask === null || perTask >= s.examples.length) return [...s.examples];
    const rng = makeRng(drawSeed(env.seed, method, "memory", s.name));
    const pick = selection === "reservoir" ? reservoirSample : randomSample;
    return pick(s.examples.length, perTask, rng).map((i) => s.examples[i]);
  });
}
