/**
 * Sequential fine-tuning, the baseline of Luo et al. 2023 (arXiv 2308.08747): each task is
 * trained on after the previous one with nothing done against forgetting. The plugin has no hooks.
 */
import { z } from "zod";
import { defineMethod } from "./method.js";

export const sequential = defineMethod({
  name: "sequential",
  description: "plain sequential fine-tuning (the baseline): no mitigation",
  supports: ["full", "lora"],
  options: z.strictObject({}),
  scale: {
    distributed: "the same as one process: nothing to reduce",
    precision: "any policy",
  },
  create: () => ({}),
});
