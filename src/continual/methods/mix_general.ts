/**
 * General-instruction mixing, the mitigation Luo et al. 2023 (arXiv 2308.08747) point to:
 * general instruction data (Stanford Alpaca) makes up `ratio` of every micro-batch of every
 * stage, drawn uniformly with replacement from `env.general`.
 */
import { z } from "zod";
import { defineMethod, mixingHook } from "./method.js";

export const mixGeneral = defineMethod({
  name: "mix_general",
  description: "mix general instruction data (Alpaca) into every batch at ratio r",
  supports: ["full", "lora"],
  options: z.strictObject({
    ratio: z.number().min(0).lt(1).default(0.1), // share of each batch's rows from the general set
  }),
  edits: ["rows"],
  scale: {
    distributed:
      "the rows are drawn from (seed, stage, step, micro-batch), so each rank adds the same rows to the micro-batches it runs as one process would",
    precision: "any policy: it only adds rows",
  },
  create: (o, env) => {
    const general = env.general;
    if (general === null || general.length === 0)
      throw new Error(
        'method "mix_general" needs the general instruction set (env.general); the run has none',
      );
    return {
      batch: mixingHook("mix_general", o.ratio, env.seed, () => general),
    };
  },
});
