/**
 * Sharpness-aware minimisation around the AdamW step: with the step's gradient g at weights w,
 * the weights are moved to the worst nearby point w + ε, ε = ρ·g / ‖g‖₂ (the first-order solution
 * of max_{‖ε‖≤ρ} L(w + ε)); the gradient is taken again there, the weights are put back to w,
 * and the optimizer steps with that second gradient. ‖g‖ runs over every trainable parameter.
 *
 * References: Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently Improving
 * Generalization" (ICLR), eq. 2 and Algorithm 1; davda54/sam `sam.py` (`first_step` /
 * `second_step`, ε = ρ·g/(‖g‖ + 1e-12)); Li et al. 2024, "Revisiting Catastrophic Forgetting in
 * Large Language Model Tuning" (arXiv 2406.04836): flatter minima forget less in LLM tuning.
 *
 * The second gradient comes from the trainer's `ctx.gradientAt` (src/train/plugin.ts): the
 * step's own micro-batches, with the same rows, every method's loss terms, and reduced across
 * ranks like the first. A step costs two forward and backward passes.
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { trainableParameters } from "../../nn/index.js";
import { defineMethod } from "./method.js";

/** SAM's ε = ρ·g / (‖g‖₂ + 1e-12) over all of g (a list of tensors, one vector); null when ‖g‖ is 0 or not finite. */
export function samPerturbation(g: readonly Tensor[], rho: number): Tensor[] | null {
  return tidy(() => {
    const norm = Math.sqrt(g.reduce((s, x) => s + x.pow(2).sum().item(), 0));
    if (!(norm > 0) || !Number.isFinite(norm)) return null;
    return g.map((x) => x.mul(rho / (norm + 1e-12)));
  });
}

export const sam = defineMethod({
  name: "sam",
  description: "SAM: step with the gradient at the worst point within radius ρ (flatter minima)",
  supports: ["full", "lora"],
  options: z.strictObject({
    rho: z.number().gt(0).default(0.05), // ρ: radius of the neighbourhood (Foret et al.: 0.05)
  }),
  edits: ["gradient"],
  scale: {
    distributed:
      "ε comes from the step's gradient summed across ranks, and the second gradient is summed the same way (ctx.gradientAt), so every rank perturbs and steps alike; zero2 is refused (each rank holds a shard of the gradient)",
    precision:
      "ε is computed from the unscaled gradient in the master weights' dtype; under 16-mixed a non-finite first gradient skips the perturbation and the scaler skips the step",
  },
  refuse: (_o, s) =>
    s.distributed === "zero2"
      ? "sam reads the whole gradient after the backward pass, and distributed: zero2 leaves each rank a shard of it; use zero1 or ddp"
      : null,
  create: (o) => ({
    afterBackward(ctx) {
      const params = trainableParameters(ctx.model).filter(([, p]) => p.grad);
      const eps = samPerturbation(
        params.map(([, p]) => p.grad!),
        o.rho,
      );
      if (eps === null) return;
      const saved = params.map(([, p]) => tidy(() => p.detach().clone()));
      let second: Map<string, Tensor> | null = null;
      try {
        noGrad(() => params.forEach(([, p], i) => p.add_(eps[i])));
        second = ctx.gradientAt();
      } finally {
        // Put w back exactly (w + ε − ε would round).
        noGrad(() => params.forEach(([, p], i) => p.copy_(saved[i])));
        for (const t of [...saved, ...eps]) t.dispose();
      }
      noGrad(() => params.forEach(([n, p]) => p.grad!.copy_(second!.get(n)!)));
      for (const t of second.values()) t.dispose();
    },
  }),
});
