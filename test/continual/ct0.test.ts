/**
 * The paper's five tasks (Luo et al. 2023, arXiv 2308.08747) as CT0 (Scialom et al. 2022) built
 * them: Luo's wrapper byte for byte (25-space quirk), numpy's seed-0 shuffle and CPython's
 * `random.seed(666)` draws against Python's own output (fixtures/make_ct0_fixtures.py), CT0's
 * processing on hand-made wiki_auto / empathetic_dialogues parquet rows and on the real shared
 * copies of e-SNLI, the Gigaword test set and ELI5-Category.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readParquet, readJsonl } from "../../src/io/dataset.js";
import {
  applyCt0,
  ct0Test,
  CT0_TEMPLATES,
  LUO_PROMPTS,
  LUO_WRAPPER,
  luoIndices,
  luoTarget,
  luoTrain,
  numpyLegacyPermutation,
  wikiAutoSplits,
  type Ct0Row,
} from "../../src/continual/ct0.js";
import { renderPrompt, TEMPLATES } from "../../src/continual/instruction.js";
import { getGenerationMetric } from "../../src/eval/metrics/index.js";
import { getSequence, getTask, loadTask } from "../../src/continual/tasks/index.js";
import { dialogueRows } from "../../src/continual/tasks/empathetic_dialogues.js";
import { eli5Rows, readEli5Category } from "../../src/continual/tasks/eli5.js";
import { esnliLineRows } from "../../src/continual/tasks/esnli_ct0.js";
import { gigawordRows } from "../../src/continual/tasks/gigaword_ct0.js";
import { dataPath, skipReason } from "../helpers/data.js";

const FIX = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const ref = JSON.parse(readFileSync(join(FIX, "ct0_reference.json"), "utf8")) as {
  luo_wrapper: string;
  numpy_shuffle: Record<string, { first: number[]; last: number[]; sum_first_100000: number }>;
  py_random_666: {
    contain_lengths: number[];
    contain_draws: [number, number][];
    choice11: number[];
  };
};

test("Luo's wrapper is byte for byte their train.py's, 25 spaces included", () => {
  const expected =
    "Below is an instruction that describes a task, paired with an input that provides" +
    "                         " + // 25 spaces: the f-string's continuation-line indentation
    "further context. Write a response that appropriately completes the request.\n\n{example}\n\n### Response:";
  assert.equal(expected.split("provides")[1].indexOf("further"), 25);
  assert.equal(LUO_WRAPPER, expected);
  assert.equal(LUO_WRAPPER, ref.luo_wrapper, "as Python evaluates Luo's f-string");
  const prompt = renderPrompt(TEMPLATES.luo2023, {
    instruction: 'Make this text simpler: "A b."',
    input: "A b.",
    output: "",
  });
  assert.equal(prompt, expected.replace("{example}", 'Make this text simpler: "A b."'));
});

test("Luo's target string: str(list) with [' and '] removed", () => {
  assert.equal(luoTarget(["the man is sleeping"]), "the man is sleeping");
  assert.equal(luoTarget(["a", "b c"]), "a', 'b c");
  assert.equal(luoTarget(["it's"]), `["it's"]`); // Python quotes it with ", so nothing matches
  assert.equal(luoTarget("plain headline"), "plain headline");
});

test("numpy's legacy seed-0 shuffle, bit for bit; the 100,000 draw is fixed", () => {
  for (const [n, r] of Object.entries(ref.numpy_shuffle)) {
    const p = numpyLegacyPermutation(Number(n), 0);
    assert.deepEqual(Array.from(p.slice(0, 20)), r.first, `n=${n} first`);
    assert.deepEqual(Array.from(p.slice(-5)), r.last, `n=${n} last`);
  }
  const draw = luoIndices(250_000, 1);
  assert.equal(draw.length, 100_000);
  assert.equal(
    draw.reduce((a, b) => a + b, 0),
    ref.numpy_shuffle["250000"].sum_first_100000,
  );
  assert.deepEqual(luoIndices(250_000, 1), draw, "same seed, same draw");
  assert.equal(luoIndices(250_000, 3).length, 33_333, "gigaword: int(100000 / 3) per prompt");
  assert.equal(new Set(draw).size, 100_000, "without replacement");
  // A task with fewer rows than the draw keeps them all, in shuffled order (Python slicing).
  assert.deepEqual(Array.from(luoIndices(10, 1)), ref.numpy_shuffle["10"].first);
});

test("CT0's constraint words and template choices follow CPython's random.seed(666)", () => {
  const { contain_lengths, contain_draws } = ref.py_random_666;
  const rows: Ct0Row[] = contain_lengths.map((n, i) => ({
    fields: { document: `doc ${i}` },
    target: Array.from({ length: n }, (_, k) => `w${k}`).join(" "),
  }));
  const out = applyCt0(rows, "constrain_contain+make_a_title", ["document"]);
  const templates = CT0_TEMPLATES["constrain_contain+make_a_title"];
  out.forEach((ex, i) => {
    const [c, k] = contain_draws[i];
    assert.equal(
      ex.instruction,
      templates[c].replace("[TO_REPLACE_1]", `w${k}`).replace("[document]", `doc ${i}`),
    );
    assert.equal(ex.output, rows[i].target);
  });
  // start / end: the first / last word; the template draw alone uses the stream.
  const [s] = applyCt0(rows.slice(0, 1), "constrain_start+make_a_title", ["document"]);
  assert.equal(s.instruction, 'Make a title for this article that begins with "w0": doc 0');
  const [e] = applyCt0(rows.slice(0, 1), "constrain_end+make_a_title", ["document"]);
  assert.equal(e.instruction, 'Make a title for this article, finishing with "w6": doc 0');
});

function tempDataDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "lethe-ct0-"));
  for (const [to, from] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, to)), { recursive: true });
    copyFileSync(from, join(dir, to));
  }
  return dir;
}

test("wiki_auto: CT0's split and simplification_1 on hand-made auto_acl rows", async () => {
  // CT0's split: train is all but the last 10,000 rows, test the last 4,000.
  const many = Array.from({ length: 10_005 }, (_, i) => i);
  const s = wikiAutoSplits(many);
  assert.deepEqual(s.train, [0, 1, 2, 3, 4]);
  assert.equal(s.test.length, 4000);
  assert.equal(s.test[0], 6005);

  const dir = tempDataDir({
    "instructions/wiki_auto/full.parquet": join(FIX, "ct0_wiki_auto.parquet"),
  });
  try {
    const task = await loadTask("wiki_auto", dir, { template: TEMPLATES.luo2023 });
    assert.equal(task.metric, "sari");
    assert.equal(task.train.length, 0, "6 rows: Python's rows[:-10000] is empty");
    assert.equal(task.test.length, 6);
    // random.seed(666) then choice over the 11 templates: 7, 6, 6, … (Python's own draws).
    const t = CT0_TEMPLATES.simplification_1;
    const [c0, c1] = ref.py_random_666.choice11;
    assert.equal(
      task.test[0].instruction,
      t[c0].replace("[normal_sentence]", "The cat, which was notably large, sat upon the mat."),
    );
    assert.equal(
      task.test[0].instruction,
      'Reformulate this text with simpler words: "The cat, which was notably large, sat upon the mat."',
    );
    assert.equal(
      task.test[1].instruction,
      t[c1].replace("[normal_sentence]", "Paris is the capital and most populous city of France."),
    );
    assert.equal(
      task.test[0].input,
      "The cat, which was notably large, sat upon the mat.",
      "SARI's source",
    );
    assert.deepEqual(task.test[0].references, ["The big cat sat on the mat."]);
    // A field holding "[normal_sentence]" is not expanded again (Python's single-pass replace).
    assert.ok(task.test[5].instruction.includes('She [normal_sentence] wrote "quoted" text.'));
    assert.equal(
      renderPrompt(task.template, task.test[0]),
      LUO_WRAPPER.replace("{example}", task.test[0].instruction),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("empathetic_dialogues: CT0's per-turn expansion, its checks and its quirk", async () => {
  const rows = dialogueRows(await readParquet(join(FIX, "ct0_empathetic_dialogues.parquet")));
  // conv 0: 4 turns → 3 examples; conv 1: turns 3-4 dropped (same speaker, then a gap) → 1,
  // appended 3 times (once itself, once per row of conv 2, which does not start at 1); conv 3 → 1.
  assert.equal(rows.length, 3 + 3 + 1);
  assert.deepEqual(rows[0], {
    fields: {
      context: "sentimental",
      input_text:
        "- I remember going to see the fireworks with my best friend, it was the first time.",
    },
    target: "Was this a friend you were in love with, or just a best friend?",
  });
  assert.equal(
    rows[2].fields.input_text,
    "- I remember going to see the fireworks with my best friend, it was the first time.\n" +
      "- Was this a friend you were in love with, or just a best friend?\n" +
      "- This was a best friend. I miss her.",
  );
  assert.equal(rows[2].target, "Where has she gone?");
  for (const i of [3, 4, 5]) assert.equal(rows[i].target, "Oh no! What was it?");
  assert.equal(rows[6].target, "How fun, what breed?");

  const fx = join(FIX, "ct0_empathetic_dialogues.parquet");
  const dir = tempDataDir({
    "instructions/empathetic_dialogues/train.parquet": fx,
    "instructions/empathetic_dialogues/test.parquet": fx,
  });
  try {
    const task = await loadTask("empathetic_dialogues", dir);
    assert.equal(task.metric, "bleu");
    assert.equal(task.test.length, 7);
    assert.equal(
      task.test[0].instruction,
      'Given that you are "sentimental", what would be your response to the the following dialogue:\n\n===\n\n' +
        "- I remember going to see the fireworks with my best friend, it was the first time.",
    );
    // Train: Luo's draw over the 7 examples (all of them, in numpy's shuffled order).
    const order = Array.from(numpyLegacyPermutation(7, 0));
    assert.deepEqual(
      task.train.map((e) => e.output),
      order.map((i) => task.test[i].output),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("e-SNLI, Gigaword and ELI5 from rows in the Hub's schemas (local copies in the Hub layout)", async () => {
  const dir = tempDataDir({
    "instructions/esnli/train.parquet": join(FIX, "ct0_esnli_train.parquet"),
    "instructions/esnli/test.parquet": join(FIX, "ct0_esnli_train.parquet"),
    "instructions/gigaword/train.parquet": join(FIX, "ct0_gigaword_train.parquet"),
    "instructions/gigaword/test.parquet": join(FIX, "ct0_gigaword_train.parquet"),
    "instructions/eli5/train_eli5.parquet": join(FIX, "ct0_eli5_train.parquet"),
    "instructions/eli5/test_eli5.parquet": join(FIX, "ct0_eli5_train.parquet"),
  });
  try {
    const esnli = await loadTask("esnli_ct0", dir);
    assert.equal(esnli.metric, "bleu");
    assert.equal(
      esnli.test[1].instruction,
      'Explain why the two following sentences do not entail each other: "Sentence 1: Two dogs run."; Sentence 2: "Cats run."',
    );
    assert.deepEqual(
      esnli.test[1].references,
      ["dogs are not cats"],
      "HF's empty explanations dropped",
    );
    const perm = Array.from(numpyLegacyPermutation(3, 0));
    assert.deepEqual(
      esnli.train.map((e) => e.output),
      perm.map((i) => ["sleeps means asleep", "dogs are not cats", "singing need not be loud"][i]),
    );

    const giga = await loadTask("gigaword_ct0", dir);
    assert.equal(giga.metric, "rouge1");
    assert.equal(giga.train.length, 9, "3 prompts × min(33,333, 3 rows)");
    assert.equal(giga.test.length, 9);
    assert.equal(
      giga.test[0].instruction,
      'Make a title for this article that begins with "un": the un said tuesday it would send aid .',
    );
    assert.equal(giga.test[6].instruction.includes('"aid"'), true, "constrain_end: the last word");

    const eli5 = await loadTask("eli5", dir);
    // Kept: "Why is the sky blue?" only ("Is …" starts with I, "How …? And why?" has two "?").
    assert.equal(eli5.test.length, 1);
    assert.equal(eli5.test[0].output, "Why is the sky blue?");
    assert.equal(
      eli5.test[0].instruction,
      "Because of the air.\n\n===\n\nGiven the above text, write the possible curious question it answers:",
      "the best-scored answer, CT0's 4th template (random.seed(666) draws 3 of 4)",
    );
    assert.equal(eli5.train.length, 2, "generate_a_question_1 and _2, one post each");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a task whose data is neither local nor on a reachable hub names the dataset and the fixes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-ct0-"));
  const saved = { ...process.env };
  process.env.HF_HUB_OFFLINE = "1";
  process.env.HF_HOME = dir;
  try {
    await assert.rejects(
      loadTask("wiki_auto", dir),
      (e: Error) =>
        /task "wiki_auto": no local copy of split "full" in .*instructions\/wiki_auto/.test(
          e.message,
        ) &&
        /dataset wiki_auto \(auto_acl\/full\)/.test(e.message) &&
        /HF_ENDPOINT/.test(e.message) &&
        /a path source/.test(e.message),
    );
  } finally {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("e-SNLI: CT0's label phrases and explain_why on the shared test split", (t) => {
  const dir = dataPath("instructions", "esnli");
  if (dir === null) return t.skip(skipReason("instructions", "esnli"));
  const rows = esnliLineRows(dir, "test");
  assert.equal(rows.length, 9824);
  const tests = ct0Test(rows, ["explain_why"], ["gold_label_prompt", "Sentence1", "Sentence2"]);
  assert.equal(
    tests[0].instruction,
    'Explain why the two following sentences are unrelated: "Sentence 1: This church choir sings to the masses as they sing joyous songs from the book at a church ."; ' +
      'Sentence 2: "The church has cracks in the ceiling ."',
  );
  assert.equal(tests[0].output, "not all churches have cracks in the ceiling");
  assert.equal(tests[0].references!.length, 3);
  const phrases = new Set(rows.map((r) => r.fields.gold_label_prompt));
  assert.deepEqual([...phrases].sort(), [
    "are unrelated",
    "do not entail each other",
    "entail each other",
  ]);
  // Trained as Luo trains e-SNLI: one explanation, Luo's target string unchanged by it.
  const train = luoTrain(
    rows.map((r) => ({ ...r, target: [(r.target as string[])[0]] })),
    ["explain_why"],
    ["gold_label_prompt", "Sentence1", "Sentence2"],
  );
  assert.equal(train.length, 9824);
  assert.equal(train[0].output, (rows[numpyLegacyPermutation(9824, 0)[0]].target as string[])[0]);
});

test("Gigaword: the three constraint prompts on the shared 1,951-pair test set", async (t) => {
  const path = dataPath("instructions", "gigaword", "test.jsonl");
  if (path === null) return t.skip(skipReason("instructions", "gigaword", "test.jsonl"));
  const rows = gigawordRows(await readJsonl(path));
  assert.equal(rows.length, 1951);
  const tests = ct0Test(rows, LUO_PROMPTS.gigaword.test, ["document"]);
  assert.equal(tests.length, 3 * 1951);
  const doc =
    "japan 's nec corp. and UNK computer corp. of the united states said wednesday they had agreed to join forces in supercomputer sales .";
  // random.seed(666): the first choice among 5 (start) and 6 (end) templates is 3 (Python).
  assert.equal(
    tests[0].instruction,
    `Make a title for this article that begins with "nec": ${doc}`,
  );
  assert.equal(
    tests[2 * 1951].instruction,
    `Make a title for this article, finishing with "tie-up": ${doc}`,
  );
  assert.equal(tests[0].output, "nec UNK in computer sales tie-up");
  for (const ex of tests.slice(1951, 2 * 1951)) {
    const word = /"([^"]*)"/.exec(ex.instruction)![1];
    assert.ok(ex.output.split(/\s+/).includes(word), `${word} in ${ex.output}`);
  }
  assert.equal(getTask("gigaword_ct0").metric, "rouge1");
});

test("ELI5: CT0's W/H one-question-mark filter and best answer on ELI5-Category", (t) => {
  const path = dataPath("instructions", "eli5_category", "eli5-category-test.json.gz");
  if (path === null)
    return t.skip(skipReason("instructions", "eli5_category", "eli5-category-test.json.gz"));
  const file = readEli5Category(path);
  const rows = eli5Rows(file);
  // Independent count over the raw posts.
  let kept = 0;
  for (const p of file.rows as { title: string }[]) {
    const marks = [...p.title].filter((c) => c === "?").length;
    if (/^[WH]/.test(p.title) && marks === 1) kept++;
  }
  assert.equal(rows.length, kept);
  assert.ok(kept > 1000 && kept < file.rows.length, `${kept} of ${file.rows.length}`);
  const first = file.rows.find(
    (p) => /^[WH]/.test(p.title as string) && (p.title as string).split("?").length === 2,
  ) as {
    title: string;
    answers: { text: string[]; score: number[] };
  };
  assert.equal(rows[0].target, first.title);
  const best = Math.max(...first.answers.score);
  assert.equal(first.answers.score[first.answers.text.indexOf(rows[0].fields.text)], best);
  const ex = applyCt0(rows.slice(0, 1), "generate_a_question_1", ["text"])[0];
  assert.equal(
    ex.instruction,
    `[text]\n\n===\n\nGiven the above text, write the possible curious question it answers:`.replace(
      "[text]",
      rows[0].fields.text,
    ),
  );
  assert.equal(ex.output, first.title);
  assert.equal(getTask("eli5").metric, "bleu");
});

test("the luo2023 sequence is the paper's five tasks in its order, with its metrics", () => {
  const seq = getSequence("luo2023");
  assert.deepEqual(seq, ["wiki_auto", "empathetic_dialogues", "eli5", "esnli_ct0", "gigaword_ct0"]);
  assert.deepEqual(
    seq.map((n) => getTask(n).metric),
    ["sari", "bleu", "bleu", "bleu", "rouge1"],
  );
});

test("ROUGE-1, the paper's HGen metric, equals rouge-score's", () => {
  // rouge_score.RougeScorer(["rouge1"]).score("the cat sat on the mat the",
  //   "the the cat was on a mat")["rouge1"].fmeasure * 100, computed with the project's Python.
  const r1 = getGenerationMetric("rouge1");
  assert.equal(
    r1.sentence("the the cat was on a mat", ["the cat sat on the mat the"]),
    71.42857142857143,
  );
  assert.equal(r1.sentence("", ["a"]), 0);
  assert.equal(r1.corpus(["a b", "c"], [["a b"], ["d", "c"]]), 100);
});
