/**
 * RACE (Lai et al. 2017) as lm-eval v0.4.7 `lm_eval/tasks/race/race.yaml` + `preprocess_race.py`
 * (version 2.0): one doc per article (`EleutherAI/race`, test split) whose `problems` (a Python
 * literal string in HF) are asked in order: "Article: {article}\n\n", then each earlier problem as
 * "Question: q\nAnswer: a\n" (or, for a fill-in question ending "  _  .", its last five
 * characters + answer + "\n"), then the last problem's question; choices = the last problem's four
 * options, target its answer index; acc. `race` is config "high" (lm-eval's task); `race_middle`
 * the same rules on config "middle" (not an lm-eval 0.4.7 task; the paper reports both).
 * Data: HF layout `race/<high|middle>/<split>.jsonl`, or the original release (RACE.tar.gz):
 * `race/<test|dev|train>/<high|middle>/<n>.txt`, one article per file {article, questions,
 * options, answers}. Those become EleutherAI/race docs as lm-eval v0.3 built that dataset: every
 * question of the split, grouped per article text in order of first appearance, {question,
 * answer, options} each. Files are read in numeric order; EleutherAI/race's row order (the archive's
 * file order) is not known here, so only the document order differs: the same 1045 high / 362
 * middle test docs and prompts (test/eval/benchmarks_paper.test.ts checks them all against
 * lm-eval's own preprocess_race on these files), a different `--limit` prefix and few-shot draw.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accMean, defineTask, type Doc, type Task } from "../task.js";
import { checkFields, field, readJsonFolder, type Row } from "./files.js";

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

/**
 * Every problem (parsed from its Python literal) has a question, at least the four options the
 * prompt takes and an answer A-D among them.
 */
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
    if (options.length < 4)
      throw new Error(
        `${at}: field "options" has ${options.length} options; the prompt takes four`,
      );
  });
}

/** HF split → folder of the original release. */
const RELEASE_SPLIT: Record<string, string> = { test: "test", validation: "dev", train: "train" };
const numeric = (a: string, b: string) => parseInt(a, 10) - parseInt(b, 10) || (a < b ? -1 : 1);

/**
 * The release's per-article files of `split` and `level` as EleutherAI/race docs: every question,
 * grouped per article text (lm-eval v0.3's `_collate_data`); each file's fields are checked.
 */
async function readRelease(dataDir: string, level: string, split: string): Promise<Doc[] | null> {
  const dir = RELEASE_SPLIT[split] && join(dataDir, "race", RELEASE_SPLIT[split], level);
  if (!dir || !existsSync(dir)) return null;
  const file = await readJsonFolder(dir, ".txt", numeric);
  const byArticle = new Map<string, Problem[]>();
  file.rows.forEach((r, i) => {
    const where = file.where(i);
    const article = field(r, "article", where, "string");
    const questions = field(r, "questions", where, "string[]");
    const answers = field(r, "answers", where, "string[]");
    const options = r.options;
    if (!Array.isArray(options)) throw new Error(`${where}: field "options" must be a list`);
    if (answers.length !== questions.length || options.length !== questions.length)
      throw new Error(
        `${where}: ${questions.length} questions, ${options.length} option lists and ${answers.length} answers; expected one each`,
      );
    const problems = byArticle.get(article) ?? [];
    questions.forEach((question, j) => {
      const opts = options[j];
      if (!Array.isArray(opts) || !opts.every((o) => typeof o === "string"))
        throw new Error(`${where}: field "options[${j}]" must be a list of strings`);
      problems.push({ question, answer: answers[j], options: opts });
    });
    byArticle.set(article, problems);
    checkProblems({ article, problems }, where);
  });
  return [...byArticle].map(([article, problems]) => ({ article, problems }));
}

function raceTask(task: "race" | "race_middle", level: "high" | "middle"): Task<RaceDoc> {
  return defineTask<RaceDoc>({
    task,
    version: 2,
    category: "reading_comprehension",
    datasetPath: "EleutherAI/race",
    datasetName: level,
    dir: "race",
    original: (dataDir, split) => readRelease(dataDir, level, split),
    fields: { article: "string", problems: "string|object[]" },
    checkDoc: checkProblems,
    testSplit: "test",
    docToText(d) {
      const problems = problemsOf(d);
      let text = `Article: ${d.article}\n\n`;
      for (const p of problems.slice(0, -1)) {
        if (p.question.slice(-6) === "  _  .")
          text += p.question.slice(-5) + answerOption(p) + "\n";
        else text += `Question: ${p.question}\nAnswer: ${answerOption(p)}\n`;
      }
      return text + problems[problems.length - 1].question;
    },
    docToTarget: (d) => LETTER_TO_NUM[problemsOf(d).at(-1)!.answer],
    docToChoice: (d) => problemsOf(d).at(-1)!.options.slice(0, 4),
    outputType: "multiple_choice",
    metrics: [accMean],
  });
}

export const race = raceTask("race", "high");
export const race_middle = raceTask("race_middle", "middle");
