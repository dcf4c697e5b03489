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
import { field, readJsonl } from "./files.js";

interface ArcDoc extends Doc {
  id: string;
  question: string;
  choices: { text: string[]; label: string[] };
  answerKey: string;
}

const ORIGINAL_SPLIT: Record<string, string> = { train: "Train", validation: "Dev", test: "Test" };

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
      return (await readJsonl(path)).map((r, i) => {
        const q = field<{ stem: string; choices: Array<{ text: string; label: string }> }>(
          r,
          "question",
          `${path}:${i + 1}`,
        );
        return {
          id: r.id,
          question: q.stem,
          choices: { text: q.choices.map((c) => c.text), label: q.choices.map((c) => c.label) },
          answerKey: field(r, "answerKey", `${path}:${i + 1}`),
        };
      });
    },
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
