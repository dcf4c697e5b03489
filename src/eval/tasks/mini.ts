/**
 * The miniature study's benchmarks (`lethe study`): real lm-eval task declarations over the
 * synthetic world's documents, which src/mini writes in the HF layout
 * `<benchmarks dir>/mini_<name>/test.jsonl` (one doc per line, in the real benchmark's schema).
 * Each reuses a real task's prompt and scoring; only the data folder and the split differ.
 *
 * References (lm-evaluation-harness v0.4.x, as the sibling files declare them):
 * - mini_mmlu: `mmlu/continuation/_continuation_template_yaml` (version 1.0) with the per-subject
 *   description "The following are questions (with answers) about <subject>.\n\n": the cloze form
 *   of MMLU, where the choices are the answer texts. The lettered form needs a model that maps
 *   "A."–"D." onto options, which a corpus-pretrained toy model never sees. The subject line is
 *   put in front of each doc's text (lm-eval renders the description per doc), so with few-shot
 *   examples it also precedes each example.
 * - mini_piqa, mini_hellaswag, mini_crows_pairs: `piqa.yaml`, `hellaswag.yaml` (its
 *   process_docs), `crows_pairs_english.yaml` (likelihood_diff, pct_stereotype).
 * - mini_race: `race.yaml`, one doc per line as lm-eval builds them ({article, problems}: the
 *   earlier problems are answered in the prompt, the last one is asked).
 */
import { accMean, accNormMean, defineTask, type Doc, type Task } from "../task.js";
import { crows_pairs_english } from "./crows_pairs.js";
import { hellaswag } from "./hellaswag.js";
import { piqa } from "./piqa.js";
import { race } from "./race.js";

// `any`: each task has its own doc type
type AnyTask = Task<any>;

interface MmluDoc extends Doc {
  question: string;
  subject: string;
  choices: string[];
  answer: number;
}

/** `base` renamed `task`, reading only the test split from `<benchmarks dir>/<task>/`. */
function mini(base: AnyTask, task: string): AnyTask {
  return {
    ...base,
    task,
    version: 1,
    datasetPath: `lethe-mini/${base.task}`,
    datasetName: undefined,
    dir: task,
    original: async () => null,
    trainingSplit: undefined,
    validationSplit: undefined,
    testSplit: "test",
    fewshotSplit: undefined,
  };
}

const mmluContinuation = defineTask<MmluDoc>({
  task: "mini_mmlu",
  version: 1,
  category: "domain_knowledge",
  datasetPath: "lethe-mini/mmlu",
  dir: "mini_mmlu",
  original: async () => null,
  fields: { question: "string", subject: "string", choices: "string[]", answer: "integer" },
  checkDoc(doc, where) {
    const n = (doc.choices as string[]).length;
    if ((doc.answer as number) < 0 || (doc.answer as number) >= n)
      throw new Error(`${where}: field "answer" ${doc.answer} is not an index of the ${n} choices`);
  },
  testSplit: "test",
  docToText: (d) =>
    `The following are questions (with answers) about ${d.subject}.\n\n` +
    `Question: ${d.question.trim()}\nAnswer:`,
  docToChoice: (d) => d.choices,
  docToTarget: (d) => d.answer,
  outputType: "multiple_choice",
  metrics: [accMean, accNormMean],
});

export const miniTasks = {
  mini_mmlu: mmluContinuation,
  mini_piqa: mini(piqa, "mini_piqa"),
  mini_hellaswag: mini(hellaswag, "mini_hellaswag"),
  mini_race: mini(race, "mini_race"),
  mini_crows_pairs: mini(crows_pairs_english, "mini_crows_pairs"),
} satisfies Record<string, AnyTask>;
