/**
 * LAMBADA, OpenAI's detokenised test set, as lm-eval v0.4.x
 * `lm_eval/tasks/lambada/lambada_openai.yaml`: loglikelihood of " " + last word (split on " ")
 * given the text before it; perplexity = exp(-mean ll) (bootstrap stderr) and acc = greedy match.
 * Data: HF `EleutherAI/lambada_openai` (`text`) or llm-foundry's ICL conversion
 * (`context`, `continuation`), rebuilt as text = context + " " + continuation.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, defineTask, type Doc } from "../task.js";
import { field, mapRows, readJsonl } from "./files.js";

interface LambadaDoc extends Doc {
  text: string;
}

export const lambada_openai = defineTask<LambadaDoc>({
  task: "lambada_openai",
  version: 1,
  datasetPath: "EleutherAI/lambada_openai",
  datasetName: "default",
  dir: "lambada_openai",
  async original(dataDir, split) {
    const path = join(dataDir, "llm_foundry_icl", "language_understanding", "lambada_openai.jsonl");
    if (split !== "test" || !existsSync(path)) return null;
    return mapRows(await readJsonl(path), (r, where) => ({
      text: `${field(r, "context", where, "string")} ${field(r, "continuation", where, "string")}`,
    }));
  },
  fields: { text: "string" },
  testSplit: "test",
  docToText: (d) => d.text.split(" ").slice(0, -1).join(" "),
  docToTarget: (d) => " " + d.text.split(" ").at(-1),
  outputType: "loglikelihood",
  metrics: [{ metric: "perplexity", aggregation: "perplexity", higher_is_better: false }, accMean],
});
