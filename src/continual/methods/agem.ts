/**
 * A-GEM, Averaged Gradient Episodic Memory: at every step of stage t > 0, a reference gradient
 * g_ref is taken on a batch drawn from an episodic memory of the earlier tasks; when the step's
 * gradient g would increase the memory loss (g·g_ref < 0), it is projected onto the half-space
 * where it does not: g ← g − (g·g_ref / g_ref·g_ref) · g_ref. The dot products run over every
 * trainable parameter at once (the flattened vector of the paper).
 *
 * References: Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM" (ICLR), eq. 11;
 * facebookresearch/agem `model.py` (the memory batch per step, the projection above); memory per
 * task chosen by reservoir sampling or at random (as replay's, src/continual/methods/method.ts).
 *
 * The reference gradient comes from the trainer's `ctx.gradientAt` (src/train/plugin.ts): the
 * memory batch's mean token loss at the step's weights, without other methods' loss terms,
 * reduced across ranks like the step's own gradient, so under data parallel every rank projects
 * the same summed g with the same g_ref.
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { trainableParameters } from "../../nn/index.js";
import type { SftFeatures, SftText } from "../../train/data.js";
import { makeRng, randomInt } from "../rng.js";
import { defineMethod, drawSeed, MEMORY_SELECTION, stageIndex, taskMemory } from "./method.js";

/**
 * A-GEM's projection of the gradient g (a list of tensors, one flattened vector) against g_ref:
 * g unchanged when g·g_ref ≥ 0, else g − (g·g_ref / g_ref·g_ref) g_ref. Returns new tensors and
 * whether it projected.
 */
export function agemProject(
  g: readonly Tensor[],
  ref: readonly Tensor[],
): { grads: Tensor[]; projected: boolean } {
  return tidy(() => {
    let dot = 0;
    let refNorm = 0;
    g.forEach((x, i) => {
      dot += x.mul(ref[i]).sum().item();
      refNorm += ref[i].pow(2).sum().item();
    });
    if (!(dot < 0) || refNorm === 0) return { grads: g.map((x) => x.clone()), projected: false };
    const c = dot / refNorm;
    return { grads: g.map((x, i) => x.sub(ref[i].mul(c))), projected: true };
  });
}

export const agem = defineMethod({
  name: "agem",
  description: "A-GEM: project the gradient so the loss on a memory of earlier tasks does not rise",
  supports: ["full", "lora"],
  options: z.strictObject({
    memory_per_task: z.number().int().positive().nullable().default(64), // examples kept per earlier task; null = all
    selection: z.enum(MEMORY_SELECTION).default("reservoir"), // how the memory picks them
    memory_batch: z.number().int().positive().default(4), // memory rows per reference gradient
  }),
  edits: ["gradient"],
  scale: {
    distributed:
      "the memory batch's reference gradient is summed across ranks like the step's gradient (ctx.gradientAt), so every rank projects alike; zero2 is refused (each rank holds a shard of the gradient)",
    precision:
      "the projection runs on unscaled gradients; under 16-mixed an inf in g_ref leaves g unprojected and the step is skipped as usual",
  },
  refuse: (_o, s) =>
    s.distributed === "zero2"
      ? "agem reads the whole gradient after the backward pass, and distributed: zero2 leaves each rank a shard of it; use zero1 or ddp"
      : null,
  create: (o, env) => {
    const memories = new Map<string, SftText[]>();
    const cache = new Map<SftText, SftFeatures>();
    return {
      afterBackward(ctx) {
        if (stageIndex(env, ctx.stage) === 0) return; // no earlier task
        let memory = memories.get(ctx.stage);
        if (!memory) {
          memory = taskMemory(env, ctx.stage, o.memory_per_task, o.selection, "agem");
          memories.set(ctx.stage, memory);
        }
        const rng = makeRng(drawSeed(env.seed, "agem", ctx.stage, ctx.step));
        const rows: SftFeatures[] = [];
        for (let i = 0; i < o.memory_batch; i++) {
          const ex = memory[randomInt(rng, memory.length)];
          let f = cache.get(ex);
          if (!f) cache.set(ex, (f = ctx.tokenize(ex)));
          rows.push(f);
        }
        const ref = ctx.gradientAt([rows], { hooks: false });
        try {
          const params = trainableParameters(ctx.model).filter(([, p]) => p.grad);
          const out = agemProject(
            params.map(([, p]) => p.grad!),
            params.map(([n]) => ref.get(n)!),
          );
          if (out.projected)
            noGrad(() => params.forEach(([, p], i) => p.grad!.copy_(out.grads[i])));
          for (const t of out.grads) t.dispose();
        } finally {
          for (const t of ref.values()) t.dispose();
        }
      },
      stageEnd() {
        memories.clear();
      },
    };
  },
});
