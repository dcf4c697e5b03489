/**
 * I-LoRA: a dual memory of LoRA adapters. The fast learner is the adapter that trains; the slow
 * learner is an exponential moving average of it, θ_slow ← λ·θ_slow + (1 − λ)·θ_fast after every
 * optimizer step, carried across tasks. Rows of earlier tasks are replayed into every micro-batch
 * at `ratio`, and on those rows the fast learner is pulled toward the slow one by a consistency
 * term γ · mean over the replayed response tokens of ‖z_fast − z_slow‖² / V. At each stage's end
 * the slow learner replaces the adapter, so evaluation and the next stage see it.
 *
 * The paper's consistency term compares hidden states; the model's forward here returns logits,
 * so it compares those (the logits are a fixed linear map of the last hidden state, the output
 * head, which LoRA leaves frozen).
 *
 * References: Ren et al. 2024, "Analyzing and Reducing Catastrophic Forgetting in Parameter
 * Efficient Tuning" (arXiv 2402.18865), I-LoRA, eqs. 4–6; Tarvainen & Valpola 2017, "Mean
 * teachers are better role models" (the EMA teacher).
 */
import { z } from "zod";
import { noGrad, tidy, type Tensor } from "../../tensor/index.js";
import { trainableParameters } from "../../nn/index.js";
import type { SftText } from "../../train/data.js";
import type { TrainContext } from "../../train/plugin.js";
import { emaUpdate } from "./ema.js";
import { responseLogits, rowsLogits } from "./lwf.js";
import { defineMethod, disposeAll, mixingHook, snapshotWeights, stageIndex } from "./method.js";

/** θ_slow ← λ·θ_slow + (1 − λ)·θ_fast (the EMA of ema.ts). */
export const slowUpdate = (slow: Tensor, fast: Tensor, decay: number): Tensor =>
  emaUpdate(slow, fast, decay);

/** Σ over rows of mean over the vocabulary of (fast − slow)²; both (N, V), slow without grad. */
export function consistency(fast: Tensor, slow: Tensor): Tensor {
  return tidy(() => fast.sub(slow.detach()).pow(2).mean(-1).sum());
}

/**
 * Runs `fn` with each parameter of `swaps` set to its value (null: zero), in eval mode and
 * without grad, then puts the parameters and the training mode back.
 */
export function withWeights<T>(
  ctx: TrainContext,
  swaps: readonly [Tensor, Tensor | null][],
  fn: () => T,
): T {
  const { model } = ctx;
  return noGrad(() => {
    const own = swaps.map(([p]) => tidy(() => p.detach().clone()));
    const wasTraining = model.training;
    try {
      for (const [p, t] of swaps) t ? p.copy_(t) : p.zero_();
      model.eval();
      return fn();
    } finally {
      model.train(wasTraining);
      swaps.forEach(([p], i) => p.copy_(own[i]));
      for (const t of own) t.dispose();
    }
  });
}

export const ilora = defineMethod({
  name: "ilora",
  description: "I-LoRA: an EMA slow LoRA learner, replay, and fast/slow consistency on it",
  supports: ["lora"],
  edits: ["rows", "teacher-rows"],
  scale: {
    distributed:
      "each rank replays and regularises its own rows; the slow learner follows the ranks' identical adapters, so it is the same on every rank",
    precision:
      "the slow learner is kept in the adapters' dtype (float32 under mixed precision) and its logits are computed in the model's compute dtype",
  },
  options: z.strictObject({
    decay: z.number().min(0).max(1).default(0.99), // λ: EMA decay of the slow learner
    ratio: z.number().min(0).lt(1).default(0.1), // share of each batch replayed from earlier tasks
    gamma: z.number().min(0).default(1), // γ: weight of the consistency term
  }),
  create: (o, env) => {
    const slow = new Map<string, Tensor>();
    const earlier = new Map<string, readonly SftText[]>();
    const mix = mixingHook("ilora", o.ratio, env.seed, (ctx) => {
      let pool = earlier.get(ctx.stage);
      if (!pool) {
        pool = env.stages.slice(0, stageIndex(env, ctx.stage)).flatMap((s) => s.examples);
        earlier.set(ctx.stage, pool);
      }
      return pool;
    });
    /** Per micro-batch of the current step: rows before the replayed ones, the slow logits. */
    let targets: { own: number; logits: Tensor | null }[] = [];
    let targetStep = -1;
    const clear = () => {
      for (const t of targets) t.logits?.dispose();
      targets = [];
    };
    return {
      name: "ilora",
      supports: ["lora"],
      stageStart(ctx) {
        // The slow learner starts as the first stage's starting adapter and lives on after that.
        if (slow.size === 0) snapshotWeights(slow, ctx.model);
      },
      batch(ctx, rows) {
        if (targetStep !== ctx.step) {
          clear();
          targetStep = ctx.step;
        }
        const mixed = mix(ctx, rows) ?? rows;
        const replayed = mixed.slice(rows.length);
        const logits =
          o.gamma > 0 && replayed.length > 0
            ? withWeights(
                ctx,
                trainableParameters(ctx.model).map(([n, p]) => [p, slow.get(n)!]),
                () => rowsLogits(ctx, replayed),
              )
            : null;
        targets.push({ own: rows.length, logits });
        return mixed;
      },
      loss(ctx, loss, out) {
        const target = targets[ctx.micro];
        if (!target?.logits) return;
        const B = out.batch.inputIds.size(0);
        const fast = tidy(() =>
          responseLogits(ctx.model, out.logits.narrow(0, target.own, B - target.own), {
            ...out.batch,
            labels: out.batch.labels.narrow(0, target.own, B - target.own),
          }),
        );
        if (fast.size(0) !== target.logits.size(0))
          throw new Error(
            `ilora: micro-batch ${ctx.micro} of step ${ctx.step} has ${fast.size(0)} replayed response tokens but the slow learner saw ${target.logits.size(0)}; place ilora after plugins that add rows`,
          );
        const tokens = targets.reduce((n, t) => n + (t.logits?.size(0) ?? 0), 0);
        return loss.add(consistency(fast, target.logits).mul(o.gamma / tokens));
      },
      afterStep(ctx) {
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) {
            const s = slow.get(n)!;
            tidy(() => s.copy_(slowUpdate(s, p, o.decay)));
          }
        });
      },
      stageEnd(ctx) {
        clear();
        targetStep = -1;
        noGrad(() => {
          for (const [n, p] of trainableParameters(ctx.model)) p.copy_(slow.get(n)!);
        });
      },
      state: () => ({ tensors: slow, meta: {} }),
      loadState(s) {
        disposeAll(slow);
        for (const [n, t] of s.tensors) slow.set(n, t);
      },
    };
  },
});
