/**
 * MuTual and MuTual-plus (Cui et al. 2020) as lm-eval v0.4.7 `lm_eval/tasks/mutual/mutual.yaml`,
 * `multual_plus.yaml` and `utils.py` (version 2.0): validation split (the dev set; test answers are
 * withheld), `process_docs` detokenizes the dialogue and the four responses, the prompt is the
 * dialogue, the choices the responses, the target `answers` (A-D); r@1, r@2 and mrr, mean.
 * Scoring follows `utils.process_results` on the options' log-likelihoods (`rankMetrics`). There
 * lm-eval 0.4.7 differs: its evaluator hands process_results (ll, is_greedy) pairs, and
 * `np.argmax` over those flattened pairs does not rank the options, so its r@1 and r@2 are not
 * the metric's. lethe scores as lm-eval v0.3 did (the harness of the paper's time, 2023): r@1 is
 * the accuracy; mrr equals 0.4.7's unless log-likelihoods tie (0.4.7 then ranks by is_greedy).
 * test/eval/benchmarks_paper.test.ts holds both, computed by lm-eval's own utils.
 * Data: HF `EleutherAI/mutual` (`mutual/<config>/<split>.jsonl`; the shared data's train.jsonl,
 * one release file per line, is read as that) or the original release's dev files
 * (Nealcly/MuTual `data/<config>/dev/dev_<n>.txt`, one JSON item each). Docs are put in the HF
 * script's `sorted(Path(dir).iterdir())` order (dev_1, dev_10, dev_100, ...) by their `id`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { defineTask, type Doc, type MetricSpec, type Task } from "../task.js";
import { checkFields, type Fields, readJsonFolder } from "./files.js";

interface MutualDoc extends Doc {
  answers: string;
  options: string[];
  article: string;
  id: string;
}

const LETTERS = ["A", "B", "C", "D"];
const fields: Fields = { answers: "string", options: "string[]", article: "string", id: "string" };
const byName = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

const metrics: MetricSpec[] = ["r@1", "r@2", "mrr"].map((metric) => ({
  metric,
  aggregation: "mean",
  higher_is_better: true,
}));

/**
 * `utils.process_results` on the log-likelihoods `lls` of the options, gold index `gold`:
 *     r@1 = [argmax(lls) = gold]           (the first maximum, as np.argmax)
 *     rank = 1 + index of lls[gold] in lls sorted descending (the best of tied places)
 *     r@2 = [rank = 2] + r@1,   mrr = 1 / rank
 * With a tie at the top, r@1 and r@2 can be 0 while mrr is 1, as in lm-eval.
 */
export function rankMetrics(
  lls: number[],
  gold: number,
): { "r@1": number; "r@2": number; mrr: number } {
  const best = lls.reduce((b, x, i) => (x > lls[b] ? i : b), 0);
  const r1 = best === gold ? 1 : 0;
  const rank = [...lls].sort((a, b) => b - a).indexOf(lls[gold]) + 1;
  return { "r@1": r1, "r@2": (rank === 2 ? 1 : 0) + r1, mrr: 1 / rank };
}

/** `utils.process_docs`'s `_detokenize`: the replacements in order, each of every occurrence. */
const DETOKENIZE: Array<[string, string]> = [
  [" '", "'"],
  [" \n", "\n"],
  ["\n ", "\n"],
  [" n't", "n't"],
  ["`` ", '"'],
  ["''", '"'],
  [" :", ":"],
  [" ;", ";"],
  [" !", "!"],
  [" ?", "?"],
  [" ,", ","],
  [" .", "."],
];
export const detokenize = (text: string) =>
  DETOKENIZE.reduce((t, [from, to]) => t.replaceAll(from, to), text);

function checkItem(doc: Doc, where: string): void {
  const { answers, options } = doc as MutualDoc;
  if (options.length !== LETTERS.length)
    throw new Error(`${where}: field "options" must hold 4 responses, got ${options.length}`);
  if (!LETTERS.includes(answers))
    throw new Error(`${where}: field "answers" must be one of A-D, got ${JSON.stringify(answers)}`);
}

/** The dev files of the release, each checked, in the HF script's order; other splits: null. */
async function readRelease(dir: string, split: string): Promise<Doc[] | null> {
  if (split !== "validation" || !existsSync(join(dir, "dev"))) return null;
  const file = await readJsonFolder(join(dir, "dev"), ".txt", byName);
  return file.rows.map((r, i) => {
    checkFields(r, fields, file.where(i));
    checkItem(r, file.where(i));
    return { answers: r.answers, options: r.options, article: r.article, id: r.id };
  });
}

/**
 * The HF script's order, by file name (`id` + ".txt"): a no-op on HF's own rows and on the dev
 * files, it puts the shared data's train.jsonl (the release's files in numeric order, read as the
 * HF layout `<config>/train.jsonl`) in the order lm-eval draws few-shot examples from.
 */
const hfOrder = (docs: MutualDoc[]) =>
  [...docs].sort((a, b) => byName(`${a.id}.txt`, `${b.id}.txt`));

function mutualTask(task: "mutual" | "mutual_plus"): Task<MutualDoc> {
  return defineTask<MutualDoc>({
    task,
    version: 2,
    category: "reasoning",
    primaryMetric: "r@1,none", // the paper's accuracy: the gold reply ranked first
    datasetPath: "EleutherAI/mutual",
    datasetName: task,
    dir: "mutual",
    original: (dataDir, split) => readRelease(join(dataDir, "mutual", task), split),
    fields,
    checkDoc: checkItem,
    trainingSplit: "train",
    validationSplit: "validation",
    processDocs: (docs) =>
      hfOrder(docs as MutualDoc[]).map((d) => ({
        ...d,
        article: detokenize(d.article),
        options: d.options.map(detokenize),
      })),
    docToText: (d) => d.article,
    docToTarget: (d) => LETTERS.indexOf(d.answers),
    docToChoice: (d) => d.options,
    outputType: "multiple_choice",
    metrics,
    processResults: (d, results) =>
      rankMetrics(
        results.map((r) => r.logprob),
        LETTERS.indexOf(d.answers),
      ),
  });
}

export const mutual = mutualTask("mutual");
export const mutual_plus = mutualTask("mutual_plus");
