/**
 * BoolQ (Clark et al. 2019) as lm-eval v0.4.x `lm_eval/tasks/super_glue/boolq/default.yaml`:
 * validation split, "{passage}\nQuestion: {question}?\nAnswer:", choices ["no", "yes"], target
 * `label`, acc. Data: HF `super_glue/boolq` or the SuperGLUE release `BoolQ/<split>.jsonl`
 * (label true/false, also as strings, becomes 1/0 as in HF).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, defineTask, type Doc } from "../task.js";
import { field, mapRows, readJsonl } from "./files.js";

interface BoolqDoc extends Doc {
  question: string;
  passage: string;
  idx: number;
  label: number;
}

const ORIGINAL_SPLIT: Record<string, string> = { train: "train", validation: "val" };

export const boolq = defineTask<BoolqDoc>({
  task: "boolq",
  category: "reasoning",
  version: 2,
  datasetPath: "super_glue",
  datasetName: "boolq",
  dir: "superglue/BoolQ",
  async original(dataDir, split) {
    const path =
      ORIGINAL_SPLIT[split] &&
      join(dataDir, "superglue", "BoolQ", `${ORIGINAL_SPLIT[split]}.jsonl`);
    if (!path || !existsSync(path)) return null;
    return mapRows(await readJsonl(path), (r, where) => {
      // The SuperGLUE release writes true/false; some repackagings write "true"/"false".
      const label = field(r, "label", where, "boolean|string");
      const value = { true: 1, false: 0 }[String(label)];
      if (value === undefined)
        throw new Error(
          `${where}: field "label" must be true or false, got ${JSON.stringify(label)}`,
        );
      return {
        question: field(r, "question", where, "string"),
        passage: field(r, "passage", where, "string"),
        idx: field(r, "idx", where, "integer"),
        label: value,
      };
    });
  },
  fields: { question: "string", passage: "string", label: "integer" },
  checkDoc(doc, where) {
    if (doc.label !== 0 && doc.label !== 1)
      throw new Error(`${where}: field "label" must be 0 or 1, got ${doc.label}`);
  },
  trainingSplit: "train",
  validationSplit: "validation",
  docToText: (d) => `${d.passage}\nQuestion: ${d.question}?\nAnswer:`,
  docToTarget: (d) => d.label,
  docToChoice: () => ["no", "yes"],
  outputType: "multiple_choice",
  metrics: [accMean],
});
