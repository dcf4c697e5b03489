/**
 * HellaSwag (Zellers et al. 2019) as lm-eval v0.4.x `lm_eval/tasks/hellaswag/hellaswag.yaml` +
 * `utils.py`: validation split, `process_docs` builds query = preprocess(activity_label + ": " +
 * ctx_a + " " + ctx_b.capitalize()) and choices = preprocess(endings), where preprocess strips,
 * turns " [title]" into ". ", drops "[...]" and replaces "  " with " "; target `label`; acc and
 * acc_norm. Data: HF `hellaswag` or the original rowanz jsonl (`hellaswag_val_subset1000.jsonl`,
 * read in file order; the original's integer `label` becomes the HF string label).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, accNormMean, defineTask, type Doc } from "../task.js";
import { checkFields, type Fields, mapRows, readJsonl } from "./files.js";

interface HellaswagDoc extends Doc {
  label: string;
  query: string;
  choices: string[];
  gold: number;
}

/** Python's `str.capitalize()`: first character upper case, the rest lower case. */
const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();

export function preprocess(text: string): string {
  return text
    .trim()
    .replaceAll(" [title]", ". ")
    .replace(/\[.*?\]/g, "")
    .replaceAll("  ", " ");
}

const ORIGINAL_FILES: Record<string, string> = { validation: "hellaswag_val_subset1000.jsonl" };

const fields: Fields = {
  activity_label: "string",
  ctx_a: "string",
  ctx_b: "string",
  endings: "string[]",
  label: "string|integer",
};

/** A label that indexes the endings (lm-eval's `int(doc["label"])`). */
function checkLabel(doc: Doc, where: string): void {
  const endings = doc.endings as string[];
  const label = String(doc.label);
  if (!/^\d+$/.test(label) || Number(label) >= endings.length)
    throw new Error(
      `${where}: field "label" ${JSON.stringify(doc.label)} does not index the ${endings.length} endings`,
    );
}

export const hellaswag = defineTask<HellaswagDoc>({
  task: "hellaswag",
  category: "reasoning",
  version: 1,
  datasetPath: "hellaswag",
  dir: "hellaswag",
  async original(dataDir, split) {
    const path = ORIGINAL_FILES[split] && join(dataDir, "hellaswag", ORIGINAL_FILES[split]);
    if (!path || !existsSync(path)) return null;
    return mapRows(await readJsonl(path), (r, where) => {
      checkFields(r, fields, where);
      checkLabel(r, where);
      return { ...r, label: String(r.label) };
    });
  },
  fields,
  checkDoc: checkLabel,
  trainingSplit: "train",
  validationSplit: "validation",
  processDocs: (docs) =>
    docs.map((d) => {
      const ctx = `${d.ctx_a} ${capitalize(String(d.ctx_b))}`;
      return {
        ...d,
        label: String(d.label),
        query: preprocess(`${d.activity_label}: ${ctx}`),
        choices: (d.endings as string[]).map(preprocess),
        gold: Number(d.label),
      };
    }),
  docToText: (d) => d.query,
  docToTarget: (d) => Number(d.label),
  docToChoice: (d) => d.choices,
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});
