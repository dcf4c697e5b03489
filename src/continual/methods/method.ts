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
import type { z } from "zod";
import { tidy, type Tensor } from "../../tensor/index.js";
import type { SftFeatures, SftText } from "../../train/data.js";
import type { TrainContext, TrainPlugin, TuningKind } from "../../train/plugin.js";
import { makeRng, randomInt, type Rng } from "../rng.js";

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
}

export interface MethodDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  /** One line for `--help` and reports. */
  description: string;
  supports: readonly TuningKind[];
  /** A strict zod object whose fields all have defaults. */
  options: S;
  /**
   * Whether the plugin reads `env.startWeights()` (θ₀) with these options and tuning kind;
   * absent = never. A copy of the weights is held only for methods that say so.
   */
  needsStartWeights?(options: z.output<S>, kind: TuningKind): boolean;
  create(options: z.output<S>, env: MethodEnv): TrainPlugin;
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
export function drawSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(JSON.stringify(parts), "utf8"))
    h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

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

/** The parameters that train in this stage (full: all; LoRA: the adapters), by name. */
export function trainableParameters(ctx: TrainContext): [string, Tensor][] {
  return ctx.model.namedParameters().filter(([, p]) => p.requiresGrad);
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
