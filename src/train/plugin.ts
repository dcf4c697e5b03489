/**
 * The trainer's plugin interface: a continual-learning method (replay, EWC, L2-SP, LwF, …) is a
 * plugin that implements only the hooks it needs; the loop in trainer.ts calls each hook on every
 * plugin in order with a for-loop. Reference: Avalanche `training/templates/base_sgd.py` and
 * `core.py` `SupervisedPlugin` (before_training_exp, before_backward, after_update, …) and its
 * `trigger_plugins`; the hook names follow lethe's STYLE.md #12.
 *
 * Order within one stage (k = 1…total optimizer steps, m = micro-batches of step k):
 *   stageStart
 *   per step: batch ×m (all before any forward) → loss ×m (one per micro-batch, each followed by
 *   its backward) → afterBackward ×1 (the step's summed gradients) → afterStep ×1
 *   stageEnd
 * A resumed stage calls stageStart once more after `loadState`; a stage found complete in its
 * checkpoint folder calls nothing.
 */
import type { Optimizer } from "../optim/index.js";
import type { LanguageModel } from "../models/index.js";
import type { Tensor } from "../tensor/index.js";
import type { Batch, SftFeatures, SftText } from "./data.js";
import type { TrainConfig } from "./config.js";

/** Full fine-tuning updates every weight; LoRA only the adapters (the base is frozen). */
export type TuningKind = "full" | "lora";

/** What the loop shows the plugins. Mutable fields change as the stage runs. */
export interface TrainContext {
  readonly stage: string;
  readonly kind: TuningKind;
  readonly model: LanguageModel;
  readonly optimizer: Optimizer;
  readonly config: TrainConfig;
  /** Tokenises an example exactly as the stage's own examples were (replay uses it). */
  readonly tokenize: (ex: SftText) => SftFeatures;
  /** The optimizer step being taken, 1-based; in stageStart/stageEnd, the steps completed. */
  step: number;
  readonly totalSteps: number;
  /** 0-based epoch of the current step. */
  epoch: number;
  /** 0-based micro-batch within the step (loss hook). */
  micro: number;
  /** Micro-batches in the current step (≤ gradAccum; the last step of an epoch may have fewer). */
  microBatches: number;
  /**
   * In afterBackward only: the gradient of the mean token loss of `micro` (default: this step's
   * own micro-batches) at the model's current weights, by trainable parameter name (copies the
   * caller owns). It is reduced across ranks as the step's own gradient is, and unscaled under
   * 16-mixed. The step's gradient in `.grad` is left as it was. `hooks`: whether the plugins'
   * loss hooks add their terms (default: for the step's own micro-batches only). A-GEM takes its
   * reference gradient from memory rows with it; SAM re-evaluates the step's gradient at
   * perturbed weights.
   */
  gradientAt(micro?: readonly SftFeatures[][], o?: { hooks?: boolean }): Map<string, Tensor>;
}

/** A plugin's resumable state: tensors (saved to safetensors) and JSON-serialisable metadata. */
export interface PluginState {
  tensors: Map<string, Tensor>;
  meta: unknown;
}

export interface TrainPlugin {
  /** Unique within a run; names the plugin's part of each checkpoint. */
  readonly name: string;
  readonly supports: readonly TuningKind[];
  stageStart?(ctx: TrainContext): void;
  /** One micro-batch's rows before collation; return a new list to add or change rows. */
  batch?(ctx: TrainContext, rows: SftFeatures[]): SftFeatures[] | void;
  /**
   * The micro-batch's loss: its share of the step's mean token loss (summed token losses over
   * the tokens of the whole step). Return `loss + penalty` to regularise; a penalty meant once
   * per step adds `penalty / ctx.microBatches` here.
   */
  loss?(ctx: TrainContext, loss: Tensor, out: { batch: Batch; logits: Tensor }): Tensor | void;
  /**
   * Once per optimizer step, after the backward of its last micro-batch (the gradients hold the
   * whole step's sum, all-reduced under ddp) and before clipping: gradients may be edited. Under
   * 16-mixed they are already unscaled, and a non-finite one left here skips the step.
   */
  afterBackward?(ctx: TrainContext): void;
  afterStep?(ctx: TrainContext): void;
  stageEnd?(ctx: TrainContext): void;
  /** Saved in every checkpoint; tensors are copied out, so they may be shared. */
  state?(): PluginState;
  /** Restores what `state()` saved, into a fresh plugin of a resumed run; `model` holds the checkpoint's weights. */
  loadState?(s: PluginState, model: LanguageModel): void;
}
