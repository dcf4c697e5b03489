/**
 * An exponential moving average of the trainable weights: the average starts at each stage's
 * starting weights, is updated after every optimizer step, ē ← β·ē + (1 − β)·θ, and replaces the
 * weights at the stage's end (so evaluation and the next stage see the average).
 *
 * References: Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging"
 * (iterate averaging); timm `utils/model_ema.py` `ModelEmaV2` (the update above, no bias
 * correction).
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { defineMethod, disposeAll, snapshotWeights } from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/** β·ē + (1 − β)·θ. */
export function emaUpdate(avg: Tensor, theta: Tensor, decay: number): Tensor {
  return tidy(() => avg.mul(decay).add(theta.mul(1 - decay)));
}

export const ema = defineMethod({
  name: "ema",
  description: "EMA of the weights (decay β), swapped in at each stage's end",
  supports: ["full", "lora"],
  options: z.strictObject({
    decay: z.number().min(0).max(1).default(0.999), // β
  }),
  scale: {
    distributed:
      "updated after each optimizer step from the full weights every rank holds: the same on every rank",
    precision: "the average is kept in the master weights' dtype (float32 under mixed precision)",
  },
  create: (o) => {
    const avg = new Map<string, Tensor>();
    let stage: string | null = null; // the stage `avg` belongs to
    return {
      stageStart(ctx) {
        if (stage === ctx.stage) return; // resumed: the average came with the state
        snapshotWeights(avg, ctx.model);
        stage = ctx.stage;
      },
      afterStep(ctx) {
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) {
            const a = avg.get(n)!;
            tidy(() => a.copy_(emaUpdate(a, p, o.decay)));
          }
        });
      },
      stageEnd(ctx) {
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) p.copy_(avg.get(n)!);
        });
      },
      state: () => ({ tensors: avg, meta: { stage } }),
      loadState(s) {
        disposeAll(avg);
        for (const [n, t] of s.tensors) avg.set(n, t);
        stage = (s.meta as { stage: string | null }).stage;
      },
    };
  },
});
