/**
 * Dynamic loss scaling for float16 mixed precision, as torch.amp.GradScaler in PyTorch 2.x
 * (torch/amp/grad_scaler.py; the scale update is ATen's `_amp_update_scale_`,
 * aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp):
 *   - the loss is multiplied by the scale before backward, so small float16 gradients do not
 *     flush to zero; the gradients are divided by it (`unscale`) before anything reads them;
 *   - a step whose gradients hold an inf or NaN is skipped and the scale multiplied by
 *     `backoffFactor`; after `growthInterval` finite steps in a row it is multiplied by
 *     `growthFactor` (kept only if still finite).
 * The scale is a float32, as torch keeps it: every value below is rounded with Math.fround.
 * Defaults are torch's: init 2¹⁶, growth 2, backoff 0.5, interval 2000.
 */
import { noGrad, tidy, type Tensor } from "../tensor/index.js";

export interface GradScalerOptions {
  /** @default 65536 (2¹⁶) */
  initScale?: number;
  /** @default 2 */
  growthFactor?: number;
  /** @default 0.5 */
  backoffFactor?: number;
  /** Finite steps in a row before the scale grows. @default 2000 */
  growthInterval?: number;
}

/** What a checkpoint keeps for an exact resume. */
export interface GradScalerState {
  scale: number;
  growthTracker: number;
}

export class GradScaler {
  /** The current loss scale (a float32 value). */
  scale: number;
  /** Finite steps since the scale last changed. */
  growthTracker = 0;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;

  constructor(o: GradScalerOptions = {}) {
    this.scale = Math.fround(o.initScale ?? 2 ** 16);
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
    if (!(this.scale > 0 && Number.isFinite(this.scale)))
      throw new RangeError(`GradScaler: initScale must be a positive float32, got ${o.initScale}`);
    if (!(this.growthFactor > 1))
      throw new RangeError(`GradScaler: growthFactor must be > 1, got ${this.growthFactor}`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1))
      throw new RangeError(
        `GradScaler: backoffFactor must be in (0, 1), got ${this.backoffFactor}`,
      );
    if (!(Number.isInteger(this.growthInterval) && this.growthInterval >= 1))
      throw new RangeError(
        `GradScaler: growthInterval must be an integer >= 1, got ${this.growthInterval}`,
      );
  }

  /** loss × scale, the tensor to call backward on. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.scale);
  }

  /** Divides every gradient by the scale in place (torch multiplies by the float32 1/scale). */
  unscale(grads: readonly Tensor[]): void {
    const inv = Math.fround(1 / this.scale);
    if (inv === 1) return;
    noGrad(() => {
      for (const g of grads) g.mul_(inv);
    });
  }

  /** After each step, taken or skipped (`foundInf`): backoff, or growth after the interval. */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.scale = Math.fround(this.scale * this.backoffFactor);
      this.growthTracker = 0;
      return;
    }
    const successful = this.growthTracker + 1;
    if (successful === this.growthInterval) {
      const grown = Math.fround(this.scale * this.growthFactor);
      if (Number.isFinite(grown)) this.scale = grown;
      this.growthTracker = 0;
    } else this.growthTracker = successful;
  }

  state(): GradScalerState {
    return { scale: this.scale, growthTracker: this.growthTracker };
  }

  loadState(s: GradScalerState): void {
    if (!(s.scale > 0) || !Number.isInteger(s.growthTracker) || s.growthTracker < 0)
      throw new Error(`GradScaler: bad state ${JSON.stringify(s)}`);
    this.scale = Math.fround(s.scale);
    this.growthTracker = s.growthTracker;
  }
}

/** Whether every element of every tensor is finite (no inf, no NaN). */
export function allFinite(tensors: readonly Tensor[]): boolean {
  return noGrad(() => tidy(() => tensors.every((t) => t.isfinite().all().item() !== 0)));
}
