/**
 * RACE (Lai et al. 2017) as lm-eval v0.4.x `lm_eval/tasks/race/race.yaml` + `preprocess_race.py`:
 * one doc per article (`EleutherAI/race`, config "high", test split) whose `problems` (a Python
 * literal string in HF) are asked in order: "Article: {article}\n\n", then each earlier problem
 * as "Question: q\nAnswer: a\n" (or, for a fill-in "  _  ." question, its tail + answer + "\n"),
 * then the last problem's question; choices = the last problem's options, target its answer
 * index; acc. Mapping of shared data: `race_subset/race.jsonl` holds single questions (middle and
 * high mixed, 994 articles for 1000 questions), so each line becomes one doc with one problem and
 * the prompt is "Article: ...\n\n" + question — file order and count are kept.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, defineTask, type Doc } from "../task.js";
import { checkFields, field, mapRows, readJsonl, type Row } from "./files.js";

interface Problem {
  question: string;
  options: string[];
  answer: string;
}

interface RaceDoc extends Doc {
  article: string;
  problems: string | Problem[];
}

/** Parses the Python literal (str/list/dict) HF stores in `problems`. */
export function parsePyLiteral(src: string): unknown {
  let i = 0;
  const ws = () => {
    while (/\s/.test(src[i] ?? "")) i++;
  };
  const fail = (what: string): never => {
    throw new Error(
      `RACE problems: ${what} at offset ${i} of ${JSON.stringify(src.slice(0, 60))}...`,
    );
  };
  const ESC: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"' };
  const value = (): unknown => {
    ws();
    const c = src[i];
    if (c === "[" || c === "{") {
      const close = c === "[" ? "]" : "}";
      const list: unknown[] = [];
      const dict: Record<string, unknown> = {};
      i++;
      for (ws(); src[i] !== close; ws()) {
        const v = value();
        if (c === "{") {
          ws();
          if (src[i++] !== ":") fail("expected ':'");
          dict[String(v)] = value();
        } else list.push(v);
        ws();
        if (src[i] === ",") i++;
        else if (src[i] !== close) fail(`expected ',' or '${close}'`);
      }
      i++;
      return c === "[" ? list : dict;
    }
    if (c === "'" || c === '"') {
      let out = "";
      for (i++; src[i] !== c; i++) {
        if (i >= src.length) fail("unterminated string");
        if (src[i] !== "\\") out += src[i];
        else if (src[i + 1] === "x" || src[i + 1] === "u") {
          const n = src[i + 1] === "x" ? 2 : 4;
          out += String.fromCharCode(parseInt(src.slice(i + 2, i + 2 + n), 16));
          i += n + 1;
        } else out += ESC[src[++i]] ?? fail(`unknown escape \\${src[i]}`);
      }
      i++;
      return out;
    }
    return fail("unexpected character");
  };
  return value();
}

const problemsOf = (d: RaceDoc) =>
  typeof d.problems === "string" ? (parsePyLiteral(d.problems) as Problem[]) : d.problems;
const LETTER_TO_NUM: Record<string, number> = { A: 0, B: 1, C: 2, D: 3 };
const answerOption = (p: Problem) => p.options[LETTER_TO_NUM[p.answer]];

/** Every problem (parsed from its Python literal) has a question, options and an answer A-D among them. */
function checkProblems(doc: Doc, where: string): void {
  let problems: unknown;
  try {
    problems = problemsOf(doc as RaceDoc);
  } catch (e) {
    throw new Error(`${where}: field "problems": ${(e as Error).message}`);
  }
  if (!Array.isArray(problems) || problems.length === 0)
    throw new Error(`${where}: field "problems" must be a non-empty list of problems`);
  problems.forEach((p: unknown, j) => {
    const at = `${where}: problems[${j}]`;
    if (typeof p !== "object" || p === null || Array.isArray(p))
      throw new Error(`${at} must be an object`);
    checkFields(p as Row, { question: "string", options: "string[]", answer: "string" }, at);
    const { options, answer } = p as Problem;
    if (!(LETTER_TO_NUM[answer] < options.length))
      throw new Error(
        `${at}: field "answer" ${JSON.stringify(answer)} is not a letter of its ${options.length} options`,
      );
  });
}

export const race = defineTask<RaceDoc>({
  task: "race",
  version: 2,
  datasetPath: "EleutherAI/race",
  datasetName: "high",
  dir: "race",
  async original(dataDir, split) {
    const path = join(dataDir, "race_subset", "race.jsonl");
    if (split !== "test" || !existsSync(path)) return null;
    return mapRows(await readJsonl(path), (r, where) => {
      const problem: Problem = {
        question: field(r, "question", where, "string"),
        options: field(r, "options", where, "string[]"),
        answer: field(r, "answer", where, "string"),
      };
      const doc = {
        example_id: r.example_id,
        article: field(r, "article", where, "string"),
        problems: [problem],
      };
      checkProblems(doc, where);
      return doc;
    });
  },
  fields: { article: "string", problems: "string|object[]" },
  checkDoc: checkProblems,
  testSplit: "test",
  docToText(d) {
    const problems = problemsOf(d);
    let text = `Article: ${d.article}\n\n`;
    for (const p of problems.slice(0, -1)) {
      if (p.question.slice(-6) === "  _  .") text += p.question.slice(-5) + answerOption(p) + "\n";
      else text += `Question: ${p.question}\nAnswer: ${answerOption(p)}\n`;
    }
    return text + problems[problems.length - 1].question;
  },
  docToTarget: (d) => LETTER_TO_NUM[problemsOf(d).at(-1)!.answer],
  docToChoice: (d) => problemsOf(d).at(-1)!.options.slice(0, 4),
  outputType: "multiple_choice",
  metrics: [accMean],
});
