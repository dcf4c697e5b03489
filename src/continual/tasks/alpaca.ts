/**
 * Alpaca general instruction data (Taori et al. 2023, tatsu-lab/stanford_alpaca). Data: shared
 * `instructions/alpaca/alpaca_5000.json`, a 5000-example subset of alpaca_data.json, records
 * `{instruction, input, output}`. No test split ships, so a seeded `testFraction` is held out.
 * Licence CC BY-NC 4.0.
 */
import { join } from "node:path";
import {
  makeTask,
  readInstructionExamples,
  seededSplit,
  type TaskDefinition,
} from "../instruction.js";

export const alpaca: TaskDefinition = {
  name: "alpaca",
  description: "General instruction following (Stanford Alpaca, 5000-example subset)",
  metric: "rougeL",
  async load(dataDir, options = {}) {
    const rows = await readInstructionExamples(
      join(dataDir, "instructions", "alpaca", "alpaca_5000.json"),
      {
        fields: { instruction: "instruction", input: "input", output: "output" },
      },
    );
    const splits = seededSplit(rows, {
      testFraction: options.testFraction ?? 0.1,
      seed: options.seed ?? 0,
    });
    return makeTask("alpaca", "rougeL", splits, options);
  },
};
