/**
 * e-SNLI explanation generation (Camburu et al. 2018; the "Expl" task of Scialom et al. 2022
 * and Luo et al. 2023): given a premise, a hypothesis and their gold relation, explain it.
 * Data: shared `instructions/esnli/`, OanaMariaCamburu/e-SNLI aligned line files s1 (premise),
 * s2 (hypothesis), labels, preproc1_expl_{1,2,3} (tokenised, lower-cased explanations).
 * The train CSV is absent from the snapshot, so dev (9842) trains and test (9824) tests.
 * The output is explanation 1; `references` holds all three.
 */
import { join } from "node:path";
import { readAlignedLines } from "../../io/dataset.js";
import { makeTask, type InstructionExample, type TaskDefinition } from "../instruction.js";

/** How each e-SNLI label reads in the instruction. */
const RELATION: Record<string, string> = {
  entailment: "entails",
  contradiction: "contradicts",
  neutral: "neither entails nor contradicts",
};

function readSplit(dir: string, split: "dev" | "test"): InstructionExample[] {
  const names = ["s1", "s2", "labels", "preproc1_expl_1", "preproc1_expl_2", "preproc1_expl_3"];
  const files = names.map((n) => join(dir, `${n}.${split}`));
  return readAlignedLines(files).map((cols, row) => {
    const [premise, hypothesis, label, ...expls] = cols.map((c) => c.trim());
    const relation = RELATION[label];
    if (relation === undefined) {
      throw new Error(
        `${files[2]}:${row + 1}: unknown label "${label}" (expected ${Object.keys(RELATION).join(", ")})`,
      );
    }
    return {
      instruction: `Explain why the premise ${relation} the hypothesis.`,
      input: `Premise: ${premise}\nHypothesis: ${hypothesis}`,
      output: expls[0],
      references: expls,
    };
  });
}

export const esnli: TaskDefinition = {
  name: "esnli",
  description: "Explain an NLI label (e-SNLI)",
  metric: "rougeL",
  async load(dataDir, options) {
    const dir = join(dataDir, "instructions", "esnli");
    return makeTask(
      "esnli",
      "rougeL",
      { train: readSplit(dir, "dev"), test: readSplit(dir, "test") },
      options,
    );
  },
};
