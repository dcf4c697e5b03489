/**
 * WinoGrande (Sakaguchi et al. 2020) as lm-eval v0.4.x `lm_eval/tasks/winogrande/default.yaml` +
 * `preprocess_winogrande.py`, partial evaluation: the two *contexts* are the sentence up to "_"
 * with option1 / option2 filled in, the one continuation is the text after "_" (stripped), and
 * `docToText` returns the gold index ("multiple inputs"). acc only. Data: HF `winogrande`
 * (winogrande_xl) or llm-foundry's ICL conversion (`context_options`, `continuation`, `gold`,
 * the only copy in shared data). From that conversion `sentence`/`option1`/`option2` are rebuilt:
 * the contexts' common prefix up to its last space is the sentence start, the rest of each
 * context is its option, and sentence = prefix + "_ " + continuation. The rendered requests equal
 * HF's; the rebuilt sentence may differ from the original in the space after "_".
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, defineTask, type Doc } from "../task.js";
import { field, mapRows, readJsonl } from "./files.js";

interface WinograndeDoc extends Doc {
  sentence: string;
  option1: string;
  option2: string;
  answer: string;
}

function fromFoundry(row: Record<string, unknown>, where: string): WinograndeDoc {
  const ctx = field(row, "context_options", where, "string[]");
  const continuation = field(row, "continuation", where, "string");
  const gold = field(row, "gold", where, "integer");
  if (ctx.length !== 2 || (gold !== 0 && gold !== 1)) {
    throw new Error(`${where}: expected two context_options and gold 0 or 1`);
  }
  let common = 0;
  while (common < ctx[0].length && ctx[0][common] === ctx[1][common]) common++;
  const prefix = ctx[0].slice(0, ctx[0].lastIndexOf(" ", common - 1) + 1);
  return {
    sentence: `${prefix}_ ${continuation}`,
    option1: ctx[0].slice(prefix.length),
    option2: ctx[1].slice(prefix.length),
    answer: String(gold + 1),
  };
}

const blank = (d: WinograndeDoc) => d.sentence.indexOf("_");

/** An answer naming option 1 or 2, and a sentence with the "_" the option fills. */
function checkDoc(doc: Doc, where: string): void {
  if (doc.answer !== "1" && doc.answer !== "2")
    throw new Error(
      `${where}: field "answer" must be "1" or "2", got ${JSON.stringify(doc.answer)}`,
    );
  if (!(doc.sentence as string).includes("_"))
    throw new Error(`${where}: field "sentence" has no "_" for the option to fill`);
}

export const winogrande = defineTask<WinograndeDoc>({
  task: "winogrande",
  category: "reasoning",
  version: 1,
  datasetPath: "winogrande",
  datasetName: "winogrande_xl",
  dir: "winogrande",
  async original(dataDir, split) {
    const path = join(dataDir, "llm_foundry_icl", "language_understanding", "winogrande.jsonl");
    if (split !== "validation" || !existsSync(path)) return null;
    return mapRows(await readJsonl(path), fromFoundry);
  },
  fields: { sentence: "string", option1: "string", option2: "string", answer: "string" },
  checkDoc,
  trainingSplit: "train",
  validationSplit: "validation",
  docToText(d) {
    if (d.answer !== "1" && d.answer !== "2")
      throw new Error(`winogrande: answer must be "1" or "2", got ${d.answer}`);
    return Number(d.answer) - 1;
  },
  docToTarget: (d) => d.sentence.slice(blank(d) + 1).trim(),
  docToChoice: (d) => [d.option1, d.option2].map((o) => d.sentence.slice(0, blank(d)) + o),
  outputType: "multiple_choice",
  metrics: [accMean],
});
