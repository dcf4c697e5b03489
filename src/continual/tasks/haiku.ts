/**
 * Haiku generation (Scialom et al. 2022, "Fine-tuned Language Models are Continual Learners",
 * CT0's HGen-style "Haiku" task). Data: shared `instructions/scialom_ct0/haiku/haiku{train,test}.json`
 * from ThomasScialom/T0_continual_learning, JSON Lines despite the .json name, records
 * `{"translation": {"en1": instruction, "en2": haiku}}`; 9741 train / 974 test.
 */
import { join } from "node:path";
import { makeTask, readInstructionExamples, type TaskDefinition } from "../instruction.js";

const fields = { instruction: "translation.en1", output: "translation.en2" };

export const haiku: TaskDefinition = {
  name: "haiku",
  description: "Write a haiku about a given topic (CT0)",
  metric: "rougeL",
  async load(dataDir, options) {
    const dir = join(dataDir, "instructions", "scialom_ct0", "haiku");
    return makeTask(
      "haiku",
      "rougeL",
      {
        train: await readInstructionExamples(join(dir, "haikutrain.json"), { fields }),
        test: await readInstructionExamples(join(dir, "haikutest.json"), { fields }),
      },
      options,
    );
  },
};
