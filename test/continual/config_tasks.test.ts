/**
 * Tasks declared in a study config (src/continual/tasks/declare.ts, the `tasks:` part of
 * config.ts): every source format, the test_split forms, rows and fields named in errors, the
 * config's checks, the Hub source's call site, and a declared task trained and scored in a tiny
 * study run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadStudy } from "../../src/continual/config.js";
import { runStudy } from "../../src/continual/study.js";
import { declareTask, renderTemplate } from "../../src/continual/tasks/declare.js";
import { loadTask } from "../../src/continual/tasks/index.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-config-tasks-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function write(rel: string, text: string): string {
  const file = join(tmp, rel);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/** 20 simplification rows: normal → simple, doc = a group shared by pairs of rows. */
const ROWS = Array.from({ length: 20 }, (_, i) => ({
  normal_sentence: `The committee deliberated at length on item ${i}.`,
  simple_sentence: `They talked about item ${i}.`,
  doc: `d${Math.floor(i / 2)}`,
}));
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const csv = (rows: typeof ROWS, sep: string) =>
  ["normal_sentence", "simple_sentence", "doc"].join(sep) +
  "\n" +
  rows
    .map((r) =>
      [r.normal_sentence, r.simple_sentence, r.doc]
        .map((v) => (sep === "," ? `"${v}"` : v))
        .join(sep),
    )
    .join("\n") +
  "\n";

const simp = {
  name: "my_simplification",
  prompt: 'Make this text simpler: "{normal_sentence}"',
  target: "simple_sentence",
  metric: "sari" as const,
};

test("templates: {field}, nested {a.b}, {{ }} escapes; field text is never re-expanded", () => {
  const row = { a: { b: "x{y}" }, n: 3 };
  assert.equal(
    renderTemplate("{{literal}} {a.b} n={n}", row, "f:1", "prompt"),
    "{literal} x{y} n=3",
  );
  assert.throws(
    () => renderTemplate("{missing}", row, "data.jsonl:17", "prompt"),
    /^Error: data\.jsonl:17: prompt: missing field "missing"$/,
  );
  assert.throws(
    () => renderTemplate("{a}", row, "f:2", "target"),
    /f:2: target: field "a" must be text, got an object/,
  );
});

test("every source format gives the same examples", async () => {
  const sources = [
    write("fmt/simp.jsonl", jsonl(ROWS)),
    write("fmt/simp.json", JSON.stringify(ROWS)),
    write("fmt/simp.csv", csv(ROWS, ",")),
    write("fmt/simp.tsv", csv(ROWS, "\t")),
    join(repoRoot, "test", "io", "fixtures", "simp.parquet"),
    write("fmt/hub/data/train-00000-of-00001.jsonl", jsonl(ROWS)).replace(/\/data\/.*$/, ""),
  ];
  const tasks = [];
  for (const path of sources) {
    const def = declareTask({ ...simp, source: { path }, test_split: { fraction: 0.25 } });
    tasks.push(await def.load(tmp, { seed: 1 }));
  }
  assert.equal(tasks[0].train.length, 15);
  assert.equal(tasks[0].test.length, 5);
  assert.deepEqual(tasks[0].train[0], {
    instruction: `Make this text simpler: "${ROWS[0].normal_sentence}"`,
    input: "",
    output: ROWS[0].simple_sentence,
  });
  for (const [i, t] of tasks.entries()) assert.deepEqual(t, tasks[0], sources[i]);
  assert.equal(tasks[0].metric, "sari");
});

test("test_split forms: {path}, {fraction} with groups, {split}, null; max_train caps training", async () => {
  const train = write("splits/train.jsonl", jsonl(ROWS.slice(0, 16)));
  const testFile = write("splits/test.csv", csv(ROWS.slice(16), ","));
  const byPath = await declareTask({
    ...simp,
    source: { path: train },
    test_split: { path: testFile },
  }).load(tmp);
  assert.deepEqual([byPath.train.length, byPath.test.length], [16, 4]);
  assert.equal(byPath.test[0].output, ROWS[16].simple_sentence);

  const grouped = await declareTask({
    ...simp,
    source: { path: train },
    test_split: { fraction: 0.25, group: "doc" },
  }).load(tmp, { seed: 4 });
  const docOf = (o: string) => ROWS.find((r) => r.simple_sentence === o)!.doc;
  const testDocs = new Set(grouped.test.map((e) => docOf(e.output)));
  assert.equal(testDocs.size, 2); // round(0.25 × 8 groups)
  assert.ok(
    grouped.train.every((e) => !testDocs.has(docOf(e.output))),
    "a group on both sides",
  );
  // The same seed draws the same split; another seed another one.
  assert.deepEqual(
    grouped,
    await declareTask({
      ...simp,
      source: { path: train },
      test_split: { fraction: 0.25, group: "doc" },
    }).load(tmp, { seed: 4 }),
  );

  write("splits/hub/train.jsonl", jsonl(ROWS.slice(0, 12)));
  write("splits/hub/test.jsonl", jsonl(ROWS.slice(12)));
  const hubLayout = join(tmp, "splits", "hub");
  const bySplit = await declareTask({
    ...simp,
    source: { path: hubLayout },
    test_split: { split: "test" },
    max_train: 5,
  }).load(tmp);
  assert.deepEqual([bySplit.train.length, bySplit.test.length], [5, 8]);
  // The cap is a seeded subsample in the original order, and the study's budget caps it further.
  const capped = await declareTask({
    ...simp,
    source: { path: hubLayout },
    test_split: null,
    max_train: 5,
  }).load(tmp, { maxTrain: 3 });
  assert.deepEqual([capped.train.length, capped.test.length], [3, 0]);
  // {split} needs a folder (or hub) source: a file has no other split.
  await assert.rejects(
    declareTask({ ...simp, source: { path: train }, test_split: { split: "test" } }).load(tmp),
    /train\.jsonl: test_split \{split\} needs a folder in the Hub layout or a hub source/,
  );
});

test("bad rows are named by file, row and field", async () => {
  const rows = ROWS.map((r, i) => (i === 16 ? { normal_sentence: r.normal_sentence } : r));
  const file = write("bad/simp.jsonl", jsonl(rows));
  await assert.rejects(
    declareTask({ ...simp, source: { path: file } }).load(tmp),
    new RegExp(`${file}:17: target: missing field "simple_sentence"`),
  );
  const promptBad = write("bad/p.csv", "a,b\n1,2\n");
  await assert.rejects(
    declareTask({ ...simp, source: { path: promptBad } }).load(tmp),
    new RegExp(`${promptBad}:2: prompt: missing field "normal_sentence"`),
  );
  // Parquet rows are named by their 1-based row; the fixture's row 3 has a null text.
  const parquet = join(repoRoot, "test", "io", "fixtures", "dataset_rows.parquet");
  await assert.rejects(
    declareTask({
      name: "p",
      prompt: "{text}",
      target: "id",
      metric: "rougeL",
      source: { path: parquet },
      test_split: null,
    }).load(tmp),
    /dataset_rows\.parquet: row 3: prompt: field "text" must be text, got null/,
  );
  // references: a list of gold outputs, checked per row.
  const refs = write(
    "bad/refs.jsonl",
    jsonl([
      { s: "a", r: { all: ["x", "y"] } },
      { s: "b", r: {} },
    ]),
  );
  const withRefs = { ...simp, prompt: "{s}", target: "s", references: "r.all", test_split: null };
  await assert.rejects(
    declareTask({ ...withRefs, source: { path: refs } }).load(tmp),
    new RegExp(`${refs}:2: references: missing field "r.all" \\(expected a list of strings\\)`),
  );
  writeFileSync(refs, jsonl([{ s: "a", r: { all: ["x", "y"] } }]));
  const ok = await declareTask({ ...withRefs, source: { path: refs } }).load(tmp);
  assert.deepEqual(ok.train[0].references, ["x", "y"]);
  assert.throws(
    () => declareTask({ ...simp, metric: "meteor" as "sari", source: { path: file } }),
    /task "my_simplification": field "metric"/,
  );
});

/** A study config in `dir` with `tasks` and `orders` as given, the rest from the tiny study. */
function studyFile(dir: string, fields: Record<string, unknown>): string {
  const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), {
    ...process.env,
    LETHE_DATA: sharedDataRoot,
  }).config as unknown as Record<string, unknown>;
  delete raw.tasks;
  Object.assign(raw, fields);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "study.yaml");
  writeFileSync(file, stringify(raw));
  return file;
}

test("config: `tasks:` as a list, paths relative to the config, errors that name the field", async (t) => {
  if (!dataPath("models", "stories260K", "tok512.bin"))
    return t.skip(skipReason("models", "stories260K", "tok512.bin"));
  const dir = join(tmp, "cfg");
  write("cfg/data/simp.jsonl", jsonl(ROWS));
  const decl = { ...simp, source: { path: "data/simp.jsonl" }, test_split: { fraction: 0.2 } };
  const study = loadStudy(
    studyFile(dir, { tasks: [decl], orders: [["my_simplification", "haiku"]] }),
  );
  assert.deepEqual(study.config.tasks.define[0].source, {
    path: join(dir, "data", "simp.jsonl"),
  });
  assert.equal(study.config.tasks.maxGenToks, 128); // the settings keep their defaults
  const task = await loadTask("my_simplification", "/nonexistent", {}, study.config.tasks.define);
  assert.deepEqual([task.train.length, task.test.length], [16, 4]);

  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { tasks: [{ ...decl, promt: "x" }], orders: [["haiku"]] },
      /study\.yaml: field "tasks\.0\.promt": unknown field\. Did you mean "prompt"\?/,
    ],
    [{ tasks: [{ ...decl, metric: "meteor" }], orders: [["haiku"]] }, /field "tasks\.0\.metric"/],
    [
      { tasks: [{ ...decl, source: { path: "data/none.jsonl" } }], orders: [["haiku"]] },
      /field "tasks\.0\.source\.path": .*data\/none\.jsonl not found/,
    ],
    [
      { tasks: [{ ...decl, name: "haiku" }], orders: [["haiku"]] },
      /field "tasks\.0\.name": "haiku" is a built-in task/,
    ],
    [
      { tasks: [decl, decl], orders: [["haiku"]] },
      /field "tasks \(names\)": "my_simplification" is given twice/,
    ],
    [
      { tasks: [decl], orders: [["my_simplificaton"]] },
      /unknown instruction task "my_simplificaton"\. Did you mean "my_simplification"/,
    ],
    [
      {
        tasks: { maxGenToks: 8, define: [{ ...decl, test_split: { fraction: 2 } }] },
        orders: [["haiku"]],
      },
      /field "tasks\.define\.0\.test_split/,
    ],
  ];
  for (const [fields, message] of cases)
    assert.throws(() => loadStudy(studyFile(dir, fields)), message, String(message));
});

test("a {hub} source goes through the Hub's parquet export (offline: the cache only)", async () => {
  const def = declareTask({
    ...simp,
    source: { hub: "lethe-test/not-cached", config: "default", split: "train" },
  });
  const saved = { ...process.env };
  process.env.HF_HUB_OFFLINE = "1";
  process.env.HF_HOME = join(tmp, "hf-home");
  try {
    await assert.rejects(
      def.load(tmp),
      /lethe-test\/not-cached \(default\/train\) is not in the cache .*HF_HUB_OFFLINE is set/,
    );
  } finally {
    for (const k of ["HF_HUB_OFFLINE", "HF_HOME"])
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
  }
});

test("a config-declared task trains and is scored in a tiny study run", async (t) => {
  const needs = ["models", "stories260K", "tok512.bin"] as const;
  if (!dataPath(...needs) || !dataPath("benchmarks", "piqa"))
    return t.skip(skipReason(...needs, "|", "benchmarks", "piqa"));
  const dir = join(tmp, "run");
  write("run/data/simp.tsv", csv(ROWS, "\t"));
  const file = studyFile(dir, {
    tasks: [{ ...simp, source: { path: "data/simp.tsv" }, test_split: { fraction: 0.2 } }],
    orders: [["my_simplification"]],
    methods: ["sequential"],
    budget: { maxTrain: 8, maxTest: 2 },
    train: { lr: 3e-3, epochs: 1, batchSize: 4, gradAccum: 1, maxLength: 64, checkpointEvery: 0 },
    eval: { benchmarks: [{ name: "piqa", limit: 2 }], maxLength: 128, bootstrapIters: 0 },
  });
  const raw = loadStudy(file);
  raw.config.tasks.maxGenToks = 4;
  const [run] = await runStudy(raw, join(dir, "out"));
  const results = JSON.parse(readFileSync(join(run, "results.json"), "utf8"));
  assert.deepEqual(results.progress, { stagesDone: 2, totalStages: 2 });
  assert.deepEqual(
    results.stages.map((s: { task: string | null }) => s.task),
    [null, "my_simplification"],
  );
  // Scored with the declared metric before and after training on it.
  for (const s of results.stages) {
    const sari = s.tasks.my_simplification?.sari;
    assert.ok(typeof sari === "number" && sari >= 0 && sari <= 100, JSON.stringify(s.tasks));
  }
  // The run card hashes the declared task's data file with the rest of the run's data.
  const card = JSON.parse(readFileSync(join(run, "run-card.json"), "utf8"));
  assert.match(card.data[join(dir, "data", "simp.tsv")], /^[0-9a-f]{64}$/);
  // The run's own config keeps the declaration, so the run resumes on its own.
  assert.match(readFileSync(join(run, "config.yaml"), "utf8"), /my_simplification/);
});
