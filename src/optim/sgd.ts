/**
 * SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD
 * (torch/optim/sgd.py `_single_tensor_sgd`): g ← g + wd·p; b ← μb + (1−τ)g (b = g at the first
 * step); g ← g + μb if Nesterov else b; p ← p − lr·g.
 */
import { keep, noGrad, tidy, type Tensor } from "../tensor/index.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(groups: ParamGroupInput[], o: SGDOptions) {
    super(groups, o.lr, o.weightDecay ?? 0);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
  }

  protected update(
    param: Tensor,
    grad: Tensor,
    state: Map<string, Tensor>,
    _step: number,
    lr: number,
    wd: number,
  ): void {
    noGrad(() =>
      tidy(() => {
        let g = wd !== 0 ? grad.add(param, wd) : grad;
        if (this.momentum !== 0) {
          let buf = state.get("momentum_buffer");
          if (!buf) {
            buf = keep(g.clone().detach());
            state.set("momentum_buffer", buf);
          } else buf.mul_(this.momentum).add_(g, 1 - this.dampening);
          g = this.nesterov ? g.add(buf, this.momentum) : buf;
        }
        param.add_(g, -lr);
      }),
    );
  }
}
