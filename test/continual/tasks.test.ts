import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  TEMPLATES,
  readInstructionExamples,
  renderPrompt,
  resolveTemplate,
  seededSplit,
  templateFromString,
} from "../../src/continual/instruction.js";
import {
  SEQUENCES,
  TASKS,
  getSequence,
  getTask,
  loadTask,
} from "../../src/continual/tasks/index.js";
import { dataPath, sharedDataRoot, skipReason } from "../helpers/data.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-tasks-"));

test("alpaca template renders Stanford Alpaca's PROMPT_DICT text exactly", () => {
  const withInput = renderPrompt(TEMPLATES.alpaca, {
    instruction: "Add the numbers.",
    input: "2, 3",
    output: "5",
  });
  assert.equal(
    withInput,
    "Below is an instruction that describes a task, paired with an input that provides further context. " +
      "Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\nAdd the numbers.\n\n### Input:\n2, 3\n\n### Response:",
  );
  const noInput = renderPrompt(TEMPLATES.alpaca, {
    instruction: "Say hi.",
    input: "",
    output: "hi",
  });
  assert.equal(
    noInput,
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\nSay hi.\n\n### Response:",
  );
  assert.equal(
    renderPrompt(TEMPLATES.plain, { instruction: "Q", input: "x", output: "" }),
    "Q\nx\n",
  );
});

test("string templates: placeholders in example text are not re-expanded; unknown ones are errors", () => {
  const t = resolveTemplate("{instruction} \n{input}\nAnswer:");
  assert.equal(
    renderPrompt(t, { instruction: "Pick {input}", input: "a", output: "" }),
    "Pick {input} \na\nAnswer:",
  );
  assert.throws(
    () => templateFromString("{instruction} {output}"),
    /unknown placeholder \{output\}/,
  );
  assert.throws(
    () => resolveTemplate("alpacca"),
    /unknown template "alpacca". Did you mean "alpaca"\?/,
  );
});

test("a malformed JSONL row names the file, line and field", async () => {
  const file = join(tmp, "bad.jsonl");
  writeFileSync(file, '{"instruction": "a", "output": "b"}\n\n{"instruction": "c"}\n');
  const opts = { fields: { instruction: "instruction", output: "output" } };
  await assert.rejects(
    readInstructionExamples(file, opts),
    new RegExp(`${file}:3: missing field "output"`),
  );
  writeFileSync(file, '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": 3}\n');
  await assert.rejects(
    readInstructionExamples(file, opts),
    new RegExp(`${file}:2: field "output" must be a string`),
  );
  writeFileSync(file, '{"instruction": "a", "output": "b"}\n{"instruction": \n');
  await assert.rejects(readInstructionExamples(file, opts), new RegExp(`${file}:2: invalid JSON`));
});

test("CSV and the Hugging Face Hub layout (shards under data/) read with a field mapping", async () => {
  const csv = join(tmp, "rows.csv");
  writeFileSync(csv, 'question,answer\n"Two, words?",yes\n"multi\nline",no\nthird,\n');
  const rows = await readInstructionExamples(csv, {
    fields: { input: "question", output: "answer" },
    instructionText: "Answer.",
  });
  assert.deepEqual(rows[1], { instruction: "Answer.", input: "multi\nline", output: "no" });
  assert.equal(rows[2].output, "");

  const hub = join(tmp, "hub");
  mkdirSync(join(hub, "data"), { recursive: true });
  writeFileSync(join(hub, "data", "train-00000-of-00002.jsonl"), '{"q": "a", "r": {"t": "1"}}\n');
  writeFileSync(join(hub, "data", "train-00001-of-00002.jsonl"), '{"q": "b", "r": {"t": "2"}}\n');
  writeFileSync(join(hub, "data", "test-00000-of-00001.jsonl"), '{"q": "c", "r": {"t": "3"}}\n');
  const fields = { instruction: "q", output: "r.t" };
  const train = await readInstructionExamples(hub, { fields });
  assert.deepEqual(
    train.map((e) => e.instruction + e.output),
    ["a1", "b2"],
  );
  const testRows = await readInstructionExamples(hub, { fields, split: "test" });
  assert.equal(testRows[0].output, "3");
  await assert.rejects(
    readInstructionExamples(hub, { fields, split: "validation" }),
    /no "validation" split found/,
  );
});

test("seeded group split is deterministic and keeps each group on one side", () => {
  const items = Array.from({ length: 100 }, (_, i) => ({ i, g: `g${i % 20}` }));
  const a = seededSplit(items, { testFraction: 0.25, seed: 3, groupOf: (x) => x.g });
  const b = seededSplit(items, { testFraction: 0.25, seed: 3, groupOf: (x) => x.g });
  assert.deepEqual(a, b);
  assert.equal(a.test.length, 25); // 5 of 20 groups × 5 items
  const testGroups = new Set(a.test.map((x) => x.g));
  assert.ok(a.train.every((x) => !testGroups.has(x.g)));
  assert.notDeepEqual(
    seededSplit(items, { testFraction: 0.25, seed: 4, groupOf: (x) => x.g }).test,
    a.test,
  );
});

test("registry: every sequence names registered tasks; unknown names suggest the closest", () => {
  for (const [name, tasks] of Object.entries(SEQUENCES)) {
    for (const t of tasks) assert.ok(t in TASKS, `${name}: ${t}`);
    assert.equal(new Set(tasks).size, tasks.length, `${name} repeats a task`);
  }
  assert.deepEqual(getSequence("olora-4-order1"), ["dbpedia", "amazon", "yahoo", "agnews"]);
  assert.equal(getSequence("olora-15-order4").length, 15);
  assert.equal(
    new Set([...getSequence("olora-15-order5"), ...getSequence("olora-15-order6")]).size,
    15,
  );
  assert.throws(() => getTask("haiky"), /unknown instruction task "haiky". Did you mean "haiku"\?/);
  assert.throws(() => getSequence("luo2024"), /Did you mean "luo2023"\?/);
});

const ROOT = dataPath("instructions") === null ? null : sharedDataRoot;

/** Loads a task from shared data, or skips with the printed reason. */
async function load(t: { skip: (msg: string) => void }, name: string, folder: string) {
  if (ROOT === null || dataPath("instructions", folder) === null) {
    t.skip(skipReason("instructions", folder));
    return null;
  }
  return loadTask(name, ROOT);
}

function assertNonEmpty(task: {
  name: string;
  train: { instruction: string; output: string }[];
  test: { instruction: string; output: string }[];
}) {
  for (const ex of [...task.train, ...task.test]) {
    assert.ok(
      ex.instruction.trim() !== "" && ex.output.trim() !== "",
      `${task.name}: empty field in ${JSON.stringify(ex)}`,
    );
  }
}

test("haiku: CT0 JSON Lines under .json, counts and first example", async (t) => {
  const task = await load(t, "haiku", "scialom_ct0");
  if (!task) return;
  assert.equal(task.train.length, 9742); // 9741 newlines + a last line without one
  assert.equal(task.test.length, 974);
  assert.deepEqual(task.train[0], {
    instruction: "Write a haiku that includes the word 'Military volunteer'",
    input: "",
    output: "Donkey engineer , Military volunteer , celebrates new year.",
  });
  assert.equal(task.metric, "rougeL");
  assertNonEmpty(task);
});

test("e-SNLI and ASSET: aligned line files with all references", async (t) => {
  const esnli = await load(t, "esnli", "esnli");
  if (!esnli) return;
  assert.equal(esnli.train.length, 9842);
  assert.equal(esnli.test.length, 9824);
  assert.equal(
    esnli.train[0].instruction,
    "Explain why the premise neither entails nor contradicts the hypothesis.",
  );
  assert.equal(
    esnli.train[0].input,
    "Premise: Two women are embracing while holding to go packages .\n" +
      "Hypothesis: The sisters are hugging goodbye while holding to go packages after just eating lunch .",
  );
  assert.equal(esnli.train[0].references?.length, 3);
  assertNonEmpty(esnli);

  const asset = await load(t, "asset", "asset");
  if (!asset) return;
  assert.equal(asset.train.length, 2000);
  assert.equal(asset.test.length, 359);
  assert.equal(asset.metric, "sari");
  assert.ok(
    asset.test.every((e) => e.references?.length === 10 && e.references.every((r) => r !== "")),
  );
  assert.equal(
    asset.train[0].output,
    "countries next to it are Marin, Mendocino, Lake, Napa, Solano, and Contra Costa.",
  );
});

test("COVID-QA, gigaword, alpaca: held-out splits are disjoint where they must be", async (t) => {
  const covid = await load(t, "covid_qa", "covid_qa");
  if (!covid) return;
  assert.equal(covid.train.length + covid.test.length, 1380);
  assertNonEmpty(covid);

  const giga = await load(t, "gigaword", "self_instruct");
  if (!giga) return;
  const testHeadlines = new Set(giga.test.map((e) => e.output));
  assert.ok(
    giga.train.every((e) => !testHeadlines.has(e.output)),
    "a headline is on both sides",
  );
  for (const e of giga.train) {
    const word = /^Include the word "([a-z]+)" in your answer\.\n/.exec(e.instruction)?.[1];
    assert.ok(
      word && e.output.split(" ").includes(word),
      `constraint not in headline: ${e.instruction}`,
    );
    assert.ok(!e.output.includes("<|endoftext|>"));
  }
  assert.ok(
    giga.train.length + giga.test.length > 1300 && giga.train.length + giga.test.length <= 1400,
  );

  const alpaca = await load(t, "alpaca", "alpaca");
  if (!alpaca) return;
  assert.equal(alpaca.train.length, 4500);
  assert.equal(alpaca.test.length, 500);
  const again = await loadTask("alpaca", sharedDataRoot, { maxTrain: 10, maxTest: 5 });
  assert.deepEqual(again, await loadTask("alpaca", sharedDataRoot, { maxTrain: 10, maxTest: 5 }));
  assert.equal(again.train.length, 10);
  assert.ok(
    again.train.every((e) =>
      alpaca.train.some((x) => x.instruction === e.instruction && x.output === e.output),
    ),
  );
});

test("O-LoRA tasks: label sets, options in the instruction, missing-split handling", async (t) => {
  const agnews = await load(t, "agnews", "olora_cl_benchmark");
  if (!agnews) return;
  assert.equal(agnews.train.length, 4000);
  assert.equal(agnews.test.length, 7600);
  assert.equal(
    agnews.train[0].instruction,
    "What is the topic of the following paragraph? Choose one from the option.\nOption: World, Sports, Business, Science or Technology",
  );
  assert.ok(
    agnews.test.every((e) =>
      ["World", "Sports", "Business", "Science or Technology"].includes(e.output),
    ),
  );
  assert.equal(agnews.metric, "exact_match");
  // O-LoRA's own wrapper as a template string.
  const olora = resolveTemplate("{instruction} \n{input}\nAnswer:");
  assert.ok(
    renderPrompt(olora, agnews.test[0]).endsWith(
      `\nOption: World, Sports, Business, Science or Technology \n${agnews.test[0].input}\nAnswer:`,
    ),
  );

  const mnli = await loadTask("MNLI", sharedDataRoot);
  assert.equal(mnli.test.length, 7600 - 131); // rows labelled "-" dropped
  const dbpedia = await loadTask("dbpedia", sharedDataRoot); // test only: 10 % held out of it
  assert.equal(dbpedia.train.length + dbpedia.test.length, 7600);
  assert.equal(dbpedia.test.length, 760);
  await assert.rejects(
    loadTask("yahoo", sharedDataRoot),
    /yahoo: neither .*TC\/yahoo\/train\.json nor .*test\.json exists/,
  );
});
