/**
 * Exp: explanation generation on e-SNLI (Camburu et al. 2018), the fourth task of Luo et al. 2023
 * (arXiv 2308.08747) as CT0 (Scialom et al. 2022) built it: CT0's label phrases (entailment →
 * "entail each other", contradiction → "do not entail each other", neutral → "are unrelated") in
 * its `explain_why` template; the train target is explanation 1 (the train release has one), the
 * test references all three; 100,000 training examples drawn as Luo's code draws them. BLEU.
 * Data: `{dataDir}/instructions/esnli/{train,test}.*` if present, else the Hub's parquet export
 * of `esnli` (config `plain_text`), the raw text CT0 read from the release's CSVs. The shared
 * aligned line files (`s1.test`, …, `preproc1_expl_*.test`) hold the same test split tokenised
 * and lower-cased, so they are not scored against (BLEU is case- and token-sensitive and the
 * model trains on raw text); `esnliLineRows` reads them for checks of the processing. The
 * built-in `esnli` task (src/continual/tasks/esnli.ts) is lethe's own phrasing of that data.
 */
import { join } from "node:path";
import { field, mapRows, readAlignedLines, type FileRows } from "../../io/dataset.js";
import {
  ct0Test,
  ESNLI_LABEL_PROMPT,
  ESNLI_LABELS,
  LUO_PROMPTS,
  luoTrain,
  type Ct0Row,
} from "../ct0.js";
import { makeTask, type TaskDefinition } from "../instruction.js";
import { readCt0Split } from "./ct0_source.js";

const KEYS = ["gold_label_prompt", "Sentence1", "Sentence2"];

function esnliRow(
  premise: string,
  hypothesis: string,
  label: string,
  expls: string[],
  where: string,
): Ct0Row {
  const phrase = ESNLI_LABEL_PROMPT[label as keyof typeof ESNLI_LABEL_PROMPT];
  if (phrase === undefined)
    throw new Error(
      `${where}: unknown label ${JSON.stringify(label)} (expected ${ESNLI_LABELS.join(", ")})`,
    );
  return {
    fields: { gold_label_prompt: phrase, Sentence1: premise, Sentence2: hypothesis },
    target: expls,
  };
}

/** Rows of HF `esnli` (premise, hypothesis, label 0/1/2, explanation_1..3). */
export function esnliHubRows(file: FileRows, split: "train" | "test"): Ct0Row[] {
  return mapRows(file, (r, where) => {
    const label = field(r, "label", where, "integer");
    const expls = ["explanation_1", "explanation_2", "explanation_3"].map((k) =>
      field(r, k, where, "string"),
    );
    return esnliRow(
      field(r, "premise", where, "string"),
      field(r, "hypothesis", where, "string"),
      ESNLI_LABELS[label] ?? String(label),
      // The train release has explanation 1 only (HF fills 2 and 3 with "").
      split === "train" ? expls.slice(0, 1) : expls.filter((e) => e !== ""),
      where,
    );
  });
}

/** Rows of the original release's aligned line files for `split` ("dev" or "test"). */
export function esnliLineRows(dir: string, split: "dev" | "test"): Ct0Row[] {
  const names = ["s1", "s2", "labels", "preproc1_expl_1", "preproc1_expl_2", "preproc1_expl_3"];
  const files = names.map((n) => join(dir, `${n}.${split}`));
  return readAlignedLines(files).map((cols, i) => {
    const [premise, hypothesis, label, ...expls] = cols.map((c) => c.trim());
    return esnliRow(premise, hypothesis, label, expls, `${files[2]}:${i + 1}`);
  });
}

export const esnliCt0: TaskDefinition = {
  name: "esnli_ct0",
  description: "Explain an NLI label (e-SNLI, CT0 explain_why, BLEU)",
  metric: "bleu",
  async load(dataDir, options) {
    const src = { task: "esnli_ct0", local: "esnli", repo: "esnli", config: "plain_text" };
    const train = esnliHubRows(await readCt0Split(dataDir, { ...src, split: "train" }), "train");
    const test = esnliHubRows(await readCt0Split(dataDir, { ...src, split: "test" }), "test");
    return makeTask(
      "esnli_ct0",
      "bleu",
      {
        train: luoTrain(train, LUO_PROMPTS.esnli.train, KEYS),
        test: ct0Test(test, LUO_PROMPTS.esnli.test, KEYS),
      },
      options,
    );
  },
};
