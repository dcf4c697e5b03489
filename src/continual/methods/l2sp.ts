/**
 * L2-SP: an L2 pull toward the starting point, α/2 · ‖θ − θ₀‖², added to every stage's loss.
 * Full fine-tuning: θ₀ is the starting model's weights (env.startWeights). LoRA: the distance is
 * taken in weight space, where the starting model has no update, so the penalty is
 * α/2 · Σ ‖(alpha/r) · B A‖²_F over the adapted layers.
 *
 * Reference: Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with
 * Convolutional Networks" (ICML), eq. 3 (the Ω(w) = α/2 ‖w_S − w⁰_S‖² part; lethe has no new head
 * to apply their β term to).
 */
import { z } from "zod";
import { tidy, type Tensor } from "../../tensor/index.js";
import { loraLayers } from "../../models/lora.js";
import { defineMethod } from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/** α/2 · Σ ‖θ − θ₀‖² over the pairs; a null θ₀ stands for zero. */
export function l2spPenalty(pairs: readonly [Tensor, Tensor | null][], alpha: number): Tensor {
  return tidy(() => {
    const sq = pairs.map(([theta, start]) => (start ? theta.sub(start) : theta).pow(2).sum());
    return sq.reduce((a, b) => a.add(b)).mul(alpha / 2);
  });
}

export const l2sp = defineMethod({
  name: "l2sp",
  description: "L2-SP: penalise the squared distance to the starting weights",
  supports: ["full", "lora"],
  options: z.strictObject({
    alpha: z.number().min(0).default(0.01), // α: penalty weight
  }),
  scale: {
    distributed: "an elementwise pull on each rank's full weights: the same on every rank",
    precision:
      "any policy: the penalty is computed on the float32 master weights under mixed precision",
  },
  needsStartWeights: (_, kind) => kind === "full",
  create: (o, env) => ({
    loss(ctx, loss) {
      let pairs: [Tensor, Tensor | null][];
      if (ctx.kind === "lora") {
        pairs = loraLayers(ctx.model).map(([, l]) => [l.deltaWeight(), null]);
      } else {
        const start = env.startWeights();
        pairs = trainableParameters(ctx.model).map(([n, p]) => {
          const t = start.get(n);
          if (!t) throw new Error(`l2sp: the starting weights have no tensor "${n}"`);
          return [p, t];
        });
      }
      return loss.add(l2spPenalty(pairs, o.alpha).div(ctx.microBatches));
    },
  }),
});
