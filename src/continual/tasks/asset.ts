/**
 * ASSET sentence simplification (Alva-Manchego et al. 2020; the "Simp" task of Scialom et al.
 * 2022 and Luo et al. 2023, scored with SARI). Data: shared `instructions/asset/`,
 * facebookresearch/asset `asset.{valid,test}.orig` and ten human simplifications
 * `.simp.0`–`.simp.9`, aligned by line. valid (2000) trains, test (359) tests; the output is
 * simplification 0 and `references` holds all ten.
 */
import { join } from "node:path";
import { readAlignedLines } from "../../io/dataset.js";
import { makeTask, type InstructionExample, type TaskDefinition } from "../instruction.js";

const REFERENCES = 10;

function readSplit(dir: string, split: "valid" | "test"): InstructionExample[] {
  const files = [
    `asset.${split}.orig`,
    ...Array.from({ length: REFERENCES }, (_, k) => `asset.${split}.simp.${k}`),
  ];
  return readAlignedLines(files.map((f) => join(dir, f))).map(([orig, ...simps]) => ({
    instruction: "Simplify the following sentence.",
    input: orig.trim(),
    output: simps[0].trim(),
    references: simps.map((s) => s.trim()),
  }));
}

export const asset: TaskDefinition = {
  name: "asset",
  description: "Simplify a sentence (ASSET, SARI against 10 references)",
  metric: "sari",
  async load(dataDir, options) {
    const dir = join(dataDir, "instructions", "asset");
    return makeTask(
      "asset",
      "sari",
      { train: readSplit(dir, "valid"), test: readSplit(dir, "test") },
      options,
    );
  },
};
