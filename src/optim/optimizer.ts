/**
 * The optimizer base: parameter groups, zeroing, the step loop, and state save/load.
 * A parameter is either a tensor whose `.grad` autograd fills, or a flat buffer with its
 * gradient buffer (nn/flat.ts), which makes a step a few ops over one tensor.
 */
import { keep, type Tensor, tidy } from "../tensor/index.js";
import type { FlatParameters } from "../nn/index.js";

export interface ParamRef {
  param: Tensor;
  /** The gradient tensor, when it is fixed (flat buffers); otherwise `param.grad` is read. */
  grad?: Tensor;
}

export interface ParamGroupInput {
  params: Array<Tensor | ParamRef> | FlatParameters;
  weightDecay?: number;
  /** Multiplies the optimizer's lr for this group. */
  lrScale?: number;
}

interface ParamGroup {
  params: ParamRef[];
  weightDecay: number;
  lrScale: number;
}

function isFlat(p: ParamGroupInput["params"]): p is FlatParameters {
  return !Array.isArray(p);
}

export abstract class Optimizer {
  readonly groups: ParamGroup[];
  /** The learning rate of the next step (schedules set it). */
  lr: number;
  /** Steps taken so far. */
  stepCount = 0;
  readonly state: Map<string, Tensor>[][];

  constructor(groups: ParamGroupInput[], lr: number, weightDecay: number) {
    this.lr = lr;
    this.groups = groups.map((g) => ({
      params: isFlat(g.params)
        ? [{ param: g.params.data, grad: g.params.grad }]
        : g.params.map((p) => ("param" in p ? p : { param: p })),
      weightDecay: g.weightDecay ?? weightDecay,
      lrScale: g.lrScale ?? 1,
    }));
    this.state = this.groups.map((g) => g.params.map(() => new Map<string, Tensor>()));
  }

  protected abstract update(
    param: Tensor,
    grad: Tensor,
    state: Map<string, Tensor>,
    step: number,
    lr: number,
    weightDecay: number,
  ): void;

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    this.groups.forEach((g, gi) =>
      g.params.forEach((ref, pi) =>
        tidy(() => {
          const grad = ref.grad ?? ref.param.grad;
          if (grad)
            this.update(
              ref.param,
              grad,
              this.state[gi][pi],
              this.stepCount,
              this.lr * g.lrScale,
              g.weightDecay,
            );
        }),
      ),
    );
  }

  /** Zeroes fixed gradient buffers in place and drops the others (set_to_none). */
  zeroGrad(): void {
    for (const g of this.groups)
      for (const ref of g.params) {
        if (ref.grad) ref.grad.zero_();
        else ref.param.grad = null;
      }
  }

  /** Every gradient this optimizer will use (for clipping). */
  grads(): Tensor[] {
    const out: Tensor[] = [];
    for (const g of this.groups)
      for (const ref of g.params) {
        const grad = ref.grad ?? ref.param.grad;
        if (grad) out.push(grad);
      }
    return out;
  }

  /** State tensors as `"<group>.<param>.<name>"`, plus the step count. Shared, not copied. */
  stateDict(): { step: number; lr: number; tensors: Map<string, Tensor> } {
    const tensors = new Map<string, Tensor>();
    this.state.forEach((g, gi) =>
      g.forEach((s, pi) => s.forEach((t, k) => tensors.set(`${gi}.${pi}.${k}`, t))),
    );
    return { step: this.stepCount, lr: this.lr, tensors };
  }

  /** Restores what `stateDict` gave (copies the tensors). */
  loadStateDict(sd: { step: number; lr: number; tensors: Map<string, Tensor> }): void {
    this.stepCount = sd.step;
    this.lr = sd.lr;
    for (const [key, t] of sd.tensors) {
      const [gi, pi, name] = key.split(".");
      const slot = this.state[Number(gi)]?.[Number(pi)];
      if (!slot)
        throw new Error(`optimizer state "${key}" names a parameter this optimizer does not have`);
      const ref = this.groups[Number(gi)].params[Number(pi)];
      if (t.shape.join(",") !== ref.param.shape.join(","))
        throw new Error(
          `optimizer state "${key}" has shape [${t.shape}] but the parameter is [${ref.param.shape}]`,
        );
      slot.get(name)?.dispose();
      slot.set(name, keep(t.clone().detach()));
    }
  }

  dispose(): void {
    for (const g of this.state) for (const s of g) for (const t of s.values()) t.dispose();
  }
}
