/**
 * Replay (experience rehearsal): every micro-batch of stage t gets examples of stages 0…t−1,
 * drawn uniformly with replacement, so that they make up `ratio` of its rows. As the 1% rehearsal
 * of Scialom et al. 2022 ("Fine-tuned Language Models are Continual Learners", CT0), with the
 * replayed share set per batch rather than per epoch. The first stage has nothing to replay.
 */
import { z } from "zod";
import { defineMethod, mixingHook, stageIndex } from "./method.js";

export const replay = defineMethod({
  name: "replay",
  description: "mix examples of earlier tasks into every batch at ratio r",
  supports: ["full", "lora"],
  options: z.strictObject({
    ratio: z.number().min(0).lt(1).default(0.1), // share of each batch's rows that are replayed
  }),
  create: (o, env) => {
    const earlier = new Map<string, readonly { prompt: string; response: string }[]>();
    return {
      name: "replay",
      supports: ["full", "lora"],
      batch: mixingHook("replay", o.ratio, env.seed, (ctx) => {
        let pool = earlier.get(ctx.stage);
        if (!pool) {
          pool = env.stages.slice(0, stageIndex(env, ctx.stage)).flatMap((s) => s.examples);
          earlier.set(ctx.stage, pool);
        }
        return pool;
      }),
    };
  },
});
