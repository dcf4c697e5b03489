/**
 * Model merging between stages: at the end of each stage after the first, the stage's model θ is
 * merged with the previous stage's weights θ_prev, so the knowledge of earlier tasks is carried
 * on in weight space (the first stage has no earlier task to keep; WiSE-FT, wise_ft.ts, is the
 * interpolation with the starting model). Modes:
 * - "average": θ ← (1 − r)·θ_prev + r·θ (weight averaging; Wortsman et al. 2022, model soups);
 * - "ties": TIES-merging of the task vectors τ_prev = θ_prev − θ₀ and τ = θ − θ₀: each is
 *   trimmed to its `density` largest magnitudes, the sign of every coordinate is elected as the
 *   sign of the (r-weighted) sum, and the merged value is the weighted mean of the trimmed values
 *   that agree with it (the disjoint mean); θ ← θ₀ + τ_merged;
 * - "dare": DARE: each task vector's coordinates are dropped with probability p = 1 − density
 *   and the kept ones rescaled by 1 / (1 − p), so each coordinate's expectation is unchanged;
 *   then averaged as "average" does: θ ← θ₀ + (1 − r)·τ̂_prev + r·τ̂.
 * r = `ratio` (weight of the newer model). Trimming and dropping are per tensor, as mergekit does.
 *
 * References: Yadav et al. 2023, "TIES-Merging: Resolving Interference When Merging Models"
 * (NeurIPS), Algorithm 1 (trim, elect sign, disjoint merge); Yu et al. 2024, "Language Models
 * are Super Mario: Absorbing Abilities from Homologous Models as a Free Lunch" (ICML), eq. 2
 * (DARE); arcee-ai/mergekit `merge_methods/generalized_task_arithmetic.py` (per-tensor density).
 *
 * LoRA: only "average" (of the adapters' parameters): TIES and DARE act on weight-space task
 * vectors, and an adapter's update B·A is not linear in A and B.
 */
import { z } from "zod";
import { Generator, noGrad, tidy, where, type Tensor } from "../../tensor/index.js";
import { trainableParameters } from "../../nn/index.js";
import { defineMethod, disposeAll, drawSeed, snapshotWeights, stageIndex } from "./method.js";

/** τ with all but its ⌊density·n⌋ largest-magnitude coordinates set to zero (TIES "trim"). */
export function trimToDensity(tv: Tensor, density: number): Tensor {
  return tidy(() => {
    const flat = tv.reshape(-1);
    const k = Math.floor(density * flat.numel());
    if (k >= flat.numel()) return tv.clone();
    if (k === 0) return tv.mul(0);
    const { indices } = flat.abs().topk(k);
    return flat
      .mul(0)
      .scatter(0, indices, flat.gather(0, indices))
      .reshape(...tv.shape);
  });
}

/** TIES "elect sign": the sign (+1, −1, 0) of Σ wᵢ·τᵢ per coordinate. */
export function electSign(tvs: readonly Tensor[], weights: readonly number[]): Tensor {
  return tidy(() => {
    const sum = tvs.map((t, i) => t.mul(weights[i])).reduce((a, b) => a.add(b));
    return sum.gt(0).float().sub(sum.lt(0).float());
  });
}

/**
 * TIES "disjoint merge": per coordinate, Σ wᵢ·τᵢ over the τᵢ that are non-zero with the elected
 * sign, divided by Σ wᵢ over the same; 0 where none agrees.
 */
export function disjointMerge(
  tvs: readonly Tensor[],
  weights: readonly number[],
  sign: Tensor,
): Tensor {
  return tidy(() => {
    let num = sign.mul(0);
    let den = sign.mul(0);
    tvs.forEach((t, i) => {
      const agree = t.mul(sign).gt(0).float(); // non-zero and of the elected sign
      num = num.add(t.mul(agree).mul(weights[i]));
      den = den.add(agree.mul(weights[i]));
    });
    return where(den.gt(0), num.div(where(den.gt(0), den, 1)), 0);
  });
}

/** TIES-merging of task vectors: trim each to `density`, elect signs, disjoint mean. */
export function tiesMerge(
  tvs: readonly Tensor[],
  weights: readonly number[],
  density: number,
): Tensor {
  return tidy(() => {
    const trimmed = tvs.map((t) => trimToDensity(t, density));
    return disjointMerge(trimmed, weights, electSign(trimmed, weights));
  });
}

/**
 * DARE: keeps coordinate j where u_j < density (u uniform in [0, 1), one per coordinate) and
 * rescales it by 1 / density; the others become 0. E[result] = τ.
 */
export function dareDrop(tv: Tensor, density: number, u: Tensor): Tensor {
  return tidy(() => where(u.lt(density), tv.div(density), 0));
}

export const merge = defineMethod({
  name: "merge",
  description: "after each stage, merge with the previous stage's weights (average, TIES or DARE)",
  supports: ["full", "lora"],
  options: z.strictObject({
    mode: z.enum(["average", "ties", "dare"]).default("average"),
    ratio: z.number().min(0).max(1).default(0.5), // r: weight of the newer stage's model
    density: z.number().gt(0).max(1).default(0.5), // share of each task vector kept (TIES trim; DARE 1 − p)
  }),
  scale: {
    distributed:
      "merged at each stage end from the full weights every rank holds; DARE's drop masks come from the run's seed, so every rank merges alike",
    precision:
      "merged in the master weights' dtype (float32 under mixed precision); a 16-bit 'true' policy rounds the merged weights once",
  },
  refuse: (o, s) =>
    s.kind === "lora" && o.mode !== "average"
      ? `merge mode "${o.mode}" acts on weight-space task vectors, and a LoRA adapter's update B·A is not linear in A and B; use mode: average with LoRA`
      : null,
  needsStartWeights: (o, kind) => o.mode !== "average" && kind === "full",
  create: (o, env) => {
    const previous = new Map<string, Tensor>(); // θ_prev: the trainable weights at stage start
    let stage: string | null = null; // the stage `previous` was taken at
    return {
      stageStart(ctx) {
        if (stage === ctx.stage) return; // resumed: θ_prev came with the state
        snapshotWeights(previous, ctx.model);
        stage = ctx.stage;
      },
      stageEnd(ctx) {
        if (stageIndex(env, ctx.stage) === 0) return; // nothing earlier to merge with
        if (ctx.kind === "lora" && o.mode !== "average")
          throw new Error(`merge: mode "${o.mode}" needs full fine-tuning`);
        const start = o.mode === "average" ? null : env.startWeights();
        const w = [1 - o.ratio, o.ratio];
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) {
            const prev = previous.get(n)!;
            tidy(() => {
              if (start === null) return void p.copy_(prev.mul(w[0]).add(p.mul(w[1])));
              const base = start.get(n);
              if (!base) throw new Error(`merge: the starting weights have no tensor "${n}"`);
              const tvs = [prev.sub(base), p.sub(base)];
              let merged: Tensor;
              if (o.mode === "ties") merged = tiesMerge(tvs, w, o.density);
              else {
                const g = new Generator(drawSeed(env.seed, "merge", ctx.stage, n), p.device);
                const dropped = tvs.map((t) => dareDrop(t, o.density, t.mul(0).uniform_(0, 1, g)));
                merged = dropped[0].mul(w[0]).add(dropped[1].mul(w[1]));
              }
              p.copy_(base.add(merged));
            });
          }
        });
      },
      state: () => ({ tensors: previous, meta: { stage } }),
      loadState(s) {
        disposeAll(previous);
        for (const [n, t] of s.tensors) previous.set(n, t);
        stage = (s.meta as { stage: string | null }).stage;
      },
    };
  },
});
