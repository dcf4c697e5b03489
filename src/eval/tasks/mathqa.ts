/**
 * MathQA (Amini et al. 2019) as lm-eval v0.4.7 `lm_eval/tasks/mathqa/mathqa.yaml` + `utils.py`
 * (version 1.0): test split, "Question: {Problem}\nAnswer:", choices parsed from the `options`
 * string as `utils.doc_to_choice` does, target the index of `correct` in a-e; acc, acc_norm.
 * The parse keeps lm-eval's quirks: each match of `[abcd] \) .*?, |e \) .*?$` loses its first four
 * characters and trailing spaces and commas, so an answer holding ", " would be cut there, and
 * the list-like `options` of some items ("['a ) 12', 'b ) 15', ...]", 66 of the 2985 test items)
 * keep their quotes ("12'", ..., "14']"). lm-eval only warns when `correct` has no parsed choice;
 * lethe rejects the item, naming it. Data: HF `math_qa` or the official release (MathQA.zip)
 * `mathqa/{train,dev,test}.json`, JSON lists in the HF schema (HF validation = dev.json).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, accNormMean, defineTask, type Doc } from "../task.js";
import { checkFields, type Fields, readJsonList } from "./files.js";

interface MathqaDoc extends Doc {
  Problem: string;
  options: string;
  correct: string;
}

const LETTERS = ["a", "b", "c", "d", "e"];
/** HF split → release file. */
const RELEASE_FILE: Record<string, string> = {
  train: "train.json",
  validation: "dev.json",
  test: "test.json",
};
const fields: Fields = { Problem: "string", options: "string", correct: "string" };

/**
 * `utils.doc_to_choice`: Python's `re.findall(r"[abcd] \) .*?, |e \) .*?$", options)`, each match
 * `[4:].rstrip(" ,")`. Python's `.` is JS's `[^\n]`, and its `$` also matches before a final "\n".
 */
export function mathqaChoices(options: string): string[] {
  return [...options.matchAll(/[abcd] \) [^\n]*?, |e \) [^\n]*?(?=\n?$)/g)].map((m) =>
    m[0].slice(4).replace(/[ ,]+$/, ""),
  );
}

function checkAnswer(doc: Doc, where: string): void {
  const { correct, options } = doc as MathqaDoc;
  const gold = LETTERS.indexOf(correct);
  if (gold < 0)
    throw new Error(`${where}: field "correct" must be one of a-e, got ${JSON.stringify(correct)}`);
  const n = mathqaChoices(options).length;
  if (gold >= n)
    throw new Error(
      `${where}: field "correct" is "${correct}", but "options" parses into ${n} choices`,
    );
}

export const mathqa = defineTask<MathqaDoc>({
  task: "mathqa",
  category: "reasoning",
  version: 1,
  datasetPath: "math_qa",
  dir: "mathqa",
  async original(dataDir, split) {
    const path = RELEASE_FILE[split] && join(dataDir, "mathqa", RELEASE_FILE[split]);
    if (!path || !existsSync(path)) return null;
    const file = await readJsonList(path);
    file.rows.forEach((r, i) => {
      checkFields(r, fields, file.where(i));
      checkAnswer(r, file.where(i));
    });
    return file.rows;
  },
  fields,
  checkDoc: checkAnswer,
  trainingSplit: "train",
  validationSplit: "validation",
  testSplit: "test",
  docToText: (d) => `Question: ${d.Problem}\nAnswer:`,
  docToTarget: (d) => LETTERS.indexOf(d.correct),
  docToChoice: (d) => mathqaChoices(d.options),
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});
