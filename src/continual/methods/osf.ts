/**
 * OSF, orthogonal subspace fine-tuning: at the start of each stage every linear weight W (out, in)
 * is split by its SVD, W = U_k S_k V_k + (the rest); the top-k singular subspace is frozen and
 * training moves W only in its complement. The frozen rank k grows with each task, so what
 * earlier tasks wrote into the dominant directions stays there.
 *
 * PEFT's OSF parameterises W by its SVD factors and, after every backward, projects the gradients
 * of the trainable factors: dU_low ← dU_low − U_high (U_highᵀ dU_low) and
 * dV_low ← dV_low − (dV_low V_highᵀ) V_high. In weight space this is the two-sided projection of
 * W's gradient, G ← (I − U Uᵀ) G (I − Vᵀ V), which is what this method applies to each full
 * weight. AdamW's per-coordinate scaling and weight decay would leak back into the frozen
 * subspace, so after every step the frozen part is also restored exactly:
 *   W ← W − U (Uᵀ W − C),  then  W ← W − (W Vᵀ − D) V,   with C = Uᵀ W₀ and D = W₀ Vᵀ,
 * i.e. W = W₀ + (I − U Uᵀ)(W − W₀)(I − Vᵀ V). Weights outside the linear layers (embeddings,
 * norms, the output head) are frozen as PEFT freezes every non-adapter weight: restored after each
 * step to their stage-start values.
 *
 * The frozen rank of stage t (0-based) is k_t = round(min(out, in) · min(max_rank, rank + t · growth)),
 * PEFT's `effective_rank` given as a fraction (its default 0.5), raised per task as PEFT's
 * continual-learning example does.
 *
 * References: Nayak et al. 2025, "Sculpting Subspaces: Constrained Full Fine-Tuning in LLMs for
 * Continual Learning" (arXiv 2504.07097); PEFT `tuners/osf/utils.py`
 * (`decompose_weight_matrix`, `project_gradient_to_orthogonal_space`) and `OSFConfig.effective_rank`.
 */
import { z } from "zod";
import { noGrad, opN, tidy, type Tensor } from "../../tensor/index.js";
import type { TrainContext } from "../../train/plugin.js";
import { defineMethod, disposeAll, stageIndex } from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/** (I − U Uᵀ) G (I − Vᵀ V): G (out, in) with its components along U (out, k) and V (k, in) removed. */
export function projectComplement(g: Tensor, U: Tensor, V: Tensor): Tensor {
  return tidy(() => {
    const left = g.sub(U.matmul(U.t().matmul(g))); // PEFT's dU projection
    return left.sub(left.matmul(V.t()).matmul(V)); // PEFT's dV projection
  });
}

/** W with Uᵀ W = C and W Vᵀ = D restored: W₀ + (I − U Uᵀ)(W − W₀)(I − Vᵀ V) given C = Uᵀ W₀, D = W₀ Vᵀ. */
export function restoreTop(W: Tensor, U: Tensor, V: Tensor, C: Tensor, D: Tensor): Tensor {
  return tidy(() => {
    const w1 = W.sub(U.matmul(U.t().matmul(W).sub(C)));
    return w1.sub(w1.matmul(V.t()).sub(D).matmul(V));
  });
}

/** The top-k left (out, k) and right (k, in) singular vectors of W. */
export function topSubspace(W: Tensor, k: number): { U: Tensor; V: Tensor } {
  return tidy(() => {
    const [U, , Vh] = opN("aten::linalg_svd", [W.float(), false]);
    return { U: U.narrow(1, 0, k).contiguous(), V: Vh.narrow(0, 0, k).contiguous() };
  });
}

/** The frozen rank of a (rows, cols) weight at task t. */
export function frozenRank(
  rows: number,
  cols: number,
  t: number,
  o: { rank: number; growth: number; max_rank: number },
): number {
  return Math.round(Math.min(rows, cols) * Math.min(o.max_rank, o.rank + t * o.growth));
}

/** Weights OSF decomposes: 2-D and not an embedding or the output head. */
const EMBEDDING = /(^|\.)(embed_tokens|embed_positions|lm_head|wte|wpe|shared)(\.|$)/;
export const isOsfTarget = (name: string, p: Tensor): boolean =>
  p.shape.length === 2 && !EMBEDDING.test(name);

export const osf = defineMethod({
  name: "osf",
  description: "OSF: freeze each weight's top singular subspace, train in its complement",
  supports: ["full"],
  edits: ["gradient"],
  scale: {
    distributed:
      "the projection acts on the step's all-reduced gradient and the SVDs on identical weights, so every rank applies the same update; zero2 is refused (each rank holds a shard of the gradient)",
    precision:
      "SVD, projection and restoration run in float32 (the gradient is unscaled first under 16-mixed); with bf16 weights the frozen subspace is restored to the weights' rounding",
  },
  refuse: (_o, s) =>
    s.distributed === "zero2"
      ? "osf projects the whole gradient of each weight after the backward pass, and distributed: zero2 leaves each rank a shard of it; use zero1 or ddp"
      : null,
  options: z.strictObject({
    rank: z.number().min(0).lt(1).default(0.5), // frozen share of min(out, in) at task 0 (PEFT: 0.5)
    growth: z.number().min(0).lt(1).default(0.1), // added to the frozen share per later task
    max_rank: z.number().min(0).lt(1).default(0.9), // cap on the frozen share
  }),
  create: (o, env) => {
    /** `U.<name>`, `V.<name>`, `C.<name>`, `D.<name>` per target; `keep.<name>` for the rest. */
    const held = new Map<string, Tensor>();
    let stage: string | null = null;
    const targets = (ctx: TrainContext) =>
      trainableParameters(ctx.model).filter(([n, p]) => isOsfTarget(n, p));
    return {
      name: "osf",
      supports: ["full"],
      stageStart(ctx) {
        if (stage === ctx.stage) return; // resumed: the subspaces came with the state
        disposeAll(held);
        const t = stageIndex(env, ctx.stage);
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) {
            if (!isOsfTarget(n, p)) {
              held.set(
                `keep.${n}`,
                tidy(() => p.detach().clone()),
              );
              continue;
            }
            const k = frozenRank(p.size(0), p.size(1), t, o);
            const { U, V } = topSubspace(p, k);
            held.set(`U.${n}`, U);
            held.set(`V.${n}`, V);
            held.set(
              `C.${n}`,
              tidy(() => U.t().matmul(p.float())),
            );
            held.set(
              `D.${n}`,
              tidy(() => p.float().matmul(V.t())),
            );
          }
        });
        stage = ctx.stage;
      },
      afterBackward(ctx) {
        noGrad(() => {
          for (const [n, p] of targets(ctx))
            tidy(() => {
              const g = p.grad;
              if (g === null) return;
              g.copy_(projectComplement(g.float(), held.get(`U.${n}`)!, held.get(`V.${n}`)!));
            });
        });
      },
      afterStep(ctx) {
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model))
            tidy(() => {
              const keep = held.get(`keep.${n}`);
              if (keep) return void p.copy_(keep);
              const [U, V, C, D] = ["U", "V", "C", "D"].map((x) => held.get(`${x}.${n}`)!);
              p.copy_(restoreTop(p.float(), U, V, C, D));
            });
        });
      },
      state: () => ({ tensors: held, meta: { stage } }),
      loadState(s) {
        disposeAll(held);
        for (const [n, t] of s.tensors) held.set(n, t);
        stage = (s.meta as { stage: string | null }).stage;
      },
    };
  },
});
