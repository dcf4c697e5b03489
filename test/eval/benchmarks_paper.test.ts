/**
 * The paper's benchmarks beyond the common suite (Luo et al. 2023: MathQA and MuTual under
 * reasoning, RACE-high and RACE-middle under reading comprehension) against lm-eval 0.4.7.
 * test/eval/fixtures/paper/*.json were written by lm-eval itself (make_fixtures.py beside them:
 * its task configs and utils build the requests from the shared release files and score them), and
 * every document of each evaluated split is checked: the document count, the sha256 of all
 * requests (context, continuation, target), a few documents' requests in full, few-shot contexts,
 * and each metric's mean and stderr over the split under a formula LM. Also: the split sizes as the
 * releases state them, the RACE split mapping (test is test, never race_subset's train items), the
 * MathQA options parse on edge strings, and r@1 / r@2 / mrr worked out by hand on a toy example.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LM } from "../../src/eval/lm.js";
import { buildRequests, evaluate, scoreTasks } from "../../src/eval/evaluate.js";
import { loadEvalDocs, loadFewshotDocs, loadSplit, type Doc } from "../../src/eval/task.js";
import { getGroup, getTask } from "../../src/eval/tasks/index.js";
import { loadStudy } from "../../src/continual/config.js";
import { mathqaChoices } from "../../src/eval/tasks/mathqa.js";
import { detokenize, rankMetrics } from "../../src/eval/tasks/mutual.js";
import { dataPath, repoRoot, skipReason } from "../helpers/data.js";

const bench = dataPath("benchmarks");
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "paper");

interface Fixture {
  task: string;
  split: string;
  docs: number;
  questions?: number;
  requests_sha256: string;
  samples: Array<{ doc_id: number; target: number; arguments: Array<[string, string]> }>;
  fewshot?: {
    shots: number;
    seed: number;
    samples: Array<{ doc_id: number; arguments: Array<[string, string]> }>;
  };
  scores: Record<string, { value: number; stderr: number }>;
  scores_lm_eval_0_4_7?: Record<string, { value: number; stderr: number }>;
}

const fixture = (name: string): Fixture =>
  JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8")) as Fixture;

const PAPER_TASKS = ["mathqa", "mutual", "mutual_plus", "race", "race_middle"];

/** Each split is read once per file run (the readers' own checks run on that read). */
const loaded = new Map<string, Promise<Doc[]>>();
const docsOf = (name: string, which: "eval" | "fewshot" = "eval") => {
  const key = `${name}/${which}`;
  if (!loaded.has(key)) {
    const task = getTask(name);
    loaded.set(key, which === "eval" ? loadEvalDocs(task, bench!) : loadFewshotDocs(task, bench!));
  }
  return loaded.get(key)!;
};

/** make_fixtures.py's formula: ll = -((Σ code points of the continuation) mod 97 + 1) / 8. */
const formulaLM: LM = {
  async loglikelihood(reqs) {
    return reqs.map(({ continuation }) => {
      const cps = [...continuation];
      const sum = cps.reduce((a, c) => a + c.codePointAt(0)!, 0);
      return { logprob: -((sum % 97) + 1) / 8, isGreedy: cps.length % 3 === 0 };
    });
  },
  async loglikelihoodRolling() {
    throw new Error("not used");
  },
  async generateUntil() {
    throw new Error("not used");
  },
};

const close = (got: unknown, want: number, what: string) =>
  assert.ok(
    typeof got === "number" && Math.abs(got - want) <= 1e-12 * Math.max(1, Math.abs(want)),
    `${what}: ${String(got)} != ${want}`,
  );

const problemCount = (docs: Doc[]) =>
  docs.reduce((n, d) => n + (d.problems as unknown[]).length, 0);

test("split sizes: MathQA test 2985 / dev 4475, MuTual(+) dev 886, RACE test high 3498 and middle 1436 questions", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  assert.equal((await docsOf("mathqa")).length, 2985);
  assert.equal((await loadSplit(getTask("mathqa"), bench, "validation"))!.length, 4475);
  // MathQA's train.json is not in the shared data: few-shot is "not found", never another split.
  await assert.rejects(
    loadFewshotDocs(getTask("mathqa"), bench),
    /mathqa: split "train" not found/,
  );
  for (const name of ["mutual", "mutual_plus"]) {
    assert.equal((await docsOf(name)).length, 886, name);
    assert.equal((await docsOf(name, "fewshot")).length, 7088, name);
    // The test split's answers are withheld; it is not there to read.
    assert.equal(await loadSplit(getTask(name), bench, "test"), null, name);
  }
  const high = await docsOf("race");
  const middle = await docsOf("race_middle");
  assert.deepEqual([high.length, problemCount(high)], [1045, 3498]);
  assert.deepEqual([middle.length, problemCount(middle)], [362, 1436]);
  const devHigh = (await loadSplit(getTask("race"), bench, "validation"))!;
  assert.deepEqual([devHigh.length, problemCount(devHigh)], [1021, 3451]);
});

test("race reads RACE's test split, not race_subset (whose items are train files)", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  const docs = await docsOf("race");
  // Doc 0 is the lowest-numbered test/high file, its questions in file order.
  const first = JSON.parse(readFileSync(join(bench, "race", "test", "high", "73.txt"), "utf8"));
  assert.equal(docs[0].article, first.article);
  assert.deepEqual(
    (docs[0].problems as Array<{ question: string }>).map((p) => p.question),
    first.questions,
  );
  const test = new Set(docs.map((d) => d.article));
  const subsetPath = dataPath("benchmarks", "race_subset", "race.jsonl");
  if (subsetPath === null) skipReason("benchmarks", "race_subset", "race.jsonl");
  else {
    const subset = readFileSync(subsetPath, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => (JSON.parse(l) as { article: string }).article);
    assert.equal(subset.length, 1000);
    assert.equal(subset.filter((a) => test.has(a)).length, 0, "a train article in race");
  }
  const middle = new Set((await docsOf("race_middle")).map((d) => d.article));
  assert.equal([...test].filter((a) => middle.has(a)).length, 0, "a middle article in race");
});

test("every doc's requests equal lm-eval 0.4.7's (count, sha256 of all, samples in full)", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  for (const name of PAPER_TASKS) {
    const want = fixture(name);
    const task = getTask(name);
    const docs = await docsOf(name);
    assert.equal(docs.length, want.docs, `${name}: docs`);
    if (want.questions !== undefined) assert.equal(problemCount(docs), want.questions, name);
    const reqs = buildRequests(task, docs, { shots: 0 });
    const hash = createHash("sha256");
    for (const r of reqs) hash.update(JSON.stringify([r.doc_id, r.arguments, r.target]) + "\n");
    for (const s of want.samples) {
      assert.deepEqual(reqs[s.doc_id].arguments, s.arguments, `${name} doc ${s.doc_id}`);
      assert.equal(reqs[s.doc_id].target, s.target, `${name} doc ${s.doc_id}: target`);
    }
    assert.equal(hash.digest("hex"), want.requests_sha256, `${name}: requests of all docs`);
  }
});

/**
 * lm-eval 0.4.7 draws k + 1 few-shot docs exactly when the raw `fewshot_split == test_split`
 * (None == None for MuTual, which has neither; "test" != None for RACE, whose few-shot docs are
 * its test docs); src/eval/evaluate.ts takes the same rule.
 */
async function fewshotRequests(name: string) {
  const { fewshot } = fixture(name);
  assert.ok(fewshot, name);
  const task = getTask(name);
  const reqs = buildRequests(task, await docsOf(name), {
    shots: fewshot.shots,
    seed: fewshot.seed,
    limit: fewshot.samples.length,
    fewshotDocs: await docsOf(name, "fewshot"),
  });
  return {
    got: reqs.map((r) => ({ doc_id: r.doc_id, arguments: r.arguments })),
    want: fewshot.samples,
  };
}

const FEWSHOT_TASKS = ["mutual", "mutual_plus", "race", "race_middle"];

test("the first doc's few-shot context equals lm-eval 0.4.7's (MuTual from train, RACE from test)", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  for (const name of FEWSHOT_TASKS) {
    const { got, want } = await fewshotRequests(name);
    assert.deepEqual(got[0], want[0], name);
  }
});

test("every doc's few-shot context equals lm-eval 0.4.7's", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  for (const name of FEWSHOT_TASKS) {
    const { got, want } = await fewshotRequests(name);
    assert.deepEqual(got, want, name);
  }
});

test("scores over each whole split equal lm-eval's process_results under a formula LM", async (t) => {
  if (!bench) return t.skip(skipReason("benchmarks"));
  for (const name of PAPER_TASKS) {
    const want = fixture(name);
    const task = getTask(name);
    const res = await scoreTasks(formulaLM, [{ task, docs: await docsOf(name) }], {});
    const got = res.results[name];
    assert.deepEqual(
      Object.keys(want.scores),
      getTask(name).metrics.map((m) => m.metric),
      name,
    );
    for (const [metric, { value, stderr }] of Object.entries(want.scores)) {
      close(got[`${metric},none`], value, `${name} ${metric}`);
      close(got[`${metric}_stderr,none`], stderr, `${name} ${metric} stderr`);
    }
    assert.equal(res["n-samples"][name].effective, want.docs);
    if (want.scores_lm_eval_0_4_7) {
      // 0.4.7's literal r@1 (argmax over flattened (ll, is_greedy) pairs) is another number.
      const literal = want.scores_lm_eval_0_4_7["r@1"].value;
      assert.ok(Math.abs((got["r@1,none"] as number) - literal) > 0.01, `${name}: ${literal}`);
    }
  }
});

test("r@1, r@2 and mrr by hand on a toy example, per doc and through evaluate", async () => {
  const lls = [-1, -0.5, -2, -3]; // ranks: B 1st, A 2nd, C 3rd, D 4th
  assert.deepEqual(rankMetrics(lls, 1), { "r@1": 1, "r@2": 1, mrr: 1 });
  assert.deepEqual(rankMetrics(lls, 0), { "r@1": 0, "r@2": 1, mrr: 1 / 2 });
  assert.deepEqual(rankMetrics(lls, 2), { "r@1": 0, "r@2": 0, mrr: 1 / 3 });
  assert.deepEqual(rankMetrics(lls, 3), { "r@1": 0, "r@2": 0, mrr: 1 / 4 });
  // A tie at the top: argmax takes the first (A), the gold B shares rank 1 (lm-eval's list.index).
  assert.deepEqual(rankMetrics([-1, -1, -2, -3], 1), { "r@1": 0, "r@2": 0, mrr: 1 });
  assert.deepEqual(rankMetrics([-1, -1, -2, -3], 0), { "r@1": 1, "r@2": 1, mrr: 1 });

  // Two dialogues in the HF layout; the LM scores a response by its last character.
  const root = await mkdtemp(join(tmpdir(), "lethe-mutual-"));
  try {
    const item = (answers: string, id: string) => ({
      answers,
      options: ["m : one .", "m : two ?", "m : three !", "m : four ,"],
      article: "f : hi , it 's me . m : do n't go !",
      id,
    });
    await mkdir(join(root, "mutual", "mutual"), { recursive: true });
    await writeFile(
      join(root, "mutual", "mutual", "validation.jsonl"),
      [item("A", "dev_1"), item("C", "dev_2")].map((r) => JSON.stringify(r)).join("\n") + "\n",
    );
    const LL: Record<string, number> = { ".": -2, "?": -1, "!": -3, ",": -4 };
    const seen: string[][] = [];
    const lm: LM = {
      ...formulaLM,
      async loglikelihood(reqs) {
        seen.push(reqs.map((r) => r.context + "|" + r.continuation));
        return reqs.map((r) => ({ logprob: LL[r.continuation.at(-1)!], isGreedy: false }));
      },
    };
    const res = await evaluate(lm, ["mutual"], { dataDir: root });
    // The detokenized prompt and responses, as utils.process_docs writes them.
    assert.equal(seen[0][0], "f: hi, it's me. m: don't go!| m: one.");
    assert.equal(seen[0][1], "f: hi, it's me. m: don't go!| m: two?");
    // Ranks: "?" 1st, "." 2nd, "!" 3rd, "," 4th. Doc 1 (gold A): 0, 1, 1/2; doc 2 (gold C): 0, 0, 1/3.
    const r = res.results.mutual;
    assert.equal(r["r@1,none"], 0);
    assert.equal(r["r@2,none"], 0.5);
    close(r["mrr,none"], (1 / 2 + 1 / 3) / 2, "mrr");
  } finally {
    await rm(root, { recursive: true });
  }
});

test("MuTual detokenizing and the MathQA options parse on edge strings (values from lm-eval's utils)", () => {
  // Printed by lm_eval.tasks.mutual.utils.process_docs (lm-eval 0.4.7).
  assert.equal(
    detokenize("`` yes '' , he said . i do n't \n know"),
    '"yes", he said. i don\'t\nknow',
  );
  // Printed by lm_eval.tasks.mathqa.utils.doc_to_choice (lm-eval 0.4.7).
  assert.deepEqual(mathqaChoices("a ) 1 , b ) 2,5 , c ) x , d ) rs . 1,200 , e ) z\n"), [
    "1",
    "2,5",
    "x",
    "rs . 1,200",
    "z",
  ]);
  assert.deepEqual(mathqaChoices("a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5 , "), [
    "1",
    "2",
    "3",
    "4",
    "5",
  ]);
  assert.deepEqual(mathqaChoices("['a ) 12', 'b ) 15', 'c ) 10', 'd ) 8', 'e ) 14']"), [
    "12'",
    "15'",
    "10'",
    "8'",
    "14']",
  ]);
});

test("a bad release item names its file and field", async () => {
  const root = await mkdtemp(join(tmpdir(), "lethe-paper-bad-"));
  const put = async (path: string, text: string) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  };
  try {
    await put(
      "mathqa/test.json",
      JSON.stringify([{ Problem: "p", options: "a ) 1", correct: "c" }]),
    );
    await assert.rejects(
      loadEvalDocs(getTask("mathqa"), root),
      /mathqa\/test\.json: item 1: field "correct" is "c", but "options" parses into 0 choices/,
    );
    await put(
      "mutual/mutual/dev/dev_1.txt",
      JSON.stringify({ answers: "E", options: ["a", "b", "c", "d"], article: "x", id: "dev_1" }),
    );
    await assert.rejects(
      loadEvalDocs(getTask("mutual"), root),
      /mutual\/dev\/dev_1\.txt: field "answers" must be one of A-D, got "E"/,
    );
    const article = {
      article: "A",
      questions: ["q1", "q2"],
      options: [["a", "b", "c", "d"]],
      answers: ["A", "B"],
    };
    await put("race/test/high/7.txt", JSON.stringify(article));
    await assert.rejects(
      loadEvalDocs(getTask("race"), root),
      /race\/test\/high\/7\.txt: 2 questions, 1 option lists and 2 answers/,
    );
    await put(
      "race/test/middle/3.txt",
      JSON.stringify({ ...article, questions: ["q1"], answers: ["A"], options: [["a", "b"]] }),
    );
    await assert.rejects(
      loadEvalDocs(getTask("race_middle"), root),
      /race\/test\/middle\/3\.txt: problems\[0\]: field "options" has 2 options; the prompt takes four/,
    );
  } finally {
    await rm(root, { recursive: true });
  }
});

test("examples/luo2023.yaml evaluates the paper's suite in its four categories", () => {
  const study = loadStudy(join(repoRoot, "examples", "luo2023.yaml"), { LETHE_DATA: tmpdir() });
  const byCategory: Record<string, string[]> = {};
  for (const b of study.benchmarks) (byCategory[b.category] ??= []).push(b.name);
  assert.deepEqual(byCategory, {
    domain_knowledge: ["mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"],
    reasoning: ["boolq", "piqa", "winogrande", "hellaswag", "mathqa", "mutual"],
    reading_comprehension: ["race", "race_middle"],
    bias: ["crows_pairs_english"], // the paper's: CrowS-Pairs English as a whole
  });
  const metric = (name: string) => study.benchmarks.find((b) => b.name === name)!.metric;
  assert.equal(metric("mutual"), "r@1,none");
  assert.equal(metric("mathqa"), "acc,none");
  assert.equal(metric("crows_pairs_english"), "pct_stereotype,none");
  for (const name of byCategory.domain_knowledge) {
    assert.equal(study.benchmarks.find((b) => b.name === name)!.shots, 5, name);
    // Pooled: lm-eval's group mean weighted by each subject's question count.
    assert.deepEqual(getGroup(name)!.aggregate, [{ metric: "acc", weight_by_size: true }], name);
  }
});
