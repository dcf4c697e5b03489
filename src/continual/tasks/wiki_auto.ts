/**
 * Simp: sentence simplification on WikiAuto (Jiang et al. 2020), the first task of Luo et al.
 * 2023 (arXiv 2308.08747) as CT0 (Scialom et al. 2022) built it: wiki_auto `auto_acl`, split
 * `full`; train = all but the last 10,000 rows, test = the last 4,000; CT0's `simplification_1`
 * templates; 100,000 training examples drawn as Luo's code draws them (src/continual/ct0.ts).
 * Scored with SARI against the simple sentence, the normal sentence as source (the example's
 * `input`; Luo's wrapper, template "luo2023", does not print it).
 * Data: `{dataDir}/instructions/wiki_auto/full.*` if present, else the Hub's parquet export of
 * `wiki_auto` (config `auto_acl`, split `full`).
 */
import { field, mapRows } from "../../io/dataset.js";
import { ct0Test, LUO_PROMPTS, luoTrain, wikiAutoSplits, type Ct0Row } from "../ct0.js";
import { makeTask, type TaskDefinition } from "../instruction.js";
import { readCt0Split } from "./ct0_source.js";

export const wikiAuto: TaskDefinition = {
  name: "wiki_auto",
  description: "Simplify a sentence (WikiAuto auto_acl, CT0 simplification_1, SARI)",
  metric: "sari",
  async load(dataDir, options) {
    const file = await readCt0Split(dataDir, {
      task: "wiki_auto",
      local: "wiki_auto",
      repo: "wiki_auto",
      config: "auto_acl",
      split: "full",
    });
    const rows: Ct0Row[] = mapRows(file, (r, where) => {
      const normal = field(r, "normal_sentence", where, "string");
      return {
        fields: { normal_sentence: normal },
        target: field(r, "simple_sentence", where, "string"),
        source: normal,
      };
    });
    const { train, test } = wikiAutoSplits(rows);
    const keys = ["normal_sentence"];
    const offset = rows.length - test.length;
    return makeTask(
      "wiki_auto",
      "sari",
      {
        train: luoTrain(train, LUO_PROMPTS.wiki_auto.train, keys, (i) => file.where(i)),
        test: ct0Test(test, LUO_PROMPTS.wiki_auto.test, keys, (i) => file.where(offset + i)),
      },
      options,
    );
  },
};
