/**
 * COVID-QA (Möller et al. 2020; the "CQA" task of Scialom et al. 2022). Data: shared
 * `instructions/covid_qa/200423_covidQA.json`, deepset-ai/COVID-QA in SQuAD format: 98 articles,
 * 1380 questions, one answer each.
 *
 * Closed book: the input is the question alone. Articles run to 67k characters, far past a small
 * model's context, and 234 of the 1380 `answer_start` offsets do not point at the answer text, so
 * a context window cannot be cut reliably. The test split holds whole articles (seeded, by
 * `document_id`), so no article's questions sit on both sides.
 */
import { join } from "node:path";
import { readText } from "../../io/dataset.js";
import {
  makeTask,
  seededSplit,
  type InstructionExample,
  type TaskDefinition,
} from "../instruction.js";

interface Squad {
  data: {
    paragraphs: {
      document_id: number | string;
      qas: { question: string; answers: { text: string }[] }[];
    }[];
  }[];
}

function readCovidQa(file: string): { doc: string; ex: InstructionExample }[] {
  const squad = JSON.parse(readText(file)) as Squad;
  if (!Array.isArray(squad?.data))
    throw new Error(`${file}: expected SQuAD format, missing field "data"`);
  const out: { doc: string; ex: InstructionExample }[] = [];
  squad.data.forEach((article, a) =>
    article.paragraphs.forEach((p, k) =>
      p.qas.forEach((qa, q) => {
        const where = `${file} data[${a}].paragraphs[${k}].qas[${q}]`;
        const answer = qa.answers?.[0]?.text;
        if (typeof qa.question !== "string") throw new Error(`${where}: missing field "question"`);
        if (typeof answer !== "string")
          throw new Error(`${where}: missing field "answers[0].text"`);
        out.push({
          doc: String(p.document_id),
          ex: {
            instruction: "Answer the following question about COVID-19.",
            input: qa.question.trim(),
            output: answer.trim(),
          },
        });
      }),
    ),
  );
  return out;
}

export const covidQa: TaskDefinition = {
  name: "covid_qa",
  description: "Answer questions on COVID-19 research articles, closed book (COVID-QA)",
  metric: "rougeL",
  async load(dataDir, options = {}) {
    const rows = readCovidQa(join(dataDir, "instructions", "covid_qa", "200423_covidQA.json"));
    const { train, test } = seededSplit(rows, {
      testFraction: options.testFraction ?? 0.1,
      seed: options.seed ?? 0,
      groupOf: (r) => r.doc,
    });
    return makeTask(
      "covid_qa",
      "rougeL",
      { train: train.map((r) => r.ex), test: test.map((r) => r.ex) },
      options,
    );
  },
};
