/**
 * InqQA: inquisitive question generation on ELI5 (Fan et al. 2019), the third task of Luo et al.
 * 2023 (arXiv 2308.08747) as CT0 (Scialom et al. 2022) built it: posts whose title starts with
 * "W" or "H" and holds exactly one "?"; the highest-scored answer is the text, the title the
 * question to produce (src/continual/ct0.ts `eli5Filter`); trained on CT0's
 * `generate_a_question_1` and `_2` prompts, 50,000 drawn from each as Luo's code draws them,
 * tested on `_1`. Scored with BLEU.
 * Data: `{dataDir}/instructions/eli5/{train_eli5,test_eli5}.*` if present, else the Hub's parquet
 * export of `eli5` (config `LFQA_reddit`). ELI5-Category (Gao et al. 2021; shared
 * `instructions/eli5_category/*.json.gz`, `readEli5Category`) has the same schema and serves the
 * tests; it is a later re-collection, not the data the paper used.
 */
import { gunzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { field, isObject, mapRows, type FileRows, type Row } from "../../io/dataset.js";
import { ct0Test, eli5Filter, LUO_PROMPTS, luoTrain, type Ct0Row } from "../ct0.js";
import { makeTask, type TaskDefinition } from "../instruction.js";
import { readCt0Split } from "./ct0_source.js";

/** A gzipped ELI5-Category release file (a JSON list of posts) as rows. */
export function readEli5Category(path: string): FileRows {
  let value: unknown;
  try {
    value = JSON.parse(gunzipSync(readFileSync(path)).toString("utf8"));
  } catch (e) {
    throw new Error(`${path}: not a gzipped JSON list (${(e as Error).message})`);
  }
  if (!Array.isArray(value) || !value.every(isObject))
    throw new Error(`${path}: expected a JSON list of posts`);
  return { path, rows: value as Row[], where: (i) => `${path}: item ${i + 1}` };
}

/** CT0's ELI5 rows: the filter, then `[text]` = best answer, target = title. */
export function eli5Rows(file: FileRows): Ct0Row[] {
  const posts = mapRows(file, (r, where) => {
    const text = field(r, "answers.text", where, "string[]");
    const score = field(r, "answers.score", where, "integer[]");
    if (text.length === 0 || text.length !== score.length)
      throw new Error(`${where}: field "answers" must hold as many texts as scores, at least one`);
    return { title: field(r, "title", where, "string"), answers: { text, score } };
  });
  return eli5Filter(posts).map((p) => ({ fields: { text: p.text }, target: p.question }));
}

export const eli5: TaskDefinition = {
  name: "eli5",
  description: "Write the question an ELI5 answer answers (CT0 generate_a_question, BLEU)",
  metric: "bleu",
  async load(dataDir, options) {
    const read = (split: string) =>
      readCt0Split(dataDir, {
        task: "eli5",
        local: "eli5",
        repo: "eli5",
        config: "LFQA_reddit",
        split,
      });
    const train = eli5Rows(await read("train_eli5"));
    const test = eli5Rows(await read("test_eli5"));
    return makeTask(
      "eli5",
      "bleu",
      {
        train: luoTrain(train, LUO_PROMPTS.eli5.train, ["text"]),
        test: ct0Test(test, LUO_PROMPTS.eli5.test, ["text"]),
      },
      options,
    );
  },
};
