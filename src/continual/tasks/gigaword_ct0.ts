/**
 * HGen: constrained headline generation on Gigaword (Rush et al. 2015), the fifth task of Luo et
 * al. 2023 (arXiv 2308.08747) as CT0 (Scialom et al. 2022) built it: `make_a_title` with one
 * headline word as a constraint, the first word (`constrain_start`), a random one
 * (`constrain_contain`, CT0's `random.randint` after `random.seed(666)`) or the last
 * (`constrain_end`); 33,333 training examples drawn per constraint as Luo's code draws them
 * (src/continual/ct0.ts). Scored with ROUGE-1 (the paper's HGen metric).
 * Data: train from `{dataDir}/instructions/gigaword/train.*` if present, else the Hub's parquet
 * export of `gigaword` (config `default`, fields document/summary); test from the shared
 * `instructions/gigaword/test.jsonl` (the standard 1,951-pair test set, fields text/summaries) or
 * the Hub's `test` split. The built-in `gigaword` task (tasks/gigaword.ts) is a different,
 * self-instruct-based construction.
 */
import { field, mapRows, type FileRows } from "../../io/dataset.js";
import { ct0Test, LUO_PROMPTS, luoTrain, type Ct0Row } from "../ct0.js";
import { makeTask, type TaskDefinition } from "../instruction.js";
import { readCt0Split } from "./ct0_source.js";

/** Gigaword rows in HF's schema (document, summary) or the shared test file's (text, summaries). */
export function gigawordRows(file: FileRows): Ct0Row[] {
  return mapRows(file, (r, where) => {
    const hf = Object.hasOwn(r, "document");
    const document = field(r, hf ? "document" : "text", where, "string");
    const summary = hf
      ? field(r, "summary", where, "string")
      : field(r, "summaries", where, "string[]")[0];
    if (summary === undefined) throw new Error(`${where}: field "summaries" is empty`);
    return { fields: { document }, target: summary };
  });
}

export const gigawordCt0: TaskDefinition = {
  name: "gigaword_ct0",
  description: "Write a headline that starts with, contains or ends with a word (CT0, ROUGE-1)",
  metric: "rouge1",
  async load(dataDir, options) {
    const src = { task: "gigaword_ct0", local: "gigaword", repo: "gigaword", config: "default" };
    const train = gigawordRows(await readCt0Split(dataDir, { ...src, split: "train" }));
    const test = gigawordRows(await readCt0Split(dataDir, { ...src, split: "test" }));
    return makeTask(
      "gigaword_ct0",
      "rouge1",
      {
        train: luoTrain(train, LUO_PROMPTS.gigaword.train, ["document"]),
        test: ct0Test(test, LUO_PROMPTS.gigaword.test, ["document"]),
      },
      options,
    );
  },
};
