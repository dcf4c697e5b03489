/**
 * Emdg: empathetic dialogue generation on EmpatheticDialogues (Rashkin et al. 2019), the second
 * task of Luo et al. 2023 (arXiv 2308.08747) as CT0 (Scialom et al. 2022) built it: each
 * conversation expanded into one example per turn after the first (the turns so far as
 * "- text" lines, the next turn as target; src/continual/ct0.ts `expandDialogues`), CT0's
 * `dialogue_with_emotion` template with the conversation's emotion label as `[context]`;
 * 100,000 training examples drawn as Luo's code draws them. Scored with BLEU.
 * Data: `{dataDir}/instructions/empathetic_dialogues/{train,test}.*` if present, else the Hub's
 * parquet export of `facebook/empathetic_dialogues` (config `default`).
 */
import { field, mapRows, type FileRows } from "../../io/dataset.js";
import { ct0Test, expandDialogues, LUO_PROMPTS, luoTrain, type Ct0Row } from "../ct0.js";
import { makeTask, type TaskDefinition } from "../instruction.js";
import { readCt0Split } from "./ct0_source.js";

/** CT0's dialogue examples of one split's utterance rows. */
export function dialogueRows(file: FileRows): Ct0Row[] {
  const utterances = mapRows(file, (r, where) => ({
    conv_id: field(r, "conv_id", where, "string"),
    utterance_idx: field(r, "utterance_idx", where, "integer"),
    speaker_idx: field(r, "speaker_idx", where, "integer"),
    context: field(r, "context", where, "string"),
    prompt: field(r, "prompt", where, "string"),
    utterance: field(r, "utterance", where, "string"),
  }));
  return expandDialogues(utterances).map((t) => ({
    fields: { context: t.context, input_text: t.input_text },
    target: t.output_text,
  }));
}

const KEYS = ["context", "input_text"];

export const empatheticDialogues: TaskDefinition = {
  name: "empathetic_dialogues",
  description: "Continue a dialogue given an emotion (EmpatheticDialogues, CT0, BLEU)",
  metric: "bleu",
  async load(dataDir, options) {
    const read = (split: string) =>
      readCt0Split(dataDir, {
        task: "empathetic_dialogues",
        local: "empathetic_dialogues",
        repo: "facebook/empathetic_dialogues",
        config: "default",
        split,
      });
    const train = dialogueRows(await read("train"));
    const test = dialogueRows(await read("test"));
    return makeTask(
      "empathetic_dialogues",
      "bleu",
      {
        train: luoTrain(train, LUO_PROMPTS.empathetic_dialogues.train, KEYS),
        test: ct0Test(test, LUO_PROMPTS.empathetic_dialogues.test, KEYS),
      },
      options,
    );
  },
};
