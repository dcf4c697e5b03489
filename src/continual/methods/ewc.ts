/**
 * Elastic Weight Consolidation, online variant. After each stage the diagonal (empirical) Fisher
 * of the trainable parameters is estimated on that stage's examples, F_new = mean over examples
 * of (∂ log p(y|x) / ∂θ)², with log p(y|x) the summed log-likelihood of the response tokens, one
 * example at a time, in eval mode. It is folded in as F ← γ·F + F_new and the anchor becomes
 * θ* ← θ. Later stages add λ/2 · Σ F (θ − θ*)² to the loss.
 *
 * References: Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks"
 * (PNAS), eq. 3; Schwarz et al. 2018, "Progress & Compress" (ICML), online EWC (γ); Avalanche
 * `training/plugins/ewc.py` (mode="online", decay_factor).
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { collate } from "../../train/data.js";
import { tokenLossSum } from "../../train/trainer.js";
import type { TrainContext } from "../../train/plugin.js";
import { makeRng, shuffled } from "../rng.js";
import {
  defineMethod,
  disposeAll,
  drawSeed,
  snapshotWeights,
  stageIndex,
  type MethodEnv,
} from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/** λ/2 · Σ F (θ − θ*)² over every parameter. */
export function ewcPenalty(
  terms: readonly { fisher: Tensor; theta: Tensor; star: Tensor }[],
  lambda: number,
): Tensor {
  return tidy(() => {
    let sum = terms[0].fisher.mul(terms[0].theta.sub(terms[0].star).pow(2)).sum();
    for (const t of terms.slice(1)) sum = sum.add(t.fisher.mul(t.theta.sub(t.star).pow(2)).sum());
    return sum.mul(lambda / 2);
  });
}

/** Online EWC's Fisher update F ← γ·F + F_new (F_new alone for the first task). */
export function onlineFisher(old: Tensor | null, fresh: Tensor, gamma: number): Tensor {
  return tidy(() => (old ? old.mul(gamma).add(fresh) : fresh.clone()));
}

/** Diagonal empirical Fisher of the trainable parameters on `examples` (one at a time). */
function estimateFisher(
  ctx: TrainContext,
  examples: readonly { prompt: string; response: string }[],
): Map<string, Tensor> {
  const { model } = ctx;
  const params = trainableParameters(ctx.model);
  const device = params[0][1].device;
  const decoderStartId = model.kind === "seq2seq" ? model.config.decoder_start_token_id : undefined;
  const acc = new Map(params.map(([n, p]) => [n, tidy(() => p.detach().mul(0))]));
  const wasTraining = model.training;
  model.eval();
  ctx.optimizer.zeroGrad();
  try {
    for (const ex of examples) {
      tidy(() => {
        const batch = collate([ctx.tokenize(ex)], {
          kind: model.kind,
          padId: 0,
          decoderStartId,
          device,
        });
        tokenLossSum(model, batch).sum.backward(); // ∇(−log p(y|x)); squared, the sign goes
        noGrad(() => {
          for (const [n, p] of params) {
            const g = p.grad;
            if (g) acc.get(n)!.addcmul_(g, g);
          }
        });
      });
      ctx.optimizer.zeroGrad();
    }
  } finally {
    model.train(wasTraining);
  }
  noGrad(() => {
    for (const t of acc.values()) t.div_(examples.length);
  });
  return acc;
}

export const ewc = defineMethod({
  name: "ewc",
  description: "online EWC: a diagonal-Fisher pull toward the weights after each earlier task",
  supports: ["full", "lora"],
  options: z.strictObject({
    lambda: z.number().min(0).default(100), // λ: penalty weight
    gamma: z.number().min(0).max(1).default(1), // γ: decay of the earlier Fisher (1 = plain sum)
    samples: z.number().int().positive().default(64), // examples the Fisher is estimated on
  }),
  scale: {
    distributed:
      "every rank estimates the same Fisher on the same examples after each stage (whole, not sharded), so the penalty is the same on every rank",
    precision:
      "the Fisher backward is not loss-scaled: under 16-mixed, tiny per-example gradients can flush to zero in float16 activations (an underestimate); bf16 and 32-bit are exact",
  },
  create: (o, env: MethodEnv) => {
    const fisher = new Map<string, Tensor>();
    const star = new Map<string, Tensor>();
    let tasks: string[] = [];
    let terms: { name: string; fisher: Tensor; star: Tensor }[] = [];
    return {
      stageStart(ctx) {
        const named = new Map(trainableParameters(ctx.model));
        terms = [...fisher].map(([name, f]) => {
          if (!named.has(name))
            throw new Error(
              `ewc: parameter "${name}" of an earlier stage does not train in stage "${ctx.stage}"`,
            );
          return { name, fisher: f, star: star.get(name)! };
        });
      },
      loss(ctx, loss) {
        if (terms.length === 0) return;
        const named = new Map(trainableParameters(ctx.model));
        const penalty = ewcPenalty(
          terms.map((t) => ({ ...t, theta: named.get(t.name)! })),
          o.lambda,
        );
        return loss.add(penalty.div(ctx.microBatches));
      },
      stageEnd(ctx) {
        const all = env.stages[stageIndex(env, ctx.stage)].examples;
        const rng = makeRng(drawSeed(env.seed, "ewc", ctx.stage));
        const fresh = estimateFisher(ctx, shuffled(all, rng).slice(0, o.samples));
        for (const [n, f] of fresh) {
          const old = fisher.get(n) ?? null;
          fisher.set(n, onlineFisher(old, f, o.gamma));
          old?.dispose();
          f.dispose();
        }
        snapshotWeights(star, ctx.model);
        tasks.push(ctx.stage);
        terms = [];
      },
      state() {
        const tensors = new Map<string, Tensor>();
        for (const [n, t] of fisher) tensors.set(`fisher.${n}`, t);
        for (const [n, t] of star) tensors.set(`star.${n}`, t);
        return { tensors, meta: { tasks } };
      },
      loadState(s) {
        disposeAll(fisher);
        disposeAll(star);
        for (const [k, t] of s.tensors) {
          if (k.startsWith("fisher.")) fisher.set(k.slice(7), t);
          else if (k.startsWith("star.")) star.set(k.slice(5), t);
          else throw new Error(`ewc: unexpected state tensor "${k}"`);
        }
        tasks = [...((s.meta as { tasks: string[] }).tasks ?? [])];
      },
    };
  },
});
