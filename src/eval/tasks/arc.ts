/**
 * ARC Easy / Challenge (Clark et al. 2018) as lm-eval v0.4.x `lm_eval/tasks/arc/arc_easy.yaml`
 * (arc_challenge includes it): test split, "Question: {question}\nAnswer:", choices
 * `choices.text`, target `choices.label.index(answerKey)`, acc and acc_norm. Data: HF `ai2_arc`
 * (ARC-Easy / ARC-Challenge) or AI2's original jsonl `ARC-{Easy,Challenge}-{Train,Dev,Test}.jsonl`
 * (`question.stem`, `question.choices[{text,label}]`, `answerKey`).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, accNormMean, defineTask, type Doc } from "../task.js";
import { type Fields, field, mapRows, readJsonl } from "./files.js";

interface ArcDoc extends Doc {
  id: string;
  question: string;
  choices: { text: string[]; label: string[] };
  answerKey: string;
}

const ORIGINAL_SPLIT: Record<string, string> = { train: "Train", validation: "Dev", test: "Test" };

const fields: Fields = {
  question: "string",
  "choices.text": "string[]",
  "choices.label": "string[]",
  answerKey: "string",
};

/** lm-eval's `choices.label.index(answerKey)` raises when the key is not a label. */
export function checkAnswerKey(doc: Doc, where: string): void {
  const { text, label } = doc.choices as { text: string[]; label: string[] };
  if (text.length !== label.length)
    throw new Error(`${where}: fields "choices.text" and "choices.label" differ in length`);
  if (!label.includes((doc.answerKey as string).trimStart()))
    throw new Error(
      `${where}: field "answerKey" ${JSON.stringify(doc.answerKey)} is not one of choices.label [${label.join(", ")}]`,
    );
}

function arcTask(task: "arc_easy" | "arc_challenge", name: "ARC-Easy" | "ARC-Challenge") {
  const folder = name === "ARC-Easy" ? "ARC-e" : "ARC-c";
  return defineTask<ArcDoc>({
    task,
    version: 1,
    datasetPath: "allenai/ai2_arc",
    datasetName: name,
    dir: "arc",
    async original(dataDir, split) {
      const path =
        ORIGINAL_SPLIT[split] &&
        join(dataDir, "arc", folder, `${name}-${ORIGINAL_SPLIT[split]}.jsonl`);
      if (!path || !existsSync(path)) return null;
      return mapRows(await readJsonl(path), (r, where) => {
        const choices = field(r, "question.choices", where, "object[]").map((c, j) => ({
          text: field(c, "text", `${where}: question.choices[${j}]`, "string"),
          label: field(c, "label", `${where}: question.choices[${j}]`, "string"),
        }));
        return {
          id: field(r, "id", where, "string"),
          question: field(r, "question.stem", where, "string"),
          choices: { text: choices.map((c) => c.text), label: choices.map((c) => c.label) },
          answerKey: field(r, "answerKey", where, "string"),
        };
      });
    },
    fields,
    checkDoc: checkAnswerKey,
    trainingSplit: "train",
    validationSplit: "validation",
    testSplit: "test",
    docToText: (d) => `Question: ${d.question}\nAnswer:`,
    docToTarget: (d) => d.choices.label.indexOf(d.answerKey),
    docToChoice: (d) => d.choices.text,
    outputType: "multiple_choice",
    metrics: [accMean, accNormMean],
  });
}

export const arc_easy = arcTask("arc_easy", "ARC-Easy");
export const arc_challenge = arcTask("arc_challenge", "ARC-Challenge");
