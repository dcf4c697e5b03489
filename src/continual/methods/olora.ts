/**
 * O-LoRA: orthogonal subspace learning. Each task trains a fresh LoRA (A re-drawn as PEFT
 * initialises it, B = 0); the adapters of earlier tasks are frozen and stay in the model. Their
 * sum is what the model computes, so at the start of each new stage the finished adapter is
 * merged into the frozen base weights (the same function, no extra matmuls) and its A and B kept
 * in the plugin's state. The loss gains
 *   λ₁ · Σ_layers Σ_{i<t} ‖A_i A_tᵀ‖²_F  +  λ₂ · Σ_layers (‖A_t‖²_F + ‖B_t‖²_F),
 * with A stored (r, in) as in PEFT, so A_i A_tᵀ is the paper's A_iᵀ A_t for (in, r) matrices.
 *
 * References: Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual
 * Learning" (EMNLP Findings), eqs. 5–7, λ₁ = 0.5, λ₂ = 0 (cmnfriend/O-LoRA's defaults; its code
 * sums |A_i A_tᵀ| and ‖θ_t‖ unsquared, the paper squares them, as here).
 *
 * Resuming: the trainer saves only the live adapter, so the model handed to a resumed run has its
 * pretrained base; `loadState` merges the frozen adapters of earlier tasks back into it.
 */
import { z } from "zod";
import { Generator, noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { loraLayers, type LoraLinear } from "../../models/lora.js";
import { defineMethod, disposeAll, drawSeed } from "./method.js";

/** Σ_i ‖A_i A_tᵀ‖²_F for frozen A_i (r_i, in) and the current A_t (r, in). */
export function orthogonalityLoss(frozen: readonly Tensor[], current: Tensor): Tensor {
  return tidy(() =>
    frozen.map((a) => a.matmul(current.t()).pow(2).sum()).reduce((x, y) => x.add(y)),
  );
}

/** Adds an adapter's update (alpha / r) · B A into the layer's base weight. */
function mergeInto(l: LoraLinear, A: Tensor, B: Tensor): void {
  noGrad(() =>
    tidy(() => {
      const d = B.matmul(A).mul(l.scaling); // (out, in)
      l.weight.add_(l.fanInFanOut ? d.t() : d);
    }),
  );
}

export const olora = defineMethod({
  name: "olora",
  description: "O-LoRA: a fresh LoRA per task, kept orthogonal to earlier tasks' frozen A",
  supports: ["lora"],
  options: z.strictObject({
    lambda1: z.number().min(0).default(0.5), // λ₁: orthogonality weight (O-LoRA: 0.5)
    lambda2: z.number().min(0).default(0), // λ₂: L2 on the current adapter (O-LoRA: 0)
  }),
  edits: ["adapters"],
  scale: {
    distributed: "every rank merges and re-draws the adapters from the same seed, so they agree",
    precision: "any policy: the merge adds into the master weights",
  },
  create: (o, env) => {
    /** Frozen adapters: `${task index}.${layer path}.lora_{A,B}.weight` → tensor. */
    const frozen = new Map<string, Tensor>();
    let tasks: string[] = []; // stages whose adapters are frozen, in order
    let live: string | null = null; // the stage the model's adapter belongs to
    const merged = new Set<string>(); // frozen tasks already added into this process's model
    let byLayer = new Map<string, Tensor[]>(); // layer path → frozen A of every earlier task

    const key = (task: number, path: string, ab: "A" | "B") => `${task}.${path}.lora_${ab}.weight`;
    const index = (paths: string[]) => {
      byLayer = new Map(paths.map((p) => [p, tasks.map((_, i) => frozen.get(key(i, p, "A"))!)]));
    };

    /** Merges every frozen adapter this process has not merged yet into the base weights. */
    const mergeFrozen = (layers: [string, LoraLinear][]): void =>
      tasks.forEach((task, i) => {
        if (merged.has(task)) return;
        for (const [path, l] of layers)
          mergeInto(l, frozen.get(key(i, path, "A"))!, frozen.get(key(i, path, "B"))!);
        merged.add(task);
      });

    return {
      stageStart(ctx) {
        const layers = loraLayers(ctx.model);
        if (layers.length === 0)
          throw new Error("olora: the model has no LoRA layer; apply LoRA first");
        mergeFrozen(layers);
        if (live !== null && live !== ctx.stage) {
          const t = tasks.length;
          const g = new Generator(drawSeed(env.seed, "olora", ctx.stage));
          noGrad(() => {
            for (const [path, l] of layers) {
              const A = l.lora_A.weight;
              const B = l.lora_B.weight;
              frozen.set(
                key(t, path, "A"),
                tidy(() => A.detach().clone()),
              );
              frozen.set(
                key(t, path, "B"),
                tidy(() => B.detach().clone()),
              );
              mergeInto(l, A, B);
              const bound = 1 / Math.sqrt(A.size(1)); // PEFT: kaiming-uniform(a=√5) = U(±1/√in)
              A.uniform_(-bound, bound, g);
              B.zero_();
            }
          });
          tasks.push(live);
          merged.add(live);
        }
        live = ctx.stage;
        index(layers.map(([p]) => p));
      },
      loss(ctx, loss) {
        const terms: Tensor[] = [];
        for (const [path, l] of loraLayers(ctx.model)) {
          const A = l.lora_A.weight;
          const earlier = byLayer.get(path) ?? [];
          if (o.lambda1 > 0 && earlier.length > 0)
            terms.push(orthogonalityLoss(earlier, A).mul(o.lambda1));
          if (o.lambda2 > 0)
            terms.push(A.pow(2).sum().add(l.lora_B.weight.pow(2).sum()).mul(o.lambda2));
        }
        if (terms.length === 0) return;
        return loss.add(terms.reduce((a, b) => a.add(b)).div(ctx.microBatches));
      },
      state: () => ({ tensors: frozen, meta: { tasks, live } }),
      loadState(s, model) {
        disposeAll(frozen);
        for (const [k, t] of s.tensors) frozen.set(k, t);
        ({ tasks, live } = structuredClone(s.meta as { tasks: string[]; live: string | null }));
        // A resumed model holds its pretrained base: put the earlier tasks' adapters back now,
        // also when the stage was found complete and no other hook runs.
        mergeFrozen(loraLayers(model));
      },
    };
  },
});
