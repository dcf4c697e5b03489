/**
 * Model merging / WiSE-FT: after each stage the weights are interpolated with the starting
 * model's, θ ← (1 − α)·θ₀ + α·θ (α = 1: plain fine-tuning, α = 0: the starting model).
 * Full fine-tuning: θ₀ = env.startWeights. LoRA: the interpolation is taken in weight space,
 * W₀ + α·(alpha/r)·B A, i.e. every lora_B scaled by α (the starting model's B is zero), A kept.
 *
 * Reference: Wortsman et al. 2022, "Robust fine-tuning of zero-shot models" (CVPR), eq. 1
 * (WiSE-FT, weight-space ensembling with mixing coefficient α).
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { defineMethod } from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/** (1 − α)·θ₀ + α·θ; a null θ₀ stands for zero. */
export function wiseFt(start: Tensor | null, theta: Tensor, alpha: number): Tensor {
  return tidy(() => (start ? start.mul(1 - alpha).add(theta.mul(alpha)) : theta.mul(alpha)));
}

export const wiseFT = defineMethod({
  name: "wise_ft",
  description: "WiSE-FT: after each stage, interpolate with the starting weights (α)",
  supports: ["full", "lora"],
  options: z.strictObject({
    alpha: z.number().min(0).max(1).default(0.5), // α: weight of the fine-tuned model
  }),
  scale: {
    distributed:
      "the interpolation at each stage end is elementwise on full weights: the same on every rank",
    precision: "any policy: it mixes the master weights",
  },
  needsStartWeights: (_, kind) => kind === "full",
  create: (o, env) => ({
    stageEnd(ctx) {
      const params = trainableParameters(ctx.model);
      const start = ctx.kind === "full" ? env.startWeights() : null;
      noGrad(() =>
        tidy(() => {
          for (const [n, p] of params) {
            if (start) {
              const t = start.get(n);
              if (!t) throw new Error(`wise_ft: the starting weights have no tensor "${n}"`);
              p.copy_(wiseFt(t, p, o.alpha));
            } else if (n.endsWith("lora_B.weight")) p.copy_(wiseFt(null, p, o.alpha));
          }
        }),
      );
    },
  }),
});
