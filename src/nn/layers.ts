/**
 * The basic layers, with torch.nn's names, parameter names and default initialisation
 * (reference: torch/nn/modules/{linear,sparse,normalization,dropout}.py). Every random init
 * takes a Generator, so the same seed gives the same weights.
 */
import {
  dropout,
  embedding,
  Generator,
  layerNorm,
  linear,
  noGrad,
  ones,
  rmsNorm,
  tidy,
  type Tensor,
  zeros,
  empty,
} from "../tensor/index.js";
import { Module } from "./module.js";

/** A new trainable tensor. */
export function parameter(t: Tensor): Tensor {
  return t.requiresGrad_(true);
}

/** y = x Wᵀ + b; W is (out, in) as in torch. Init: kaiming-uniform(a=√5), i.e. U(±1/√in). */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    inFeatures: number,
    outFeatures: number,
    o: { bias?: boolean; generator?: Generator } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = parameter(
      empty([outFeatures, inFeatures]).uniform_(-bound, bound, o.generator ?? null),
    );
    this.bias =
      o.bias === false
        ? null
        : parameter(empty([outFeatures]).uniform_(-bound, bound, o.generator ?? null));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/**
 * A Linear re-initialised as Hugging Face's `_init_weights` does: weight ~ N(0, std²), bias 0.
 * (Built as a plain Linear first, so its uniform draws also advance `g`, as torch's would.)
 */
export function normalLinear(
  inF: number,
  outF: number,
  std: number,
  g: Generator,
  bias = true,
): Linear {
  const l = new Linear(inF, outF, { bias, generator: g });
  noGrad(() => {
    l.weight.normal_(0, std, g);
    l.bias?.zero_();
  });
  return l;
}

/** A lookup table (num, dim). Init: N(0, std²), std = 1 as in torch unless given. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(num: number, dim: number, o: { generator?: Generator; std?: number } = {}) {
    super();
    this.weight = parameter(empty([num, dim]).normal_(0, o.std ?? 1, o.generator ?? null));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** LayerNorm over the last dimension; weight 1, bias 0. */
export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    o: { bias?: boolean } = {},
  ) {
    super();
    this.weight = parameter(ones([dim]));
    this.bias = o.bias === false ? null : parameter(zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

/** RMSNorm (Zhang & Sennrich 2019) as LLaMA and T5 use it: x·rsqrt(mean(x²)+eps)·weight. */
export class RMSNorm extends Module {
  weight: Tensor;
  constructor(
    dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = parameter(ones([dim]));
  }
  /** Its intermediates (x², the mean, …) go at once. */
  forward(x: Tensor): Tensor {
    return tidy(() => rmsNorm(x, this.weight, this.eps));
  }
}

/** Zeroes elements with probability p in training mode (default generator; seed with manualSeed). */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
