/**
 * Replay (experience rehearsal): every micro-batch of stage t gets examples of stages 0…t−1,
 * drawn uniformly with replacement, so that they make up `ratio` of its rows. As the 1% rehearsal
 * of Scialom et al. 2022 ("Fine-tuned Language Models are Continual Learners", CT0), with the
 * replayed share set per batch rather than per epoch. The first stage has nothing to replay.
 * `memory_per_task` bounds the episodic memory to that many examples of each earlier task,
 * chosen once per task by reservoir sampling (Vitter 1985; as in Chaudhry et al. 2019, "On Tiny
 * Episodic Memories in Continual Learning", arXiv 1902.10486) or uniformly at random, from the
 * run's seed, so a resumed run replays the same memory.
 */
import { z } from "zod";
import { defineMethod, MEMORY_SELECTION, mixingHook, taskMemory } from "./method.js";

export const replay = defineMethod({
  name: "replay",
  description: "mix examples of earlier tasks into every batch at ratio r",
  supports: ["full", "lora"],
  options: z.strictObject({
    ratio: z.number().min(0).lt(1).default(0.1), // share of each batch's rows that are replayed
    memory_per_task: z.number().int().positive().nullable().default(null), // examples kept per earlier task; null = all
    selection: z.enum(MEMORY_SELECTION).default("reservoir"), // how a bounded memory picks them
  }),
  edits: ["rows"],
  scale: {
    distributed:
      "the rows are drawn from (seed, stage, step, micro-batch), so each rank adds the same rows to the micro-batches it runs as one process would",
    precision: "any policy: it only adds rows",
  },
  create: (o, env) => {
    const earlier = new Map<string, readonly { prompt: string; response: string }[]>();
    return {
      batch: mixingHook("replay", o.ratio, env.seed, (ctx) => {
        let pool = earlier.get(ctx.stage);
        if (!pool) {
          pool = taskMemory(env, ctx.stage, o.memory_per_task, o.selection, "replay");
          earlier.set(ctx.stage, pool);
        }
        return pool;
      }),
    };
  },
});
