/**
 * OpenBookQA (Mihaylov et al. 2018) as lm-eval v0.4.x `lm_eval/tasks/openbookqa/openbookqa.yaml`:
 * test split, prompt = `question_stem`, choices `choices.text`, target
 * `choices.label.index(answerKey.lstrip())`, acc and acc_norm. Data: HF `openbookqa` (main) or
 * the original `Main/{train,dev,test}.tsv` (ID, Question Stem, Choices "(A) .. (B) ..", Complete
 * Question, Answer Key).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, accNormMean, defineTask, type Doc } from "../task.js";
import { checkAnswerKey } from "./arc.js";
import { field, mapRows, readCsv } from "./files.js";

interface OpenbookqaDoc extends Doc {
  id: string;
  question_stem: string;
  choices: { text: string[]; label: string[] };
  answerKey: string;
}

const ORIGINAL_SPLIT: Record<string, string> = { train: "train", validation: "dev", test: "test" };

/** "(A) a marsh (B) a tundra" → labels [A, B], texts ["a marsh", "a tundra"]. */
function splitChoices(s: string, where: string): { text: string[]; label: string[] } {
  const parts = s.split(/\(([A-Z])\) /).slice(1);
  if (parts.length < 4 || parts.length % 2 !== 0)
    throw new Error(`${where}: cannot split Choices "${s}"`);
  const label: string[] = [];
  const text: string[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    label.push(parts[i]);
    text.push(parts[i + 1].trim());
  }
  return { text, label };
}

export const openbookqa = defineTask<OpenbookqaDoc>({
  task: "openbookqa",
  version: 1,
  datasetPath: "openbookqa",
  datasetName: "main",
  dir: "openbookqa",
  async original(dataDir, split) {
    const path =
      ORIGINAL_SPLIT[split] && join(dataDir, "openbookqa", `${ORIGINAL_SPLIT[split]}.tsv`);
    if (!path || !existsSync(path)) return null;
    return mapRows(await readCsv(path, { header: true, delimiter: "\t" }), (r, where) => ({
      id: field(r, "ID", where, "string"),
      question_stem: field(r, "Question Stem", where, "string"),
      choices: splitChoices(field(r, "Choices", where, "string"), where),
      answerKey: field(r, "Answer Key", where, "string"),
    }));
  },
  fields: {
    question_stem: "string",
    "choices.text": "string[]",
    "choices.label": "string[]",
    answerKey: "string",
  },
  checkDoc: checkAnswerKey,
  trainingSplit: "train",
  validationSplit: "validation",
  testSplit: "test",
  docToText: (d) => d.question_stem,
  docToTarget: (d) => d.choices.label.indexOf(d.answerKey.trimStart()),
  docToChoice: (d) => d.choices.text,
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});
