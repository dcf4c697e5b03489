/**
 * PIQA (Bisk et al. 2020) as lm-eval v0.4.x `lm_eval/tasks/piqa/piqa.yaml`: validation split,
 * "Question: {goal}\nAnswer:", choices [sol1, sol2], target `label`, acc and acc_norm.
 * Data: HF `piqa` or the original `<split>.jsonl` + `<split>-labels.lst` (labels aligned by line).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { accMean, accNormMean, defineTask, type Doc } from "../task.js";
import { field, readJsonl } from "./files.js";

interface PiqaDoc extends Doc {
  goal: string;
  sol1: string;
  sol2: string;
  label: number;
}

const ORIGINAL_SPLIT: Record<string, string> = { train: "train", validation: "valid" };

export const piqa = defineTask<PiqaDoc>({
  task: "piqa",
  category: "reasoning",
  version: 1,
  datasetPath: "piqa",
  dir: "piqa",
  async original(dataDir, split) {
    const name = ORIGINAL_SPLIT[split];
    const docsPath = name && join(dataDir, "piqa", `${name}.jsonl`);
    const labelsPath = name && join(dataDir, "piqa", `${name}-labels.lst`);
    if (!docsPath || !existsSync(docsPath) || !existsSync(labelsPath)) return null;
    const docs = await readJsonl(docsPath);
    const labels = (await readFile(labelsPath, "utf8")).split("\n").filter((l) => l.trim() !== "");
    if (labels.length !== docs.rows.length) {
      throw new Error(
        `${labelsPath}: ${labels.length} labels for ${docs.rows.length} rows in ${docsPath}`,
      );
    }
    return docs.rows.map((r, i) => {
      const where = docs.where(i);
      if (labels[i] !== "0" && labels[i] !== "1")
        throw new Error(
          `${labelsPath}:${i + 1}: label must be 0 or 1, got ${JSON.stringify(labels[i])}`,
        );
      return {
        goal: field(r, "goal", where, "string"),
        sol1: field(r, "sol1", where, "string"),
        sol2: field(r, "sol2", where, "string"),
        label: Number(labels[i]),
      };
    });
  },
  fields: { goal: "string", sol1: "string", sol2: "string", label: "integer" },
  checkDoc(doc, where) {
    if (doc.label !== 0 && doc.label !== 1)
      throw new Error(`${where}: field "label" must be 0 or 1, got ${doc.label}`);
  },
  trainingSplit: "train",
  validationSplit: "validation",
  docToText: (d) => `Question: ${d.goal}\nAnswer:`,
  docToTarget: (d) => d.label,
  docToChoice: (d) => [d.sol1, d.sol2],
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});
