/**
 * Learning without Forgetting / self-distillation: the loss gains
 * λ · T² · KL(softmax(z_teacher / T) ‖ softmax(z_student / T)), summed over the response tokens
 * and divided by the step's response tokens like the cross-entropy. The teacher is the model as
 * it was at the start of the current stage ("previous", LwF's choice) or the starting model
 * ("start"; full fine-tuning reads env.startWeights, LoRA zeroes every lora_B).
 *
 * The teacher shares the student's modules: in the batch hook, before any forward of the step,
 * the teacher's weights are copied in, its logits computed in eval mode without grad, and the
 * student's weights copied back. Place lwf after any plugin that adds rows (replay, mixing), so
 * the teacher sees the rows the student trains on.
 *
 * References: Li & Hoiem 2017, "Learning without Forgetting" (TPAMI), eq. 2 (T = 2); Hinton et
 * al. 2015, "Distilling the Knowledge in a Neural Network" (the T² factor); Avalanche
 * `training/regularization.py` `LearningWithoutForgetting`.
 */
import { z } from "zod";
import { noGrad, op, tidy, type Tensor } from "../../tensor/index.js";
import type { LanguageModel } from "../../models/index.js";
import { collate, IGNORE_INDEX, type Batch, type SftFeatures } from "../../train/data.js";
import type { TrainContext } from "../../train/plugin.js";
import { defineMethod, disposeAll, snapshotWeights } from "./method.js";
import { trainableParameters } from "../../nn/index.js";

/**
 * Σ over rows of T² · KL(softmax(teacher / T) ‖ softmax(student / T)); both (N, V) logits.
 * The teacher carries no gradient.
 */
export function distillKl(teacher: Tensor, student: Tensor, temperature: number): Tensor {
  return tidy(() => {
    const logP = teacher.detach().div(temperature).logSoftmax(-1);
    const logQ = student.div(temperature).logSoftmax(-1);
    return logP
      .exp()
      .mul(logP.sub(logQ))
      .sum()
      .mul(temperature * temperature);
  });
}

/** Logits at the positions that carry a label, in row order: (N, V). */
export function responseLogits(model: LanguageModel, logits: Tensor, batch: Batch): Tensor {
  return tidy(() => {
    if (model.kind === "seq2seq")
      return op("aten::index.Tensor", [logits, [batch.labels.ne(IGNORE_INDEX)]]);
    const mask = batch.labels.slice(1, 1).ne(IGNORE_INDEX); // (B, T-1): position t predicts t+1
    return op("aten::index.Tensor", [logits.slice(1, 0, -1), [mask]]);
  });
}

/**
 * Response-token logits (N, V) of `rows` under the model's current weights. Right padding and a
 * causal (or masked) model: the pad id never reaches a labelled position.
 */
export function rowsLogits(ctx: TrainContext, rows: SftFeatures[]): Tensor {
  const { model } = ctx;
  const device = trainableParameters(model)[0][1].device;
  const decoderStartId = model.kind === "seq2seq" ? model.config.decoder_start_token_id : undefined;
  return tidy(() => {
    const batch = collate(rows, { kind: model.kind, padId: 0, decoderStartId, device });
    const out =
      model.kind === "causal"
        ? model.forward(batch)
        : model.forward({ ...batch, decoderInputIds: batch.decoderInputIds! });
    return responseLogits(model, out.logits, batch);
  });
}

export const lwf = defineMethod({
  name: "lwf",
  description: "LwF / self-distillation on the previous-stage or starting model's outputs",
  supports: ["full", "lora"],
  options: z.strictObject({
    lambda: z.number().min(0).default(1), // λ: weight of the distillation term
    temperature: z.number().positive().default(2), // T (LwF: 2)
    teacher: z.enum(["previous", "start"]).default("previous"),
  }),
  edits: ["teacher-rows"],
  scale: {
    distributed:
      "each rank's teacher scores the micro-batches that rank runs, so the term is one process's",
    precision: "the teacher's forward runs under the same policy as the student's",
  },
  needsStartWeights: (o, kind) => o.teacher === "start" && kind === "full",
  create: (o, env) => {
    const previous = new Map<string, Tensor>(); // the teacher's trainable weights ("previous")
    let stage: string | null = null; // the stage `previous` was taken at
    let targets: Tensor[] = []; // this step's teacher logits, one per micro-batch
    let targetStep = -1;

    /** [parameter, teacher value (null = zero)] for every parameter the teacher differs in. */
    const teacherWeights = (ctx: TrainContext): [Tensor, Tensor | null][] => {
      const params = trainableParameters(ctx.model);
      if (o.teacher === "previous") return params.map(([n, p]) => [p, previous.get(n)!]);
      if (ctx.kind === "lora")
        return params.filter(([n]) => n.endsWith("lora_B.weight")).map(([, p]) => [p, null]);
      const start = env.startWeights();
      return params.map(([n, p]) => {
        const t = start.get(n);
        if (!t) throw new Error(`lwf: the starting weights have no tensor "${n}"`);
        return [p, t];
      });
    };

    const teacherLogits = (ctx: TrainContext, rows: SftFeatures[]): Tensor => {
      const { model } = ctx;
      const swaps = teacherWeights(ctx);
      return noGrad(() =>
        tidy(() => {
          const own = swaps.map(([p]) => p.clone());
          const wasTraining = model.training;
          for (const [p, t] of swaps) t ? p.copy_(t) : p.zero_();
          model.eval();
          try {
            return rowsLogits(ctx, rows);
          } finally {
            model.train(wasTraining);
            swaps.forEach(([p], i) => p.copy_(own[i]));
          }
        }),
      );
    };

    return {
      stageStart(ctx) {
        if (o.teacher !== "previous" || stage === ctx.stage) return;
        snapshotWeights(previous, ctx.model);
        stage = ctx.stage;
      },
      batch(ctx, rows) {
        if (targetStep !== ctx.step) {
          for (const t of targets) t.dispose();
          targets = [];
          targetStep = ctx.step;
        }
        targets.push(teacherLogits(ctx, rows));
      },
      loss(ctx, loss, out) {
        const teacher = targets[ctx.micro];
        const student = responseLogits(ctx.model, out.logits, out.batch);
        if (teacher.size(0) !== student.size(0))
          throw new Error(
            `lwf: micro-batch ${ctx.micro} of step ${ctx.step} has ${student.size(0)} response tokens but the teacher saw ${teacher.size(0)}; place lwf after plugins that add rows`,
          );
        const tokens = targets.reduce((n, t) => n + t.size(0), 0);
        return loss.add(distillKl(teacher, student, o.temperature).mul(o.lambda / tokens));
      },
      stageEnd() {
        for (const t of targets) t.dispose();
        targets = [];
        targetStep = -1;
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
