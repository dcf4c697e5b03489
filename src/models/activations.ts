/**
 * transformers' ACT2FN (`activations.py`), the activations config.json files name
 * (`activation_function`, `hidden_act`, T5's `feed_forward_proj`), for every family.
 * "gelu_new", "gelu_fast" and "gelu_pytorch_tanh" are all GELU's tanh approximation (Hendrycks
 * and Gimpel 2016); "swish" is SiLU.
 */
import type { Tensor } from "../tensor/index.js";

export const ACT2FN = {
  gelu: (x: Tensor) => x.gelu("none"),
  gelu_new: (x: Tensor) => x.gelu("tanh"),
  gelu_fast: (x: Tensor) => x.gelu("tanh"),
  gelu_pytorch_tanh: (x: Tensor) => x.gelu("tanh"),
  relu: (x: Tensor) => x.relu(),
  silu: (x: Tensor) => x.silu(),
  swish: (x: Tensor) => x.silu(),
} satisfies Record<string, (x: Tensor) => Tensor>;

export type ActivationName = keyof typeof ACT2FN;
