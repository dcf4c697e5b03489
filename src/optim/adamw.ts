/**
 * AdamW (Loshchilov & Hutter 2019, decoupled weight decay), step for step the same arithmetic as
 * torch.optim.AdamW's single-tensor path (the CPU default) in PyTorch 2.x (torch/optim/adam.py
 * `_single_tensor_adam`, decoupled weight decay):
 *   p ← p·(1 − lr·wd);  m ← lerp(m, g, 1−β₁);  v ← β₂v + (1−β₂)g²
 *   p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)
 * The same ATen kernels run in the same order, so results match PyTorch bitwise on CPU.
 * Over flat parameter buffers (nn/flat.ts) a step is seven ops in all.
 */
import { noGrad, tidy, zerosLike, type Tensor, keep } from "../tensor/index.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  constructor(groups: ParamGroupInput[], o: AdamWOptions) {
    super(groups, o.lr, o.weightDecay ?? 0.01);
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
  }

  protected update(
    param: Tensor,
    grad: Tensor,
    state: Map<string, Tensor>,
    step: number,
    lr: number,
    wd: number,
  ): void {
    const [b1, b2] = this.betas;
    if (!state.has("exp_avg")) {
      state.set("exp_avg", keep(noGrad(() => zerosLike(param))));
      state.set("exp_avg_sq", keep(noGrad(() => zerosLike(param))));
    }
    const m = state.get("exp_avg")!;
    const v = state.get("exp_avg_sq")!;
    noGrad(() =>
      tidy(() => {
        param.mul_(1 - lr * wd);
        m.lerp_(grad, 1 - b1);
        v.mul_(b2).addcmul_(grad, grad, 1 - b2);
        const bc1 = 1 - b1 ** step;
        const bc2 = 1 - b2 ** step;
        const stepSize = lr / bc1;
        const denom = v.sqrt().div_(Math.sqrt(bc2)).add_(this.eps);
        param.addcdiv_(m, denom, -stepSize);
      }),
    );
  }
}
