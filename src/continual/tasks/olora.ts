/**
 * The O-LoRA continual-learning classification tasks (Wang et al. 2023, "Orthogonal Subspace
 * Learning for Language Model Continual Learning", EMNLP Findings; cmnfriend/O-LoRA
 * `CL_Benchmark/`, itself from LFPT5 / Progressive Prompts). Data: shared
 * `instructions/olora_cl_benchmark/<category>/<task>/{train,test,labels}.json`, records
 * `{"label", "sentence"}`.
 *
 * Prompt as in O-LoRA's `uie_dataset_lora.py`: the category instruction from
 * `configs/instruction_config.json`, then `Option: <labels joined by ", ">`; the sentence is the
 * input and the label the output (scored by exact match). O-LoRA's own wrapper ("<instruction>
 * Option: … \n<sentence>\nAnswer:") is the template string "{instruction} \n{input}\nAnswer:".
 *
 * The shared snapshot lacks some files (SOURCES.md): dbpedia has only test, IMDB, yelp and
 * MultiRC only train, yahoo only labels. A task with one split gets a seeded `testFraction`
 * held out of it; yahoo fails to load with the missing path. Rows whose label is not in
 * labels.json are dropped (MNLI test has 131 rows labelled "-", GLUE's "no gold label").
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { field, mapRows, readRows, readText } from "../../io/dataset.js";
import {
  makeTask,
  seededSplit,
  type InstructionExample,
  type TaskDefinition,
} from "../instruction.js";

/** O-LoRA's instruction per task category (`configs/instruction_config.json`). */
const INSTRUCTIONS = {
  NLI: 'What is the logical relationship between the "sentence 1" and the "sentence 2"? Choose one from the option.\n',
  QQP: 'Whether the "first sentence" and the "second sentence" have the same meaning? Choose one from the option.\n',
  SC: "What is the sentiment of the following paragraph? Choose one from the option.\n",
  TC: "What is the topic of the following paragraph? Choose one from the option.\n",
  BoolQA:
    "According to the following passage, is the question true or false? Choose one from the option.\n",
  MultiRC:
    "According to the following passage and question, is the candidate answer true or false? Choose one from the option.\n",
  WiC: "Given a word and two sentences, whether the word is used with the same sense in both sentence? Choose one from the option.\n",
  // Not in the instruction_config.json we could read; the COPA sentences carry their own question.
  COPA: "Answer the question about the following sentences. Choose one from the option.\n",
} as const satisfies Record<string, string>;

/** Task name (O-LoRA's, verbatim) → folder under olora_cl_benchmark and instruction category. */
const OLORA_TASKS = {
  dbpedia: { dir: "TC/dbpedia", category: "TC" },
  amazon: { dir: "SC/amazon", category: "SC" },
  yahoo: { dir: "TC/yahoo", category: "TC" },
  agnews: { dir: "TC/agnews", category: "TC" },
  MNLI: { dir: "NLI/MNLI", category: "NLI" },
  CB: { dir: "NLI/CB", category: "NLI" },
  WiC: { dir: "WiC/WiC", category: "WiC" },
  COPA: { dir: "COPA/COPA", category: "COPA" },
  QQP: { dir: "QQP/QQP", category: "QQP" },
  BoolQA: { dir: "BoolQA/BoolQA", category: "BoolQA" },
  RTE: { dir: "NLI/RTE", category: "NLI" },
  IMDB: { dir: "SC/IMDB", category: "SC" },
  yelp: { dir: "SC/yelp", category: "SC" },
  "SST-2": { dir: "SC/SST-2", category: "SC" },
  MultiRC: { dir: "MultiRC/MultiRC", category: "MultiRC" },
} as const satisfies Record<string, { dir: string; category: keyof typeof INSTRUCTIONS }>;

export type OloraTaskName = keyof typeof OLORA_TASKS;

function readLabels(file: string): string[] {
  const labels: unknown = JSON.parse(readText(file));
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
    throw new Error(`${file}: expected a JSON list of label strings`);
  }
  return labels;
}

async function readSplit(
  file: string,
  instruction: string,
  labels: string[],
): Promise<InstructionExample[]> {
  const rows = mapRows(await readRows(file, { nonEmpty: false }), (row, where) => ({
    input: field(row, "sentence", where, "string"),
    output: field(row, "label", where, "string"),
  }));
  return rows.filter((r) => labels.includes(r.output)).map((r) => ({ instruction, ...r }));
}

function oloraTask(name: OloraTaskName): TaskDefinition {
  const { dir, category } = OLORA_TASKS[name];
  return {
    name,
    description: `O-LoRA CL benchmark: ${name} (${category})`,
    metric: "exact_match",
    async load(dataDir, options = {}) {
      const base = join(dataDir, "instructions", "olora_cl_benchmark", dir);
      const labels = readLabels(join(base, "labels.json"));
      const instruction = `${INSTRUCTIONS[category]}Option: ${labels.join(", ")}`;
      const [trainFile, testFile] = [join(base, "train.json"), join(base, "test.json")];
      const hasTrain = existsSync(trainFile);
      const hasTest = existsSync(testFile);
      if (!hasTrain && !hasTest) {
        throw new Error(
          `${name}: neither ${trainFile} nor ${testFile} exists (see the data folder's SOURCES.md)`,
        );
      }
      const splitOpts = { testFraction: options.testFraction ?? 0.1, seed: options.seed ?? 0 };
      const splits =
        hasTrain && hasTest
          ? {
              train: await readSplit(trainFile, instruction, labels),
              test: await readSplit(testFile, instruction, labels),
            }
          : seededSplit(
              await readSplit(hasTrain ? trainFile : testFile, instruction, labels),
              splitOpts,
            );
      return makeTask(name, "exact_match", splits, options);
    },
  };
}

/** One definition per O-LoRA task, keyed by its name. */
export const oloraTasks = Object.fromEntries(
  Object.keys(OLORA_TASKS).map((n) => [n, oloraTask(n as OloraTaskName)]),
) as Record<OloraTaskName, TaskDefinition>;
